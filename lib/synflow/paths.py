"""Where things live. Every path comes from the package's location or an
environment variable, never from the current working directory.

| what     | environment variable | default                          |
|----------|----------------------|----------------------------------|
| data     | SYNFLOW_DATA         | <repo>/data                      |
| figures  | SYNFLOW_FIGURES      | <repo>/figures                   |
| results  | SYNFLOW_RESULTS      | <repo>/results                   |
| cache    | SYNFLOW_CACHE        | ~/.cache/synflow (XDG_CACHE_HOME) |
| paper    | SYNFLOW_PAPER        | <repo>/paper (the authors' reference CSVs) |
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


def paper_dir() -> Path:
    """The authors' reference data: $SYNFLOW_PAPER, else <repo>/paper (shipped with the repo)."""
    return _from_env("SYNFLOW_PAPER", REPO_ROOT / PAPER_DIR_NAME)


def paper_reference(name: str) -> Path:
    """A file of the paper's reference data (e.g. "fig6_reference.csv"), from :func:`paper_dir`.

    Raises:
        FileNotFoundError: naming the file and the folder looked in.
    """
    path = paper_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"reference file {name!r} not found in {path.parent}; the repository ships "
            f"{REPO_ROOT / PAPER_DIR_NAME} (see paper/README.md), and SYNFLOW_PAPER may name "
            "another folder holding the paper's reference CSVs"
        )
    return path
