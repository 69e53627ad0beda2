"""SynFlow pruning speed against its floor, on CIFAR VGG-16 (14.7M prunable weights).

The floor is what any SynFlow implementation must do: 100 forward+backward
passes of the dense model on one all-ones input. The goal is that 100
iterations of ``synflow.prune`` take at most 1.5x the floor. Prints both
timings and the ratio (best of ``--repeats`` runs each), and the same loop with
every SynFlow pass forced to float64 (the oracle path that ``synflow_scores``
falls back to when its float32 check fails).

    python benchmarks/prune_speed.py [--model vgg16_bn] [--iterations 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import synflow


def float64_scores(model, layers, weights, *, input_shape, **_):
    """SynFlow with every pass in float64 (the oracle path)."""
    return synflow.pathscores.synflow_pass(model, layers, weights, input_shape, torch.float64)[1]


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_bn")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--compression", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    dense = synflow.build_model(args.model, seed=0).to(device).eval()
    ones = torch.ones(1, 3, 32, 32, device=device)

    def floor():
        for _ in range(args.iterations):
            dense.zero_grad(set_to_none=True)
            dense(ones).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    def prune():
        model = synflow.build_model(args.model, seed=0).to(device)
        synflow.prune(
            model, "synflow", args.compression, iterations=args.iterations, input_shape=(3, 32, 32)
        )
        if device == "cuda":
            torch.cuda.synchronize()

    def prune_float64():
        model = synflow.build_model(args.model, seed=0).to(device)
        densities = synflow.pruning.schedule_densities(args.compression, args.iterations,
                                                       "exponential")
        synflow.prune_through(model, float64_scores, densities, input_shape=(3, 32, 32))
        if device == "cuda":
            torch.cuda.synchronize()

    def build_only():
        synflow.build_model(args.model, seed=0).to(device)

    floor()  # warm-up
    floor_s = best_time(floor, args.repeats)
    build_s = best_time(build_only, args.repeats)
    prune_s = best_time(prune, args.repeats) - build_s
    float64_s = best_time(prune_float64, args.repeats) - build_s
    n = sum(m.weight.numel() for m in synflow.prunable_layers(dense).values())
    print(f"model {args.model} ({n:,} prunable weights), device {device}, "
          f"threads {torch.get_num_threads()}, compression {args.compression:g}")
    print(f"floor: {args.iterations} dense forward+backward passes  {floor_s:7.2f} s")
    print(f"synflow.prune, {args.iterations} iterations            {prune_s:7.2f} s")
    print(f"ratio prune/floor: {prune_s / floor_s:.2f}  (goal <= 1.5)")
    print(f"every pass in float64, {args.iterations} iterations     {float64_s:7.2f} s "
          f"({float64_s / prune_s:.2f}x the float32-first path)")


if __name__ == "__main__":
    main()
