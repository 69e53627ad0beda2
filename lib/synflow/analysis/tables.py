"""Stored runs as tidy tables: the accuracy-vs-compression tables (Figures 1 and 6: our
runs and the authors' numbers in one shape, bands over seeds, our-minus-theirs
differences) and the per-run, per-layer and per-cycle tables of notebooks 05 and 06."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..core.scorers import PAPER_METHODS
from ..experiments.results import RunResult
from ..experiments.runconfig import DENSE, RunConfig
from .conservation import fit_slope, total_spread

KEYS = ["dataset", "model", "width", "method", "log10_compression"]

CHANCE = {"cifar10": 10.0, "cifar100": 1.0, "tinyimagenet": 0.5, "mnist": 10.0}

MODEL_LABELS = {
    "vgg11_bn": "VGG-11", "vgg16_bn": "VGG-16", "resnet18": "ResNet-18", "wrn18": "WRN-18",
    "wrn18_2": "WRN-18-2", "resnet20": "ResNet-20", "vgg11_bn_tiny": "VGG-11",
    "vgg16_bn_tiny": "VGG-16",
}

DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}


def model_label(model: str, width: float = 1.0) -> str:
    """The paper's name of ``model`` (``MODEL_LABELS``; unknown names as they are), with
    its width multiplier when it is not 1.

    >>> model_label("vgg16_bn"), model_label("resnet20", 0.5)
    ('VGG-16', 'ResNet-20 (width 0.5)')
    """
    name = MODEL_LABELS.get(model, model)
    return name if width == 1 else f"{name} (width {width:g})"


def accuracy_table(runs: pd.DataFrame, methods: Sequence[str] = PAPER_METHODS) -> pd.DataFrame:
    """Tidy table of stored runs (``synflow.experiments.store.frame``): one row per
    (dataset, model, width, method, log10_compression, seed) with ``best_top1``,
    ``final_top1``, ``empty_layers``; each dense run is repeated for every
    method at log10_compression 0 (compression 1 is no pruning). ``runs`` needs the
    columns dataset, model, width, pruner, compression, seed, iterations and those three.

    >>> runs = pd.DataFrame({"dataset": "cifar10", "model": "mlp", "width": 1.0,
    ...     "pruner": ["dense", "snip"], "compression": [1.0, 10.0], "seed": 0, "iterations": 1,
    ...     "best_top1": [50.0, 40.0], "final_top1": [49.0, 39.0], "empty_layers": 0})
    >>> accuracy_table(runs, ["snip"])[["method", "log10_compression", "best_top1"]].to_dict(
    ...     "records")
    [{'method': 'snip', 'log10_compression': 0.0, 'best_top1': 50.0},
     {'method': 'snip', 'log10_compression': 1.0, 'best_top1': 40.0}]
    """
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
    """Mean, min, max and count of ``value`` over seeds (or runs) per ``by`` group (the
    bands of Figures 1 and 6), in ``value``'s units; groups in order of appearance.

    >>> table = pd.DataFrame({"method": "snip", "seed": [0, 1], "best_top1": [40.0, 42.0]})
    >>> band(table, by=["method"]).to_dict("records")
    [{'method': 'snip', 'mean': 41.0, 'min': 40.0, 'max': 42.0, 'count': 2}]
    """
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
    narrower than the paper's networks, so the difference is then no like-for-like).

    >>> ours = pd.DataFrame({"dataset": "cifar10", "model": "vgg16_bn", "width": 1.0,
    ...     "method": "snip", "log10_compression": 1.0, "best_top1": [40.0, 42.0]})
    >>> differences(ours, ours.assign(best_top1=[44.0, 46.0]))["ours - theirs"].tolist()
    [-4.0]
    """
    on = list(on)
    mine = band(ours, value, [*on, "width"]).rename(
        columns={"mean": "ours", "min": "ours_min", "max": "ours_max", "count": "our_seeds"}
    )
    paper = band(theirs, value, on)[[*on, "mean"]].rename(columns={"mean": "theirs"})
    table = mine.merge(paper, on=on, how="inner")
    table["ours - theirs"] = table["ours"] - table["theirs"]
    columns = [*on, "width", "our_seeds", "ours", "ours_min", "ours_max", "theirs", "ours - theirs"]
    return table[columns].reset_index(drop=True)


# ---------------------------------------------------------------- stored runs as tables
# RunResult (synflow.experiments.results) owns run.json; these turn results into the
# tidy tables the training notebooks (05, 06) draw and check, so no notebook reads a
# result's dicts itself.


def run_row(result: RunResult) -> dict:
    """One run as a flat dict: its config fields (those unknown to RunConfig too), ``key``
    and its ``metrics`` (``best_top1``: best-epoch top-1 %, ``kept``, ``prunable``, ...;
    ``connected``, whether an input-output path survives its masks, None for a run
    stored before that was recorded).

    >>> run = RunResult(RunConfig("mlp", "cifar10", "snip", 10.0), {}, {"best_top1": 42.0},
    ...                 [], [], [], {})
    >>> row = run_row(run)
    >>> row["pruner"], row["compression"], row["best_top1"], len(row["key"]), row["connected"]
    ('snip', 10.0, 42.0, 10, None)
    """
    return {**asdict(result.config), **result.extra_config, "key": result.key,
            **RunResult.LATER_METRICS, **result.metrics}


