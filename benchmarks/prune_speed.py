"""SynFlow pruning speed against its floor, for both precisions of the SynFlow pass.

The floor is what any SynFlow implementation must do: ``--iterations`` forward+backward
passes of the dense model on one all-ones input, in the pass's dtype. The goal is that
``synflow.prune`` takes at most 1.5x the floor of its precision. Prints, for the default
``precision="float64"`` (the oracle) and the opt-in ``precision="float32"``, the floor,
the prune time (best of ``--repeats`` runs each, model building subtracted) and their
ratio, and float64's time over float32's.

    python benchmarks/prune_speed.py [--model vgg16_bn] [--iterations 100] [--threads 2]
    python benchmarks/prune_speed.py --model vgg19_imagenet --shape 3 224 224 --classes 1000 \
        --iterations 10 --repeats 1
"""

from __future__ import annotations

import argparse
import time

import torch

import synflow


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
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--compression", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = tuple(args.shape)

    def build():
        return synflow.build_model(args.model, input_shape=shape, num_classes=args.classes,
                                   seed=0).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    build_s = best_time(build, args.repeats)
    n = sum(m.weight.numel() for m in synflow.prunable_layers(build()).values())
    print(f"model {args.model} at {shape} ({n:,} prunable weights), device {device}, "
          f"threads {torch.get_num_threads()}, compression {args.compression:g}, "
          f"{args.iterations} iterations")
    def timings(precision: str, dtype: torch.dtype) -> tuple[float, float]:
        dense = build().to(dtype).eval()
        ones = torch.ones(1, *shape, device=device, dtype=dtype)

        def floor():
            for _ in range(args.iterations):
                dense.zero_grad(set_to_none=True)
                dense(ones).sum().backward()
            sync()

        def prune():
            synflow.prune(build(), "synflow", args.compression, iterations=args.iterations,
                          input_shape=shape, precision=precision)
            sync()

        floor()  # warm-up
        return best_time(floor, args.repeats), best_time(prune, args.repeats) - build_s

    prune_times = {}
    for precision, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        floor_s, prune_s = timings(precision, dtype)
        prune_times[precision] = prune_s
        print(f"precision={precision:8} floor {floor_s:7.2f} s  synflow.prune {prune_s:7.2f} s  "
              f"ratio prune/floor {prune_s / floor_s:.2f} (goal <= 1.5)", flush=True)
    print(f"float64 / float32 prune time: {prune_times['float64'] / prune_times['float32']:.2f}")


if __name__ == "__main__":
    main()
