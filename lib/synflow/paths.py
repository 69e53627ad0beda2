"""Where things live. Every path comes from the package's location or an
environment variable, never from the current working directory.

| what     | environment variable | default                          |
|----------|----------------------|----------------------------------|
| data     | SYNFLOW_DATA         | <repo>/data                      |
| figures  | SYNFLOW_FIGURES      | <repo>/figures                   |
| results  | SYNFLOW_RESULTS      | <repo>/results                   |
| cache    | SYNFLOW_CACHE        | ~/.cache/synflow (XDG_CACHE_HOME) |
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PAPER_DIR_NAME = "paper"


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else $SYNFLOW_DATA, else <repo>/data."""
    if root is not None:
        return Path(root).expanduser().resolve()
    return _from_env("SYNFLOW_DATA", REPO_ROOT / "data")


def figures_dir() -> Path:
    """Where notebooks save figures: $SYNFLOW_FIGURES, else <repo>/figures."""
    return _from_env("SYNFLOW_FIGURES", REPO_ROOT / "figures")


def results_dir() -> Path:
    """Where the results store writes runs: $SYNFLOW_RESULTS, else <repo>/results."""
    return _from_env("SYNFLOW_RESULTS", REPO_ROOT / "results")


def cache_dir() -> Path:
    """Decoded-image cache: $SYNFLOW_CACHE, else $XDG_CACHE_HOME/synflow or ~/.cache/synflow."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    default = Path(xdg) / "synflow" if xdg else Path.home() / ".cache" / "synflow"
    return _from_env("SYNFLOW_CACHE", default)


def paper_reference(name: str) -> Path:
    """A file of the paper's reference data (e.g. "fig6_reference.csv").

    Looked up in $SYNFLOW_PAPER, then <repo>/../shared/paper (this workplace's
    layout), then <repo>/paper.
    """
    candidates = []
    if os.environ.get("SYNFLOW_PAPER"):
        candidates.append(Path(os.environ["SYNFLOW_PAPER"]).expanduser())
    candidates += [REPO_ROOT.parent / "shared" / PAPER_DIR_NAME, REPO_ROOT / PAPER_DIR_NAME]
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"reference file {name!r} not found; looked in: {', '.join(str(c) for c in candidates)}. "
        "Set SYNFLOW_PAPER to the folder holding the paper's reference CSVs."
    )
