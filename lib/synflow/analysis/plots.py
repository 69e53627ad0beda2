"""Figures: one style, saving that gives byte-identical files on every run, and the
accuracy-vs-compression plots of Figures 1 and 6."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..core.scorers import PAPER_METHODS
from ..utils.paths import figures_dir
from .tables import CHANCE, DATASET_LABELS, band, model_label

METHOD_ORDER = list(PAPER_METHODS)
METHOD_COLORS = dict(zip(METHOD_ORDER, sns.color_palette("colorblind", len(METHOD_ORDER))))


# fixed SVG ids (a constant hash salt) and text as paths, so SVG files are byte-stable
STABLE_SVG = {"svg.hashsalt": "synflow", "svg.fonttype": "path"}


def use_style() -> None:
    """Set the project's plot style (seaborn whitegrid, colorblind palette, byte-stable
    SVG settings) in matplotlib's global ``rcParams``.

    >>> with matplotlib.rc_context():  # restores the caller's style afterwards
    ...     use_style()
    ...     matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["axes.grid"]
    ('path', True)
    """
    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    matplotlib.rcParams.update(STABLE_SVG)


def save_figure(fig, name: str) -> list:
    """Save ``fig`` as ``<figures dir>/<name>.png`` and ``.svg``, without timestamps
    or software versions, so an unchanged figure gives unchanged files. Returns the paths.
    The current style is left as it is (only the SVG settings above apply while saving).

    >>> import os, tempfile; from unittest import mock
    >>> fig = plt.figure()
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_FIGURES": tempfile.mkdtemp()}):
    ...     [path.name for path in save_figure(fig, "empty")]
    ['empty.png', 'empty.svg']
    >>> plt.close(fig)
    """
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(STABLE_SVG):
        for suffix, metadata in (
            (".png", {"Software": None}),
            (".svg", {"Date": None, "Creator": None}),
        ):
            path = folder / f"{name}{suffix}"
            fig.savefig(path, dpi=110, bbox_inches="tight", metadata=metadata)
            paths.append(path)
    return paths


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
    as theirs. A dotted line marks chance. Returns the figure.

    >>> ours = pd.DataFrame({"dataset": "cifar10", "model": "vgg16_bn", "width": 1.0,
    ...     "method": "snip", "log10_compression": [0.0, 1.0], "best_top1": [90.0, 80.0]})
    >>> fig = plot_accuracy_vs_compression(ours, methods=["snip"])
    >>> [ax.get_title() for ax in fig.axes]
    ['CIFAR-10, VGG-16']
    >>> plt.close(fig)
    """
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
    labelled as theirs. Returns the figure.

    >>> ours = pd.DataFrame({"dataset": "cifar10", "model": "vgg16_bn", "width": 1.0,
    ...     "method": "snip", "log10_compression": [0.0, 1.0], "best_top1": [90.0, 80.0]})
    >>> critical = pd.DataFrame({"method": ["snip"], "log10_critical": [1.5],
    ...                          "log10_rho_max": [2.0]})
    >>> fig = plot_layer_collapse(ours, critical, methods=["snip"], title="VGG-16")
    >>> len(fig.axes), fig.axes[0].get_title()
    (1, 'VGG-16')
    >>> plt.close(fig)
    """
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