def _keyed(results, keys: Sequence[str]) -> list[tuple[dict, RunResult]]:
    """``(key columns, result)`` pairs of a list of results or a ``{tuple: result}`` dict."""
    if not isinstance(results, Mapping):
        if keys:
            raise ValueError(f"keys {tuple(keys)} name the parts of a dict's tuple keys; "
                             "got no dict but a list of results")
        return [({}, result) for result in results]
    pairs = []
    for key, result in results.items():
        if not isinstance(key, tuple) or len(key) != len(keys):
            raise ValueError(f"the key {key!r} does not fit the key names {tuple(keys)}: "
                             "give one name per part of the dict's tuple keys")
        pairs.append((dict(zip(keys, key)), result))
    return pairs


def runs_table(results: Iterable[RunResult] | Mapping[tuple, RunResult],
               keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: :func:`run_row` of each result, after the ``keys`` columns when
    ``results`` is a dict keyed by tuples (``keys`` names their parts, e.g. notebook 06's
    ``("method", "compression", "seed", "variant")``; a key column wins over a config
    field of the same name). Raises ValueError when ``keys`` do not fit.

    >>> from synflow.experiments.results import RunResult
    >>> from synflow.experiments.runconfig import RunConfig
    >>> run = RunResult(RunConfig("mlp", "cifar10", "magnitude", 10.0), {}, {"best_top1": 42.0},
    ...                 [], [], [], {})
    >>> runs_table({("magnitude", 10.0): run}, ("method", "compression"))[
    ...     ["method", "compression", "pruner", "best_top1"]].to_dict("records")
    [{'method': 'magnitude', 'compression': 10.0, 'pruner': 'magnitude', 'best_top1': 42.0}]
    """
    rows = []
    for key, result in _keyed(results, keys):
        rows.append({**key, **{k: v for k, v in run_row(result).items() if k not in key}})
    return pd.DataFrame(rows)


def layers_table(results: Iterable[RunResult] | Mapping[tuple, RunResult],
                 keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (run, prunable layer): the ``keys`` columns (see :func:`runs_table`),
    ``pruner``, ``compression``, ``seed``, then ``layer_index`` (1 = the input layer),
    ``layer`` (its weight's name), ``kept``, ``total`` and ``fraction_kept``.

    >>> run = RunResult(RunConfig("mlp", "cifar10", "snip", 4.0), {}, {}, [],
    ...                 [{"layer": "0.weight", "kept": 3, "total": 8}], [], {})
    >>> layers_table([run])[["layer_index", "layer", "fraction_kept"]].to_dict("records")
    [{'layer_index': 1, 'layer': '0.weight', 'fraction_kept': 0.375}]
    """
    rows = []
    for key, result in _keyed(results, keys):
        config = {"pruner": result.config.pruner, "compression": result.config.compression,
                  "seed": result.config.seed}
        for index, layer in enumerate(result.layers, start=1):
            rows.append({**key, **{k: v for k, v in config.items() if k not in key},
                         "layer_index": index, "layer": layer["layer"], "kept": layer["kept"],
                         "total": layer["total"], "fraction_kept": layer["kept"] / layer["total"]})
    return pd.DataFrame(rows)


def keeps_target(result: RunResult) -> bool:
    """Whether the run kept exactly round(N / compression) of its N prunable weights.

    >>> run = RunResult(RunConfig("mlp", "cifar10", "snip", 4.0), {}, {"kept": 4, "prunable": 16},
    ...                 [], [], [], {})
    >>> keeps_target(run)
    True
    """
    metrics = result.metrics
    return metrics["kept"] == round(metrics["prunable"] / result.config.compression)


def same_layer_counts(a: RunResult, b: RunResult) -> bool:
    """Whether two runs kept the same number of weights in every layer.

    >>> def run(kept):
    ...     return RunResult(RunConfig("mlp", "cifar10", "snip", 4.0), {}, {}, [],
    ...                      [{"layer": "0.weight", "kept": kept, "total": 8}], [], {})
    >>> same_layer_counts(run(3), run(3)), same_layer_counts(run(3), run(2))
    (True, False)
    """
    return [layer["kept"] for layer in a.layers] == [layer["kept"] for layer in b.layers]


def imp_variant(config: RunConfig) -> str:
    """Notebook 05's label of a run: "dense", "magnitude at init" (``cycles=0``) or
    "IMP <k> cycle(s), rewind" / "..., no rewind".

    >>> imp_variant(RunConfig("mlp", "cifar10", "magnitude", 10.0, cycles=2))
    'IMP 2 cycle(s), rewind'
    """
    if config.pruner == DENSE:
        return "dense"
    if config.cycles == 0:
        return "magnitude at init"
    return f"IMP {config.cycles} cycle(s), " + ("rewind" if config.rewind else "no rewind")


def cycles_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per (IMP run, cycle): compression, cycles, rewind, seed of the run, the
    cycle's record (``cycle``, ``best_top1``, ``final_top1``, ``compression_reached``,
    ``kept``, ``masks_only_shrank``, ``kept_at_initial_values``) and ``target``, the
    exact count cycle j of k must keep: round(N / compression ** (j / k)).

    >>> cycles = [{"cycle": 1, "kept": 8, "compression": 2.0},
    ...           {"cycle": 2, "kept": 4, "compression": 4.0}]
    >>> run = RunResult(RunConfig("mlp", "cifar10", "magnitude", 4.0, cycles=2), {},
    ...                 {"prunable": 16}, [], [], [], {}, cycles=cycles)
    >>> cycles_table([run])[["cycle", "compression_reached", "kept", "target"]].to_dict("records")
    [{'cycle': 1, 'compression_reached': 2.0, 'kept': 8, 'target': 8},
     {'cycle': 2, 'compression_reached': 4.0, 'kept': 4, 'target': 4}]
    """
    rows = []
    for result in results:
        config, prunable = result.config, result.metrics["prunable"]
        for cycle in result.cycles or []:
            record = {("compression_reached" if k == "compression" else k): v
                      for k, v in cycle.items()}
            rows.append({"compression": config.compression, "cycles": config.cycles,
                         "rewind": config.rewind, "seed": config.seed, **record,
                         "target": round(prunable / config.compression
                                         ** (cycle["cycle"] / config.cycles))})
    return pd.DataFrame(rows)


def imp_keeps_targets(result: RunResult) -> bool:
    """Whether every one of the run's ``cycles`` IMP cycles was recorded and kept exactly
    its target count (see :func:`cycles_table`).

    >>> run = RunResult(RunConfig("mlp", "cifar10", "magnitude", 4.0, cycles=2), {},
    ...                 {"prunable": 16}, [], [], [], {}, cycles=[{"cycle": 1, "kept": 8}])
    >>> from dataclasses import replace
    >>> imp_keeps_targets(run), imp_keeps_targets(replace(
    ...     run, cycles=[{"cycle": 1, "kept": 8}, {"cycle": 2, "kept": 4}]))
    (False, True)
    """
    config, prunable = result.config, result.metrics["prunable"]
    return [cycle["kept"] for cycle in result.cycles or []] == [
        round(prunable / config.compression ** (j / config.cycles))
        for j in range(1, config.cycles + 1)]


def layer_history(result: RunResult) -> pd.DataFrame:
    """A ``record_layers`` run's layer records, one row per (epoch, layer): epoch (0 =
    initialization), layer, size, kept, total_sq, mean_sq (Figure 5b). Raises ValueError
    for a run recorded without them.

    >>> rows = [{"epoch": 0, "layer": "0.weight", "size": 8, "kept": 8, "total_sq": 2.0,
    ...          "mean_sq": 0.25}]
    >>> config = RunConfig("mlp", "cifar10", record_layers=True)
    >>> layer_history(RunResult(config, {}, {}, [], [], [], {}, layer_history=rows)).shape
    (1, 6)
    """
    if result.layer_history is None:
        raise ValueError(f"run {result.config.name()} has no layer records; "
                         "run it with record_layers=True")
    return pd.DataFrame(result.layer_history)


def squared_weight_drift(history: pd.DataFrame) -> pd.DataFrame:
    """Figure 5b's drift towards layer-wise conservation, per epoch of ``history``
    (:func:`layer_history`): ``slope`` (log-log fit of mean_sq against 1/size, 1 =
    equal layer totals), ``total spread`` of the layer totals, ``increment spread`` of
    their growth since epoch 0 (0 = every layer gained the same, as under gradient
    flow; NaN at epoch 0) and ``total max/min``. Indexed by epoch.

    >>> history = pd.DataFrame({"epoch": [0, 0, 1, 1], "layer": ["a", "b", "a", "b"],
    ...                         "size": [10, 1000, 10, 1000], "total_sq": [1.0, 1.0, 2.0, 3.0]})
    >>> history["mean_sq"] = history["total_sq"] / history["size"]
    >>> squared_weight_drift(history)[["slope", "total max/min"]].round(3)
           slope  total max/min
    epoch
    0      1.000            1.0
    1      0.912            1.5
    """
    initial = history[history["epoch"] == 0].set_index("layer")["total_sq"]
    rows = []
    for epoch, part in history.groupby("epoch"):
        part = part.set_index("layer")
        rows.append({
            "epoch": epoch,
            "slope": fit_slope(part["size"], part["mean_sq"]),
            "total spread": total_spread(part["total_sq"]),
            "increment spread": (total_spread(part["total_sq"] - initial) if epoch
                                 else np.nan),
            "total max/min": part["total_sq"].max() / part["total_sq"].min(),
        })
    return pd.DataFrame(rows).set_index("epoch")
