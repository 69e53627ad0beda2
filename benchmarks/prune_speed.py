"""SynFlow pruning speed against its floor and against the authors' loop, in ONE run.

The floor is what any SynFlow implementation must do: ``--iterations`` forward+backward
passes of the dense model on one all-ones input, in the pass's dtype. The authors' time is
their ``prune_loop`` with their ``SynFlow`` pruner (ganguli-lab/Synaptic-Flow,
``prune.py`` and ``Pruners/pruners.py``: every state-dict tensor made positive in place,
one backward, ``|grad * p|`` cloned per layer, one global ``kthvalue`` threshold, masks as
float buffers multiplied into the weights; float32), reimplemented below on the same model.
Every variant runs ``--repeats`` rounds, interleaved, and each takes its best round, so a
busy machine slows every side alike. Prints four ratios:

1. ``synflow.prune`` (default float64) / the float64 floor        goal <= 1.3
2. ``synflow.prune(precision="float32")`` / the float32 floor      goal <= 1.5
3. ``synflow.prune(precision="float32")`` / the authors' loop       goal <= 0.25
4. ``synflow.prune`` (float64) / the authors' loop                   (for reference)

The header names the glibc malloc variables in effect: with the defaults the passes take
thousands of page faults each, which ``MALLOC_TRIM_THRESHOLD_=1073741824
MALLOC_MMAP_THRESHOLD_=33554432`` remove (docs/benchmarks.md, "Pruning speed").

    python benchmarks/prune_speed.py [--quick] [--model vgg16_bn] [--iterations 100] [--threads 2]
    python benchmarks/prune_speed.py --model vgg19_imagenet --shape 3 224 224 --classes 1000 \\
        --iterations 10 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import synflow


def authors_prune(model, compression: float, iterations: int, shape, device) -> None:
    """The authors' SynFlow prune_loop (exponential schedule, global scope), in float32."""
    masks = {name: torch.ones_like(m.weight) for name, m in synflow.prunable_layers(model).items()}
    params = {name: m.weight for name, m in synflow.prunable_layers(model).items()}

    def masked(module, args, mask):  # their layers compute weight * mask in forward
        module.weight.data.mul_(mask)

    hooks = [m.register_forward_pre_hook(lambda module, args, mask=masks[name]: masked(
        module, args, mask)) for name, m in synflow.prunable_layers(model).items()]
    model.eval()
    ones = torch.ones(1, *shape, device=device)
    for epoch in range(iterations):
        with torch.no_grad():
            signs = {k: torch.sign(v) for k, v in model.state_dict().items()}
            for value in model.state_dict().values():
                value.abs_()
        model(ones).sum().backward()
        scores = {}
        for name, p in params.items():
            scores[name] = torch.clone(p.grad * p).detach().abs_()
            p.grad.data.zero_()
        with torch.no_grad():
            for key, value in model.state_dict().items():
                value.mul_(signs[key])
        density = (1 / compression) ** ((epoch + 1) / iterations)
        flat = torch.cat([torch.flatten(v) for v in scores.values()])
        k = int((1.0 - density) * flat.numel())
        if k >= 1:
            threshold, _ = torch.kthvalue(flat.cpu(), k)
            zero, one = torch.tensor([0.0], device=device), torch.tensor([1.0], device=device)
            for name, mask in masks.items():
                mask.copy_(torch.where(scores[name] <= threshold.to(device), zero, one))
    with torch.no_grad():
        for name, p in params.items():
            p.mul_(masks[name])
    for hook in hooks:
        hook.remove()


MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def allocator_settings() -> str:
    """The glibc malloc variables this process started with (they decide how many page
    faults the passes take: docs/benchmarks.md, "Pruning speed")."""
    given = [f"{name}={os.environ[name]}" for name in MALLOC_VARIABLES if name in os.environ]
    return "malloc: " + (" ".join(given) if given else "glibc's defaults")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_bn")
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--compression", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10 iterations, one round")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.repeats = 10, 1
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = tuple(args.shape)

    def build():
        return synflow.build_model(args.model, input_shape=shape, num_classes=args.classes,
                                   seed=0).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    n = sum(m.weight.numel() for m in synflow.prunable_layers(build()).values())
    print(f"model {args.model} at {shape} ({n:,} prunable weights), device {device}, "
          f"threads {torch.get_num_threads()}, compression {args.compression:g}, "
          f"{args.iterations} iterations, best of {args.repeats} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"{allocator_settings()}", flush=True)
    dense = {dtype: build().to(dtype).eval() for dtype in (torch.float64, torch.float32)}

    def floor(dtype):
        ones = torch.ones(1, *shape, device=device, dtype=dtype)
        for _ in range(args.iterations):
            dense[dtype].zero_grad(set_to_none=True)
            dense[dtype](ones).sum().backward()

    variants = {
        "floor float64": lambda model: floor(torch.float64),
        "floor float32": lambda model: floor(torch.float32),
        "prune float64": lambda model: synflow.prune(
            model, "synflow", args.compression, iterations=args.iterations, input_shape=shape),
        "prune float32": lambda model: synflow.prune(
            model, "synflow", args.compression, iterations=args.iterations, input_shape=shape,
            precision="float32"),
        "authors float32": lambda model: authors_prune(
            model, args.compression, args.iterations, shape, device),
    }
    floor(torch.float64)  # warm-up
    floor(torch.float32)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeats):
        for name, run in variants.items():
            model = build()  # outside the timing
            sync()
            start = time.perf_counter()
            run(model)
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    for name, seconds in best.items():
        print(f"  {name:16} {seconds:8.2f} s")
    ratios = [
        ("prune float64 / floor float64", best["prune float64"] / best["floor float64"], 1.3),
        ("prune float32 / floor float32", best["prune float32"] / best["floor float32"], 1.5),
        ("prune float32 / authors float32", best["prune float32"] / best["authors float32"],
         0.25),
        ("prune float64 / authors float32", best["prune float64"] / best["authors float32"],
         None),
    ]
    for label, ratio, goal in ratios:
        verdict = "" if goal is None else \
            f" (goal <= {goal}: {'met' if ratio <= goal else 'MISSED'})"
        print(f"{label:34} {ratio:6.2f}{verdict}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
