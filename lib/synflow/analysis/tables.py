"""The accuracy-vs-compression tables (Figures 1 and 6): stored runs and the authors'
numbers in one tidy shape, bands over seeds and our-minus-theirs differences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.scorers import PAPER_METHODS
from ..experiments.runconfig import DENSE

KEYS = ["dataset", "model", "width", "method", "log10_compression"]


CHANCE = {"cifar10": 10.0, "cifar100": 1.0, "tinyimagenet": 0.5, "mnist": 10.0}


MODEL_LABELS = {
    "vgg11_bn": "VGG-11",
    "vgg16_bn": "VGG-16",
    "resnet18": "ResNet-18",
    "wrn18": "WRN-18",
    "wrn18_2": "WRN-18-2",
    "resnet20": "ResNet-20",
    "vgg11_bn_tiny": "VGG-11",
    "vgg16_bn_tiny": "VGG-16",
}



DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}


def model_label(model: str, width: float = 1.0) -> str:
    name = MODEL_LABELS.get(model, model)
    return name if width == 1 else f"{name} (width {width:g})"


def accuracy_table(runs: pd.DataFrame, methods: Sequence[str] = PAPER_METHODS) -> pd.DataFrame:
    """Tidy table of stored runs (``synflow.experiments.store.frame``): one row per
    (dataset, model, width, method, log10_compression, seed) with ``best_top1``,
    ``final_top1``, ``empty_layers``; each dense run is repeated for every
    method at log10_compression 0 (compression 1 is no pruning)."""
    runs = runs.copy()
    runs["log10_compression"] = np.log10(runs["compression"].astype(float)).round(6)
    columns = [*KEYS, "seed", "best_top1", "final_top1", "empty_layers", "iterations"]
    dense = runs[runs["pruner"] == DENSE]
    pruned = runs[runs["pruner"] != DENSE].rename(columns={"pruner": "method"})
    repeated = [dense.assign(method=method) for method in methods]
    table = pd.concat([pruned, *repeated], ignore_index=True)[columns]
    table = table[table["method"].isin(methods)]
    order = {method: index for index, method in enumerate(methods)}
    return table.sort_values(
        ["dataset", "model", "width", "method", "log10_compression", "seed"],
        key=lambda column: column.map(order) if column.name == "method" else column,
    ).reset_index(drop=True)




def band(table: pd.DataFrame, value: str = "best_top1", by: Sequence[str] = KEYS) -> pd.DataFrame:
    """Mean, min, max and count of ``value`` over seeds (or runs) per ``by`` group."""
    grouped = table.groupby(list(by), sort=False)[value]
    return grouped.agg(["mean", "min", "max", "count"]).reset_index()


def differences(
    ours: pd.DataFrame,
    theirs: pd.DataFrame,
    value: str = "best_top1",
    on: Sequence[str] = ("dataset", "model", "method", "log10_compression"),
) -> pd.DataFrame:
    """Ours vs theirs where both have a point: the mean over seeds of each and
    ``ours - theirs`` in accuracy points. Widths are kept as columns (ours may be
    narrower than the paper's networks, so the difference is then no like-for-like)."""
    on = list(on)
    mine = band(ours, value, [*on, "width"]).rename(
        columns={"mean": "ours", "min": "ours_min", "max": "ours_max", "count": "our_seeds"}
    )
    paper = band(theirs, value, on)[[*on, "mean"]].rename(columns={"mean": "theirs"})
    table = mine.merge(paper, on=on, how="inner")
    table["ours - theirs"] = table["ours"] - table["theirs"]
    columns = [*on, "width", "our_seeds", "ours", "ours_min", "ours_max", "theirs", "ours - theirs"]
    return table[columns].reset_index(drop=True)
