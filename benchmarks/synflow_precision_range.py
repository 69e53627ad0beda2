"""How many kept weights SynFlow's opt-in ``precision="float32"`` changes against float64.

For each model, seed, compression and iteration count, prune twice with
``synflow.prune`` (every pass in float64, the default; then ``precision="float32"``)
and print the kept count and how many of the float64 run's kept weights the float32
run does not keep (as a count and a share of the kept weights), with both timings.
The range printed last is the one stated in
:func:`synflow.core.scorers.synflow.synflow_scores`.

    python benchmarks/synflow_precision_range.py [--models vgg16_bn:0.25 resnet20:1]
        [--seeds 0 1] [--compressions 10 100 1000] [--iterations 1 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import synflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16_bn:0.25", "resnet20:1"],
                        help="name:width of synflow.build_model (CIFAR input 3x32x32)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--compressions", nargs="+", type=float, default=[10, 100, 1000])
    parser.add_argument("--iterations", nargs="+", type=int, default=[1, 100])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", synflow.ScoreWarning)
    shares: dict[int, list[float]] = {n: [] for n in args.iterations}
    print("model           seed  compression  iterations     kept  changed  share   f64-s  f32-s")
    for spec in args.models:
        name, width = spec.split(":")
        for seed in args.seeds:
            for compression in args.compressions:
                for iterations in args.iterations:
                    masks, seconds = {}, {}
                    for precision in ("float64", "float32"):
                        model = synflow.build_model(name, width=float(width), seed=seed)
                        start = time.perf_counter()
                        masks[precision] = synflow.prune(
                            model, "synflow", compression, iterations=iterations,
                            input_shape=(3, 32, 32), precision=precision)
                        seconds[precision] = time.perf_counter() - start
                    exact, fast = masks["float64"], masks["float32"]
                    kept = sum(int(m.sum()) for m in exact.values())
                    changed = sum(int((exact[k] & ~fast[k]).sum()) for k in exact)
                    shares[iterations].append(changed / kept)
                    print(f"{spec:15} {seed:>4} {compression:>12g} {iterations:>11} {kept:>8} "
                          f"{changed:>8} {100 * changed / kept:>5.1f}% {seconds['float64']:>7.1f} "
                          f"{seconds['float32']:>6.1f}", flush=True)
    for iterations, values in shares.items():
        print(f"{iterations} iteration(s): float32 changed {100 * min(values):.1f}% to "
              f"{100 * max(values):.1f}% of the kept weights over {len(values)} settings")


if __name__ == "__main__":
    main()
