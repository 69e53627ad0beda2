"""Helpers of the accuracy-vs-compression notebook (the paper's Figures 6 and 1).

Plain functions, each usable on its own:

* :func:`sweep_configs`: the list of :class:`synflow.store.RunConfig` of a sweep
  (models x methods x compressions x seeds, one dense run per model and seed);
* :func:`accuracy_table`: the stored runs as a tidy table, one row per
  (model, method, compression, seed), the dense run standing for every method
  at compression 10^0;
* :func:`load_fig6_reference`, :func:`load_fig1_reference`: the authors'
  plotted numbers in the same tidy shape;
* :func:`band`, :func:`differences`: mean / min / max over seeds, and ours
  minus theirs where the two grids meet;
* :func:`measured_critical`, :func:`empty_layer_counts`: where each method's
  mask first empties a layer (data-free, no training) for the Figure-1 arrows;
* :func:`plot_accuracy_vs_compression`, :func:`plot_layer_collapse`: the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import analysis
from .masks import current_masks, empty_layers
from .paths import paper_reference
from .plotting import METHOD_COLORS, METHOD_ORDER, plt
from .pruning import prune, select
from .scores import DATA_METHODS, compute_scores
from .store import DENSE, RunConfig

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
# the authors' model names in the reference CSVs -> ours. Their "WRN-18" ignores its
# width and is exactly a ResNet-18; ours ("wrn18_2") is the real WRN-18-2.
REFERENCE_MODELS = {"wide_resnet18": "wrn18_2"}
# the network a model name stands for on a dataset, as in the authors' runs: on Tiny
# ImageNet their VGGs are Models/tinyimagenet_vgg.py (five pools, a 3-layer 1024-wide
# head), not the CIFAR ones; ResNet-18 / WRN-18 are the same network on every dataset
DATASET_MODELS = {
    "tinyimagenet": {f"vgg{d}{bn}": f"vgg{d}{bn}_tiny" for d in (11, 13, 16, 19)
                     for bn in ("", "_bn")},
}


def dataset_model(model: str, dataset: str) -> str:
    """The model that stands for ``model`` on ``dataset`` (``DATASET_MODELS``; e.g.
    "vgg16_bn" on "tinyimagenet" is "vgg16_bn_tiny"), else ``model`` itself."""
    return DATASET_MODELS.get(dataset, {}).get(model, model)
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}


def model_label(model: str, width: float = 1.0) -> str:
    name = MODEL_LABELS.get(model, model)
    return name if width == 1 else f"{name} (width {width:g})"


# ------------------------------------------------------------------ the sweep


def sweep_configs(
    models: dict[str, float],
    dataset: str,
    log10_compressions: Iterable[float],
    methods: Iterable[str],
    seeds: Iterable[int],
    *,
    synflow_iterations: int = 100,
    **training,
) -> list[RunConfig]:
    """Every run of the sweep, cheapest first within a seed.

    ``models`` maps model name to width; on each dataset a name stands for the authors'
    network there (:func:`dataset_model`: "vgg16_bn" is "vgg16_bn_tiny" on Tiny
    ImageNet, as in their Figure 6). Exponent 0 (compression 1) is one dense
    run per (model, seed), shared by every method; SynFlow prunes in
    ``synflow_iterations`` steps, the other methods in one shot (as in the
    paper). ``training`` holds the other RunConfig fields (``subset``,
    ``epochs``, ``lr``, ``batch_size``, ``prune_per_class``, ``preset``).
    Seed-major order, so an interrupted sweep has whole seeds done.
    """
    exponents = sorted(float(e) for e in log10_compressions)
    if any(e < 0 for e in exponents):
        raise ValueError(f"log10 compressions must be >= 0, got {exponents}")
    configs = []
    for seed in seeds:
        for model, width in models.items():
            common = dict(model=dataset_model(model, dataset), dataset=dataset, width=width,
                          seed=seed, **training)
            if 0 in exponents:
                configs.append(RunConfig(pruner=DENSE, **common))
            for exponent in (e for e in exponents if e > 0):
                for method in methods:
                    configs.append(
                        RunConfig(
                            pruner=method,
                            compression=10**exponent,
                            iterations=synflow_iterations if method == "synflow" else 1,
                            **common,
                        )
                    )
    return configs


def accuracy_table(runs: pd.DataFrame, methods: Sequence[str] = METHOD_ORDER) -> pd.DataFrame:
    """Tidy table of stored runs (``synflow.store.frame``): one row per
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


