"""One prepared check of the GPU path (at most 8 minutes on one H100); the same code on the
CPU with ``--device cpu --quick`` in about a minute (``make test`` runs it so, so it cannot rot).

In order, on ``--device`` (default cuda):

1. ``tests/test_on_device.py`` (masks, scorers, the pruning loop, a masked training step,
   checkpoint and resume, the store's round trip) with ``SYNFLOW_TEST_DEVICE`` set;
2. SynFlow (float64, 100 iterations), magnitude and SNIP masks of CIFAR VGG-16 at
   compression 100 on the device against the CPU's (SynFlow and magnitude: equal; SNIP:
   the share of equal entries, float32 sums in another order may swap near-ties);
3. each paper network (VGG-16, ResNet-20, ResNet-18, WRN-18-2; CIFAR shapes, full width,
   batch 128), pruned by magnitude at compression 10, trained ``--steps`` steps through
   the project's own loop (``train_epoch`` over ``Batches``: uint8 data resident on the
   device, shuffled, augmented and normalised there; the precision "auto" means there:
   bf16 autocast and channels-last on CUDA): pruned weights must stay exactly zero; no
   step may synchronise with the host (``torch.cuda.set_sync_debug_mode("error")``);
   images/s, effective TFLOP/s (6 x multiply-adds per image) and peak memory;
4. the GPU-hours of each training notebook at the paper profile from those measured
   rates (``benchmarks/paper_gpu_hours.py``'s FLOP per run over the measured effective
   FLOP/s of the run's network family), replacing the README's 30-60 TFLOP/s estimate;
5. runs packed on one device (``launch --runs-per-gpu``): ResNet-20's training rate with
   ``--pack`` processes side by side over one process;
6. when CIFAR-10 is under the data root: VGG-16 trained ``--epochs`` epochs on it with
   the paper's hyperparameters (shortened schedule), its test accuracy.

Writes every number to one JSON file (``--output``) and prints a table; exits 1 if a check
failed. ``--quick``: width 1/8 networks, a few steps, 10 SynFlow iterations, 1 epoch on
100 images per class.

    python benchmarks/gpu_check.py                          # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --quick     # anywhere, about a minute
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from synflow.core.loop import prune
from synflow.core.masks import prunable_layers
from synflow.data import batches as data_batches
from synflow.data import datasets, images
from synflow.experiments import parallel
from synflow.models.registry import build_model
from synflow.training import loop, precision, presets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_gpu_hours  # benchmarks/ is not a package

NETWORKS = ("vgg16_bn", "resnet20", "resnet18", "wrn18_2")
CIFAR = datasets.DATASETS["cifar10"]


def family(model: str) -> str:
    """The measured network that stands for ``model``'s cost per FLOP."""
    if model.startswith("vgg"):
        return "vgg16_bn"
    if model.startswith("wrn"):
        return "wrn18_2"
    return "resnet18" if model.startswith("resnet18") else "resnet20"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def cifar(per_class=None, split="train"):
    """CIFAR-10 from the data root, or None when it is not there."""
    try:
        return images.load("cifar10", split, per_class=per_class, seed=0, download=False)
    except (FileNotFoundError, ValueError, OSError):
        return None


def random_images(count: int) -> datasets.Images:
    generator = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return datasets.Images(data, torch.arange(count) % 10, tuple(map(str, range(10))))


def check_tests(device, quick: bool) -> dict:
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_on_device.py"),
               "-q", "-p", "no:cacheprovider"]
    if quick:
        command += ["-k", "masks_live or pruning_loop or masked_training or store_round_trip"]
    env = {**os.environ, "SYNFLOW_TEST_DEVICE": str(device)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT,
                          check=False)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    return {"ok": done.returncode == 0, "summary": summary,
            "seconds": time.perf_counter() - start}


def check_masks(device, quick: bool) -> dict:
    width, iterations = (0.125, 10) if quick else (1.0, 100)
    train = cifar(per_class=10)
    data = data_batches.Batches(train if train is not None else random_images(100), CIFAR,
                                batch_size=256)
    pairs = list(data)
    result = {"width": width, "synflow_iterations": iterations}
    for method, options in (("synflow", {"iterations": iterations}), ("magnitude", {}),
                            ("snip", {"data": pairs})):
        masks = {}
        for where in ("cpu", device):
            model = build_model("vgg16_bn", width=width, seed=0).to(where)
            extra = dict(options)
            if "data" in extra:
                extra["data"] = [(x.to(where), y.to(where)) for x, y in pairs]
            start = time.perf_counter()
            got = prune(model, method, 100, input_shape=(3, 32, 32), **extra)
            sync(torch.device(where))
            masks[str(where)] = ({n: m.cpu() for n, m in got.items()},
                                 time.perf_counter() - start)
        (cpu, cpu_s), (there, there_s) = masks["cpu"], masks[str(device)]
        same = sum(int((cpu[n] == there[n]).sum()) for n in cpu)
        share = same / sum(m.numel() for m in cpu.values())
        result[method] = {"equal_share": share, "ok": share == 1.0 or (
            method == "snip" and share >= 0.999), "seconds_cpu": cpu_s,
            "seconds_device": there_s}
    result["ok"] = all(result[m]["ok"] for m in ("synflow", "magnitude", "snip"))
    return result


