"""Training speed: the project's training epoch against a plain float32 NCHW PyTorch loop.

For CIFAR VGG-16 (BN) at width 1/8 and 1/2 and ResNet-20, in ONE run with the variants
interleaved (best of ``--repeats`` rounds, so a busy machine slows every side alike),
prints on the CPU (and on CUDA when available):

1. ``ours/plain``: the project's epoch (``synflow.training.loop.train_epoch`` in the
   precision "auto" resolves to here, fed by ``synflow.data.Batches``: shuffle, batched
   crop + flip and normalisation included) on a pruned model, over a plain float32 NCHW
   PyTorch loop (dense model, same SGD) over the same batches, pre-made.
   Goal on a CPU with native bf16: <= 0.6.
2. ``masked/dense``: the project's epoch on the pruned model over the same on the dense
   model (the cost of the masks). Goal: <= 1.05.

One thread by default: the project's CPU runs train with one thread each, side by side.

    SYNFLOW_DATA=... python benchmarks/train_speed.py [--quick] [--threads 1] [--precision auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from synflow import data
from synflow.core.loop import prune
from synflow.models.registry import build_model
from synflow.training import loop, precision, presets

MODELS = (("vgg16_bn", 0.125), ("vgg16_bn", 0.5), ("resnet20", 1.0))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name, width, device, pruned, memory_format=torch.contiguous_format):
    model = build_model(name, width=width, seed=0)
    if pruned:
        prune(model, "magnitude", 10)
    return model.to(device=device, memory_format=memory_format)


def plain_epoch(model, batches, config):
    """A plain float32 NCHW PyTorch loop: the reference."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                weight_decay=config.weight_decay)

    def run():
        model.train()
        for inputs, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs), targets).backward()
            optimizer.step()

    return run


def our_epoch(model, batches, config, device, name):
    optimizer, _ = loop.optimizer_for(model, config)
    return lambda: loop.train_epoch(model, batches, optimizer, device, name)


def interleaved(functions: dict, device, repeats: int) -> dict:
    """Best time of each function over ``repeats`` rounds, one call of each per round."""
    best = dict.fromkeys(functions, float("inf"))
    for fn in functions.values():
        fn()  # warm-up (allocator, oneDNN primitives, cudnn autotuning)
    for _ in range(repeats):
        for key, fn in functions.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def epoch_images(count: int) -> data.Images:
    try:
        return data.load("cifar10", "train", per_class=max(1, count // 10), seed=0,
                         download=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"  (CIFAR-10 not found: {error.__class__.__name__}; using random images)")
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return data.Images(images, torch.arange(count) % 10, tuple(map(str, range(10))))


def verdict(value: float, goal: float) -> str:
    return f"goal <= {goal}: {'met' if value <= goal else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=precision.RUN_THREADS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=640, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=(*precision.PRECISIONS, "auto"),
                        help="the project's precision (default: what auto means on the device)")
    parser.add_argument("--model", action="append", help="name:width (default: the three)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = min(args.images, 256), 1
    torch.set_num_threads(args.threads)
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info = data.DATASETS["cifar10"]
    split = epoch_images(args.images)
    print(f"torch {torch.__version__}, {platform.machine()}, native CPU bf16 "
          f"{precision.native_bf16()}, {args.threads} thread(s), batch {args.batch}, "
          f"{len(split)} images per epoch, best of {args.repeats}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    models = [(m.split(":")[0], float(m.split(":")[1])) for m in args.model or []] or MODELS
    for device in map(torch.device, devices):
        ours = precision.resolve(args.precision, device)
        layout = precision.memory_format(ours)
        config = presets.TrainConfig(1, 0.05, (), 0.1, 5e-4, precision=ours)
        batches = data.Batches(split, info, batch_size=args.batch, shuffle=True, augment=True,
                               seed=0, device=device, memory_format=layout)
        premade = [(x.contiguous(), y) for x, y in batches]  # the same batches, NCHW float32
        for name, width in models:
            times = interleaved({
                "plain": plain_epoch(build(name, width, device, False), premade, config),
                "masked": our_epoch(build(name, width, device, True, layout), batches, config,
                                    device, ours),
                "dense": our_epoch(build(name, width, device, False, layout), batches, config,
                                   device, ours),
            }, device, args.repeats)
            speed, masks = times["masked"] / times["plain"], times["masked"] / times["dense"]
            print(f"{name} width {width:g} on {device.type}: plain fp32 NCHW "
                  f"{len(split) / times['plain']:7.0f} img/s, ours ({ours}, masked) "
                  f"{len(split) / times['masked']:7.0f} img/s; ours/plain {speed:.3f} "
                  f"({verdict(speed, 0.6)}); masked/dense {masks:.3f} ({verdict(masks, 1.05)})",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