# ------------------------------------------------------------- the reference


def load_fig6_reference(path=None, models: dict[str, str] = REFERENCE_MODELS) -> pd.DataFrame:
    """The authors' Figure 6 numbers: dataset, model, width (1), method, run,
    log10_compression, best_top1 (their plotted best-epoch accuracy). Model
    names are translated by ``models`` (their "wide_resnet18" -> "wrn18_2"), then to
    the network they stand for on each dataset (:func:`dataset_model`: their Tiny
    ImageNet "vgg16_bn" is "vgg16_bn_tiny")."""
    table = pd.read_csv(path or paper_reference("fig6_reference.csv"))
    table["model"] = [dataset_model(model, dataset) for model, dataset in
                      zip(table["model"].replace(models), table["dataset"])]
    return table.rename(columns={"pruner": "method", "top1_best_epoch": "best_top1"}).assign(
        width=1.0
    )[["dataset", "model", "width", "method", "run", "log10_compression", "best_top1"]]


def load_fig1_reference(path=None) -> pd.DataFrame:
    """The authors' Figure 1 numbers (VGG-16 on CIFAR-100): method, run,
    log10_compression, best_top1, final_top1, empty_layers."""
    table = pd.read_csv(path or paper_reference("fig1_reference.csv"))
    table = table.rename(
        columns={
            "pruner": "method",
            "top1_best_epoch": "best_top1",
            "top1_final_epoch": "final_top1",
        }
    )
    return table.assign(dataset="cifar100", model="vgg16_bn", width=1.0)


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


# --------------------------------------------------------- layer-collapse


def _prune_data(method: str, data):
    return data if method in DATA_METHODS else None


def measured_critical(
    model_factory: Callable[[], object],
    methods: Sequence[str] = METHOD_ORDER,
    *,
    synflow_iterations: int = 100,
    data=None,
    input_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
    bisection_steps: int = 2,
) -> pd.DataFrame:
    """Critical compression of each method on ``model_factory()`` (data-free
    search of :func:`synflow.analysis.critical_compression`, no training): the
    largest compression without an empty layer, SynFlow iterative, the others
    single-shot. Columns: method, log10_critical, log10_collapse (None when
    rho_max is reached), log10_rho_max, first_empty."""
    rows = []
    for method in methods:
        found = analysis.critical_compression(
            model_factory,
            method,
            iterations=synflow_iterations if method == "synflow" else 1,
            data=_prune_data(method, data),
            input_shape=input_shape,
            seed=seed,
            bisection_steps=bisection_steps,
        )
        rows.append(
            {
                "method": method,
                "log10_critical": math.log10(found.compression),
                "log10_collapse": math.log10(found.collapse_at) if found.collapse_at else None,
                "log10_rho_max": math.log10(found.max_compression),
                "first_empty": ", ".join(found.first_empty),
            }
        )
    return pd.DataFrame(rows)


