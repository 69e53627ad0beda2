"""torch's CPU kernels against synflow.core.flat_ops (NumPy) for the pruning loop's bookkeeping,
in ONE run: a comparison with a number, a count, the positions of True entries, a k-th
smallest value, a count of equal entries and an assignment at positions on ``--size``
entries (the alive scores of a mid-schedule SynFlow iteration on VGG-16), each the best of
``--repeats`` rounds of 20 calls, rounds interleaved. Prints each op's time both ways and
the ratio flat_ops / torch (below 1: flat_ops is faster).

    python benchmarks/flat_ops_speed.py [--size 3000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from synflow.core import flat_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    scores = {dtype: torch.rand(args.size, generator=g, dtype=dtype)
              for dtype in (torch.float32, torch.float64)}
    dropped = torch.rand(args.size, generator=g) < 0.05  # ~ a SynFlow iteration's share
    sample = torch.rand(1 << 16, generator=g)
    # a mask built from the alive positions (int32) and which of them are kept
    positions = torch.randperm(2 * args.size, generator=g)[:args.size].sort().values.int()
    values, target = ~dropped, torch.zeros(2 * args.size, dtype=torch.bool)
    ops = {
        "greater float32": (lambda: scores[torch.float32] > 0.5,
                            lambda: flat_ops.greater(scores[torch.float32], 0.5)),
        "greater float64": (lambda: scores[torch.float64] > 0.5,
                            lambda: flat_ops.greater(scores[torch.float64], 0.5)),
        "count": (lambda: int(torch.count_nonzero(dropped)), lambda: flat_ops.count(dropped)),
        "nonzero (5% True)": (lambda: torch.nonzero(dropped).flatten(),
                              lambda: flat_ops.nonzero(dropped)),
        "k-th smallest of 65,536": (lambda: float(torch.kthvalue(sample, 1000).values),
                                    lambda: flat_ops.kth_smallest(sample, 1000)),
        "count equal float32": (lambda: int(torch.count_nonzero(scores[torch.float32] == 0.5)),
                                lambda: flat_ops.count_equal(scores[torch.float32], 0.5)),
        "put (a mask at positions)": (lambda: target.__setitem__(positions, values),
                                      lambda: flat_ops.put(target, positions, values)),
    }
    best = {(name, side): float("inf") for name in ops for side in (0, 1)}
    for _ in range(args.repeats):
        for name, pair in ops.items():
            for side, op in enumerate(pair):
                start = time.perf_counter()
                for _ in range(20):
                    op()
                best[name, side] = min(best[name, side], (time.perf_counter() - start) / 20)
    print(f"{args.size:,} entries, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'op':26} {'torch ms':>9} {'flat_ops ms':>12} {'ratio':>6}")
    for name in ops:
        torch_s, ours_s = best[name, 0], best[name, 1]
        print(f"{name:26} {torch_s * 1e3:9.3f} {ours_s * 1e3:12.3f} {ours_s / torch_s:6.2f}")


if __name__ == "__main__":
    main()
