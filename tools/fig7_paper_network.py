"""Figure 7's prune-size ratio on the paper's network, at the iteration counts of the claims.

The paper profile of notebook 03 draws the whole Figure 7 on ``vgg19_imagenet`` (1,128
SynFlow iterations); this script computes only the points README's claims table compares
with the paper (``paper/fig7_reference.csv``): compressions 10^1-10^3, both schedules, 1 and
``--iterations`` (default 100) iterations, with ``analysis.prune_size_ratio`` in float32 (a
ratio, not a mask). Prints one table: ours beside the paper's.

    python tools/fig7_paper_network.py [--iterations 100] [--threads 2] [--schedules linear]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

import synflow
from synflow import analysis
from synflow.analysis.reference import paper_reference

SHAPE = (3, 224, 224)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--schedules", nargs="+", default=["exponential", "linear"],
                        choices=["exponential", "linear"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def net():
        return synflow.build_model("vgg19_imagenet", input_shape=SHAPE, num_classes=1000, seed=0)

    rows = []
    for schedule in args.schedules:
        for log_c in (1, 2, 3):
            for n in (1, args.iterations):
                if n == 1 and schedule == "linear":
                    continue  # one iteration is the same step for both schedules
                start = time.perf_counter()
                ratio = analysis.prune_size_ratio(net, 10.0**log_c, n, schedule=schedule,
                                                  input_shape=SHAPE, precision="float32")
                rows.append({"schedule": schedule if n > 1 else "either",
                             "log10_compression": float(log_c), "iterations": n, "ours": ratio})
                print(f"{schedule:11} 10^{log_c} {n:3} iterations: {ratio:.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    paper = pd.read_csv(paper_reference("fig7_reference.csv"))
    paper = paper.assign(schedule=paper["schedule"].where(paper["iterations"] > 1, "either"))
    paper = paper.drop_duplicates(["schedule", "log10_compression", "iterations"])
    table = pd.DataFrame(rows).merge(
        paper.rename(columns={"prune_size_ratio": "paper"})[
            ["schedule", "log10_compression", "iterations", "paper"]],
        on=["schedule", "log10_compression", "iterations"], how="left")
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