def empty_layer_counts(
    model_factory: Callable[[], object],
    methods: Sequence[str],
    log10_compressions: Iterable[float],
    *,
    synflow_iterations: int = 100,
    data=None,
    input_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
) -> pd.DataFrame:
    """Number of empty layers of each method's mask at each compression (no
    training). Single-shot methods score once and select per compression;
    SynFlow (``synflow_iterations`` > 1) prunes a fresh model iteratively per
    compression, which is costly. Compressions above N are clipped to N (one
    weight left). Columns: method, log10_compression, empty_layers."""
    model = model_factory()
    total = sum(m.numel() for m in current_masks(model).values())
    rows = []
    for method in methods:
        single = None
        for exponent in log10_compressions:
            compression = min(10.0**exponent, float(total))
            if method == "synflow" and synflow_iterations > 1:
                # the whole schedule: the final mask, whose empty layers are counted
                masks = prune(
                    model_factory(), method, compression, iterations=synflow_iterations,
                    input_shape=input_shape, seed=seed,
                )
            else:
                if single is None:
                    single = compute_scores(
                        model, method, data=_prune_data(method, data), input_shape=input_shape,
                        seed=seed,
                    )
                masks = select(single, 1.0 / compression)
            rows.append(
                {"method": method, "log10_compression": float(exponent),
                 "empty_layers": len(empty_layers(masks))}
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ figures


def _draw_band(ax, summary: pd.DataFrame, method: str, **style):
    part = summary[summary["method"] == method].sort_values("log10_compression")
    if part.empty:
        return
    x = 10 ** part["log10_compression"].to_numpy()
    color = METHOD_COLORS.get(method)
    ax.plot(x, part["mean"], color=color, **style)
    if (part["count"] > 1).any():
        ax.fill_between(x, part["min"], part["max"], color=color, alpha=0.2, linewidth=0)


def plot_accuracy_vs_compression(
    ours: pd.DataFrame,
    theirs: pd.DataFrame | None = None,
    *,
    value: str = "best_top1",
    methods: Sequence[str] = METHOD_ORDER,
    panel_width: float = 4.2,
):
    """Figure 6: one panel per (dataset, model, width) of ``ours`` (a table from
    :func:`accuracy_table`): mean over seeds (solid, markers) and min-max band
    of ``value`` vs compression (log x). Where ``theirs`` (authors' runs) has the
    same dataset and model, their mean and band are drawn dashed and labelled
    as theirs. A dotted line marks chance. Returns the figure."""
    summary = band(ours, value)
    reference = band(theirs, value) if theirs is not None and len(theirs) else None
    panels = summary[["dataset", "model", "width"]].drop_duplicates().to_records(index=False)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(panel_width * len(panels) + 2.6, 3.6), squeeze=False
    )
    kind = "best-epoch" if value == "best_top1" else "final-epoch"
    for ax, (dataset, model, width) in zip(axes[0], panels):
        mine = summary[(summary["dataset"] == dataset) & (summary["model"] == model)
                       & (summary["width"] == width)]
        paper = None
        if reference is not None:
            paper = reference[(reference["dataset"] == dataset) & (reference["model"] == model)]
        for method in methods:
            _draw_band(ax, mine, method, marker="o", markersize=3.5, linewidth=1.6)
            if paper is not None:
                _draw_band(ax, paper, method, linestyle="--", linewidth=1.0)
        ax.axhline(CHANCE.get(dataset, 0), color="0.5", linestyle=":", linewidth=1)
        ax.set(xscale="log", xlabel="compression ratio",
               title=f"{DATASET_LABELS.get(dataset, dataset)}, {model_label(model, width)}")
        ax.title.set_fontsize("medium")
    axes[0][0].set_ylabel(f"top-1 accuracy (%)\n{kind}")
    handles = [plt.Line2D([], [], color=METHOD_COLORS.get(m), marker="o", markersize=3.5, label=m)
               for m in methods]
    handles.append(plt.Line2D([], [], color="0.3", marker="o", markersize=3.5,
                              label="ours: mean, band = min-max over seeds"))
    if reference is not None:
        handles.append(plt.Line2D([], [], color="0.3", linestyle="--",
                                  label="authors' runs (fig6_reference.csv)"))
    handles.append(plt.Line2D([], [], color="0.5", linestyle=":", label="chance"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1),
                       fontsize="small")
    fig.tight_layout()
    return fig


