"""Does bfloat16 training move the results? A slice of notebook 04 in both precisions.

Trains the laptop profile's notebook-04 runs (VGG-16-BN at width 1/8, 250 images per
class, 10 epochs) for ``--methods`` at ``--log10-compressions`` (0: the dense run) and
``--seeds``, once with ``train_precision="float32"`` and once with "bfloat16", through
the results store (experiment ``--experiment``: rerunning only loads). Prints, per point,
the mean best top-1 over seeds in each precision, their difference, and the seed spread
(the larger of the two precisions' standard deviations over seeds): bf16 does not move
a result when |difference| is within the seed spread.

    SYNFLOW_DATA=... python benchmarks/precision_accuracy.py [--workers 2] [--quick]

``--quick``: the smoke profile's network and data instead (a minute; checks the script).
On a CPU without native bf16 the bfloat16 runs are emulated, several times slower than
float32, but compute the same thing (bf16 operands, float32 accumulation).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

from synflow.experiments import store, sweeps
from synflow.training import precision


def planned(args) -> list:
    profile = "smoke" if args.quick else "laptop"
    notebook = "04_accuracy_vs_compression"
    params = sweeps.profile_params(notebook, profile, {
        "methods": args.methods, "log10_compressions": args.log10_compressions,
        "seeds": args.seeds, "fig1_log10_compressions": [],
    })
    runs = sweeps.configs(notebook, params)
    return [dataclasses.replace(run, train_precision=name)
            for name in precision.PRECISIONS for run in runs]


def table(results) -> list[str]:
    points: dict[tuple, dict[str, list[float]]] = {}
    for result in results:
        config = result.config
        key = (config.pruner, config.compression)
        points.setdefault(key, {}).setdefault(config.train_precision, []).append(
            result.metrics["best_top1"])
    header = (f"{'method':<10} {'compression':>11} {'float32 top-1':>16} {'bfloat16 top-1':>16}"
              f" {'difference':>10} {'seed spread':>11} {'|diff|/spread':>13}")
    lines = [header]
    ratios = []
    for (method, compression), by in sorted(points.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        fp32, bf16 = by["float32"], by["bfloat16"]
        spread = max(statistics.stdev(fp32), statistics.stdev(bf16)) if len(fp32) > 1 else 0.0
        difference = statistics.mean(bf16) - statistics.mean(fp32)
        ratio = abs(difference) / spread if spread else (0.0 if not difference else float("inf"))
        ratios.append(ratio)
        lines.append(
            f"{method:<10} {compression:>11.4g} {statistics.mean(fp32):>9.2f} ± {statistics.stdev(fp32) if len(fp32) > 1 else 0:4.2f}"
            f" {statistics.mean(bf16):>9.2f} ± {statistics.stdev(bf16) if len(bf16) > 1 else 0:4.2f}"
            f" {difference:>+10.2f} {spread:>11.2f} {ratio:>13.2f}")
    within = sum(r <= 1 for r in ratios)
    lines.append(f"{within} of {len(ratios)} points: |bf16 - fp32| within the seed spread "
                 f"(mean |diff|/spread {statistics.mean(ratios):.2f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["synflow", "magnitude"])
    parser.add_argument("--log10-compressions", nargs="+", type=float, default=[0, 1, 2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=None,
                        help="runs side by side (default $SYNFLOW_WORKERS, else the CPUs)")
    parser.add_argument("--experiment", default=None,
                        help="results-store folder (default precision_check_<profile>)")
    parser.add_argument("--quick", action="store_true", help="the smoke profile instead")
    args = parser.parse_args()
    experiment = args.experiment or f"precision_check_{'smoke' if args.quick else 'laptop'}"
    runs = planned(args)
    print(f"{len(runs)} runs ({len(runs) // 2} per precision) in {experiment}; CPU native "
          f"bf16: {precision.native_bf16()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    start = time.perf_counter()
    results = store.sweep(runs, experiment, workers=args.workers)
    seconds = {name: sum(r.metrics["seconds"] for r in results
                         if r.config.train_precision == name) for name in precision.PRECISIONS}
    print(f"done in {time.perf_counter() - start:.0f} s (training seconds: "
          + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ")")
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