def peak_memory_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process, Linux KB


def train_rate(name, width, device, steps, batch, compile_model=False, seed=0,
               before=None) -> dict:
    """Train ``name`` (magnitude-pruned at compression 10) ``steps`` steps through the
    project's loop; images/s of the timed epoch, peak memory, pruned weights still zero.
    ``before()`` is called right before the timed epoch (e.g. a barrier of packed
    processes)."""
    dtype = precision.resolve("auto", device)
    train = cifar()
    count = steps * batch
    data = random_images(count) if train is None or len(train.labels) < count else \
        datasets.Images(train.images[:count], train.labels[:count], train.classes)
    model = build_model(name, width=width, seed=seed)
    masks = prune(model, "magnitude", 10)
    model = model.to(device=device, memory_format=precision.memory_format(dtype))
    batches = data_batches.Batches(data, CIFAR, batch_size=batch, shuffle=True, augment=True,
                                   seed=seed, device=device,
                                   memory_format=precision.memory_format(dtype))
    optimizer, _ = loop.optimizer_for(model, presets.preset(name, "cifar10"))
    step_model = torch.compile(model) if compile_model else model
    warm = data_batches.Batches(
        datasets.Images(data.images[: 3 * batch], data.labels[: 3 * batch], data.classes),
        CIFAR, batch_size=batch, augment=True, device=device,
        memory_format=precision.memory_format(dtype))
    start = time.perf_counter()
    loop.train_epoch(step_model, warm, optimizer, device, dtype)  # cudnn autotuning, compile
    sync(device)
    warm_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.set_sync_debug_mode("error")
    if before is not None:
        before()
    sync_free, start, began = True, time.perf_counter(), time.time()
    try:
        loop.train_epoch(step_model, batches, optimizer, device, dtype)
    except RuntimeError as error:  # a host sync inside a step
        if "synchroniz" not in str(error):
            raise
        sync_free = str(error).splitlines()[0]
        loop.train_epoch(step_model, batches, optimizer, device, dtype)
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
    sync(device)
    seconds = time.perf_counter() - start
    layers = prunable_layers(model)
    zero = all(int(torch.count_nonzero(layers[n].weight[~m.to(device)])) == 0
               for n, m in masks.items())
    rate = count / seconds
    macs = paper_gpu_hours.macs_per_image(name, "cifar10", width)
    return {"precision": dtype, "steps": steps, "batch": batch, "images_per_s": rate,
            "tflops": 6 * macs * rate / 1e12, "peak_memory_gb": peak_memory_gb(device),
            "warmup_s": warm_s, "pruned_stay_zero": zero, "no_host_sync": sync_free,
            "window": (began, began + seconds), "images": count,
            "ok": zero and sync_free is True}


def _packed_rate(job) -> dict:
    name, width, device, steps, batch, seed, barrier = job
    if device == "cpu":
        torch.set_num_threads(precision.RUN_THREADS)
    return train_rate(name, width, torch.device(device), steps, batch, seed=seed,
                      before=barrier.wait)


def check_packing(device, processes, width, steps, batch) -> dict:
    """ResNet-20's images/s with ``processes`` processes training side by side (their
    timed epochs start together, at a barrier) over one process's."""
    rates = {}
    with multiprocessing.get_context("spawn").Manager() as manager:
        for count in (1, processes):
            barrier = manager.Barrier(count)
            jobs = [("resnet20", width, str(device), steps, batch, seed, barrier)
                    for seed in range(count)]
            rows = parallel.side_by_side(_packed_rate, jobs, count)
            span = max(r["window"][1] for r in rows) - min(r["window"][0] for r in rows)
            rates[count] = sum(r["images"] for r in rows) / span
    return {"processes": processes, "one_process_images_per_s": rates[1],
            "packed_images_per_s": rates[processes], "gain": rates[processes] / rates[1]}