def plot_layer_collapse(
    ours: pd.DataFrame,
    critical: pd.DataFrame,
    theirs: pd.DataFrame | None = None,
    empty: pd.DataFrame | None = None,
    *,
    value: str = "best_top1",
    methods: Sequence[str] = METHOD_ORDER,
    title: str = "",
):
    """Figure 1: ``ours`` (one model) accuracy vs compression up to rho_max, an
    arrow at each method's measured critical compression (``critical`` from
    :func:`measured_critical`) and a dashed line at rho_max; below it, when
    given, the number of empty layers (``empty`` from :func:`empty_layer_counts`).
    ``theirs`` (the authors' Figure 1 runs) goes into a separate right panel,
    labelled as theirs. Returns the figure."""
    columns = 2 if theirs is not None else 1
    rows = 2 if empty is not None else 1
    fig, axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns + 1.8, 3.4 + 1.6 * (rows - 1)), squeeze=False,
        sharex="col", gridspec_kw={"height_ratios": [3, 1.3][:rows]},
    )
    kind = "best-epoch" if value == "best_top1" else "final-epoch"
    rho_max = 10 ** float(critical["log10_rho_max"].iloc[0])
    summary = band(ours, value)
    top = axes[0][0]
    for method in methods:
        _draw_band(top, summary, method, marker="o", markersize=3.5, linewidth=1.6)
    high = float(summary["max"].max()) if len(summary) else 1.0
    top_y = high * 1.45
    for index, row in enumerate(critical.set_index("method").loc[
            [m for m in methods if m in set(critical["method"])]].itertuples()):
        x = 10**row.log10_critical
        tip = high * (1.08 + 0.05 * index)  # staggered, so arrows at one compression stay apart
        top.annotate("", xy=(x, tip), xytext=(x, top_y), xycoords=("data", "data"),
                     arrowprops={"arrowstyle": "-|>", "color": METHOD_COLORS.get(row.Index),
                                 "linewidth": 1.8})
    dataset = ours["dataset"].iloc[0] if len(ours) else "cifar10"
    for ax in axes[:, 0]:
        ax.axvline(rho_max, color="0.2", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlim(0.8, rho_max * 3)
    top.axhline(CHANCE.get(dataset, 0), color="0.5", linestyle=":", linewidth=1)
    top.set(ylabel=f"top-1 (%)\n{kind}", title=title or "ours")
    top.set_ylim(0, top_y)
    top.title.set_fontsize("medium")
    if empty is not None:
        bottom = axes[1][0]
        for method in methods:
            part = empty[empty["method"] == method]
            bottom.step(10 ** part["log10_compression"], part["empty_layers"], where="post",
                        color=METHOD_COLORS.get(method), linewidth=1.4)
        bottom.set(ylabel="empty layers", xlabel="compression ratio")
    else:
        top.set_xlabel("compression ratio")
    if theirs is not None:
        paper = band(theirs, value)
        right = axes[0][1]
        for method in methods:
            _draw_band(right, paper, method, linestyle="--", linewidth=1.2)
        right.set(xscale="log", title="authors' runs: VGG-16, CIFAR-100 (fig1_reference.csv)",
                  ylabel=f"top-1 (%)\n{kind}")
        right.title.set_fontsize("medium")
        right.axhline(CHANCE["cifar100"], color="0.5", linestyle=":", linewidth=1)
        if rows == 2:
            lower = axes[1][1]
            counts = theirs.groupby(["method", "log10_compression"])["empty_layers"].max()
            for method in methods:
                if method in counts.index.get_level_values(0):
                    part = counts.loc[method]
                    lower.step(10 ** part.index.to_numpy(), part.to_numpy(), where="post",
                               color=METHOD_COLORS.get(method), linestyle="--", linewidth=1.2)
            lower.set(ylabel="empty layers (max)", xlabel="compression ratio")
    handles = [plt.Line2D([], [], color=METHOD_COLORS.get(m), label=m) for m in methods]
    handles += [
        plt.Line2D([], [], color="0.3", marker=r"$\downarrow$", linestyle="none",
                   label="measured critical compression"),
        plt.Line2D([], [], color="0.2", linestyle="--", label=r"$\rho_{max}$ (1 weight per layer)"),
    ]
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1),
                       fontsize="small")
    fig.tight_layout()
    return fig


__all__ = [
    "accuracy_table",
    "band",
    "dataset_model",
    "differences",
    "empty_layer_counts",
    "load_fig1_reference",
    "load_fig6_reference",
    "measured_critical",
    "model_label",
    "plot_accuracy_vs_compression",
    "plot_layer_collapse",
    "sweep_configs",
]
