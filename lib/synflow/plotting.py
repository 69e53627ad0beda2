"""Figure helpers: one style, and saving that gives byte-identical files on every run."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

from .paths import figures_dir

METHOD_ORDER = ["random", "magnitude", "snip", "grasp", "synflow"]
METHOD_COLORS = dict(zip(METHOD_ORDER, sns.color_palette("colorblind", len(METHOD_ORDER))))


# fixed SVG ids (a constant hash salt) and text as paths, so SVG files are byte-stable
STABLE_SVG = {"svg.hashsalt": "synflow", "svg.fonttype": "path"}


def use_style() -> None:
    """The project's plot style (seaborn whitegrid, colorblind palette)."""
    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    matplotlib.rcParams.update(STABLE_SVG)


def save_figure(fig, name: str) -> list:
    """Save ``fig`` as ``<figures dir>/<name>.png`` and ``.svg``, without timestamps
    or software versions, so an unchanged figure gives unchanged files. Returns the paths.
    The current style is left as it is (only the SVG settings above apply while saving)."""
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


__all__ = ["METHOD_COLORS", "METHOD_ORDER", "plt", "save_figure", "sns", "use_style"]