def gpu_hours(training: dict) -> dict:
    """Measured GPU-hours of each training notebook at the paper profile."""
    from synflow.experiments import sweeps

    rates = {name: row["tflops"] * 1e12 for name, row in training.items()}
    hours = {}
    for notebook in sweeps.BUILDERS:
        runs = sweeps.configs(notebook, sweeps.profile_params(notebook, "paper"))
        seconds = [paper_gpu_hours.run_flop(c) / rates[family(c.model)] for c in runs]
        hours[notebook] = {"runs": len(runs), "hours": sum(seconds) / 3600,
                           "median_run_h": sorted(seconds)[len(seconds) // 2] / 3600,
                           "longest_run_h": max(seconds) / 3600}
    return hours


def check_accuracy(device, epochs: int, quick: bool) -> dict | None:
    """VGG-16 trained on CIFAR-10 (quick: width 1/8, 100 training and test images per
    class) with the paper's hyperparameters, the schedule shortened to ``epochs``."""
    per_class = 100 if quick else None
    train, test = cifar(per_class), cifar(per_class, "test")
    if train is None or test is None:
        return None
    config = presets.preset("vgg16_bn", "cifar10", epochs=epochs, subset=per_class)
    layout = precision.memory_format(precision.resolve(config.precision, device))
    data = (data_batches.Batches(train, CIFAR, batch_size=config.batch_size, shuffle=True,
                                 augment=True, device=device, memory_format=layout),
            data_batches.Batches(test, CIFAR, batch_size=1000, device=device,
                                 memory_format=layout))
    model = build_model("vgg16_bn", width=0.125 if quick else 1.0, seed=0)
    start = time.perf_counter()
    metrics = loop.train(model, data, config, device=device, seed=0)
    return {"epochs": epochs, "train_images": len(train.labels),
            "test_images": len(test.labels), "final_top1": metrics["final_top1"],
            "best_top1": metrics["best_top1"], "seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--pack", type=int, default=4, help="processes for the packing check")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(precision.RUN_THREADS)  # as the project's CPU runs train
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    width, steps, batch = (0.125, 3, 32) if args.quick else (1.0, args.steps, args.batch)
    epochs, pack = (1, 2) if args.quick else (args.epochs, args.pack)
    report = {"device": str(device), "name": torch.cuda.get_device_name(device)
              if device.type == "cuda" else platform.processor() or platform.machine(),
              "torch": torch.__version__, "quick": args.quick, "width": width}
    start = time.perf_counter()
    report["tests"] = check_tests(device, args.quick)
    print(f"1. tests on {device}: {report['tests']['summary']}", flush=True)
    report["masks"] = check_masks(device, args.quick)
    print("2. masks vs the CPU's: " + ", ".join(
        f"{m} {report['masks'][m]['equal_share']:.4%} equal" for m in ("synflow", "magnitude",
                                                                       "snip")), flush=True)
    report["training"] = {}
    print(f"3. training, width {width:g}, batch {batch}, {steps} steps:")
    print(f"   {'network':<10} {'precision':<9} {'img/s':>9} {'TFLOP/s':>8} {'peak GB':>8} "
          f"{'pruned=0':>8}  no host sync")
    for name in NETWORKS:
        row = train_rate(name, width, device, steps, batch, args.compile)
        report["training"][name] = row
        print(f"   {name:<10} {row['precision']:<9} {row['images_per_s']:>9.0f} "
              f"{row['tflops']:>8.2f} {row['peak_memory_gb']:>8.2f} "
              f"{row['pruned_stay_zero']!s:>8}  {row['no_host_sync']}", flush=True)
    report["gpu_hours_paper"] = gpu_hours(report["training"])
    print(f"4. {device.type}-hours at the paper profile, from these rates"
          + (" (--quick: tiny networks, a few steps; not meaningful)" if args.quick else "")
          + ":")
    for notebook, row in report["gpu_hours_paper"].items():
        print(f"   {notebook:<32} {row['runs']:>5} runs {row['hours']:>10.1f} h "
              f"(median run {row['median_run_h']:.3f} h, longest {row['longest_run_h']:.2f} h)")
    report["packing"] = check_packing(device, pack, width, max(2, steps // 3), batch)
    print(f"5. ResNet-20, {pack} processes on one {device.type}: "
          f"{report['packing']['gain']:.2f}x the images/s of one", flush=True)
    report["accuracy"] = check_accuracy(device, epochs, args.quick)
    accuracy = report["accuracy"]
    print("6. " + ("CIFAR-10 not under the data root: no accuracy" if accuracy is None else
                   f"VGG-16 on CIFAR-10, {epochs} epoch(s): top-1 {accuracy['final_top1']:.2f} %"
                   f" (best {accuracy['best_top1']:.2f} %) in {accuracy['seconds']:.0f} s"))
    report["seconds"] = time.perf_counter() - start
    report["ok"] = report["tests"]["ok"] and report["masks"]["ok"] and all(
        row["ok"] for row in report["training"].values())
    args.output.write_text(json.dumps(report, indent=1, default=str))
    print(f"gpu_check: {'passed' if report['ok'] else 'FAILED'} in {report['seconds']:.0f} s; "
          f"every number in {args.output}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    sys.exit(main())
