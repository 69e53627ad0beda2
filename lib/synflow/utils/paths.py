"""Where things live. Every path comes from an environment variable or a fixed default,
never from the current working directory, and nothing is ever written inside the
installed package.

| what     | environment variable | in a checkout (editable install) | installed from a wheel            |
|----------|----------------------|----------------------------------|-----------------------------------|
| data     | SYNFLOW_DATA         | <repo>/data                      | $XDG_DATA_HOME/synflow/data       |
| results  | SYNFLOW_RESULTS      | <repo>/results                   | $XDG_DATA_HOME/synflow/results    |
| figures  | SYNFLOW_FIGURES      | <repo>/figures                   | $XDG_DATA_HOME/synflow/figures    |
| cache    | SYNFLOW_CACHE        | $XDG_CACHE_HOME/synflow          | $XDG_CACHE_HOME/synflow           |

``$XDG_DATA_HOME`` defaults to ``~/.local/share`` and ``$XDG_CACHE_HOME`` to ``~/.cache``.
A checkout is recognised by the repository's ``pyproject.toml`` two folders above the
package (``<repo>/lib/synflow``). The paper's reference data ship inside the package
(:mod:`synflow.analysis.reference`).

>>> from synflow.utils.paths import data_root
>>> str(data_root("/srv/datasets"))
'/srv/datasets'
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def repo_root() -> Path | None:
    """The repository this package runs from (``<repo>/lib/synflow``, an editable
    install), or None when it is installed elsewhere (a wheel, site-packages).

    >>> root = repo_root()
    >>> root is None or (root / "lib" / "synflow" / "__init__.py").is_file()
    True
    """
    candidate = PACKAGE_DIR.parents[1]
    pyproject = candidate / "pyproject.toml"
    if PACKAGE_DIR.parent.name == "lib" and pyproject.is_file() and (
            'name = "synflow"' in pyproject.read_text(encoding="utf-8")):
        return candidate
    return None


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else Path.home() / fallback


def _default(name: str) -> Path:
    root = repo_root()
    return root / name if root is not None else _xdg("XDG_DATA_HOME", ".local/share") / "synflow" / name


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root, an absolute Path: ``root`` if given, else $SYNFLOW_DATA, else the
    default (table above).

    >>> data_root("/srv/datasets/../data")
    PosixPath('/srv/data')
    """
    if root is not None:
        return Path(root).expanduser().resolve()
    return _from_env("SYNFLOW_DATA", _default("data"))


def figures_dir() -> Path:
    """Where notebooks save figures: $SYNFLOW_FIGURES, else the default (table above).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_FIGURES": "/tmp/synflow-figures"}):
    ...     print(figures_dir())
    /tmp/synflow-figures
    """
    return _from_env("SYNFLOW_FIGURES", _default("figures"))


def results_dir() -> Path:
    """Where the results store writes runs: $SYNFLOW_RESULTS, else the default (table above).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_RESULTS": "/tmp/synflow-results"}):
    ...     print(results_dir())
    /tmp/synflow-results
    """
    return _from_env("SYNFLOW_RESULTS", _default("results"))


def cache_dir() -> Path:
    """Decoded-image cache: $SYNFLOW_CACHE, else $XDG_CACHE_HOME/synflow or ~/.cache/synflow.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_CACHE": "/tmp/synflow-cache"}):
    ...     print(cache_dir())
    /tmp/synflow-cache
    """
    return _from_env("SYNFLOW_CACHE", _xdg("XDG_CACHE_HOME", ".cache") / "synflow")
