"""The claims each notebook makes, computed by the notebook and written beside its figures.

Every notebook ends by building its claims from the values it computed and saving them
with :func:`save_claims` as ``<figures dir>/<notebook>_claims.csv`` (the figures folder
of :func:`synflow.utils.paths.figures_dir`: ``figures/`` for the committed laptop run,
``figures/<profile>/`` for the others). The file has exactly the columns
``notebook, figure, claim, ours, paper, match``: ``ours`` and ``paper`` are computed
numbers formatted as strings (:func:`claim` formats them; ``paper`` is "" where the paper
gives none), ``match`` is "yes", "no" or "n/a", decided in the notebook by a rule whose
tolerance the claim's text states. Rows are sorted and every value is a string, so the
same numbers give the same bytes. :func:`load_claims` reads a folder's files back (for
the README's table and the docs' results pages; no number is typed by hand).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> rows = [claim("Fig 4", "SynFlow's slope (match: within 0.05)", 1.0, 1.0,
...               within(1.0, 1.0, 0.05), digits=3)]
>>> save_claims(rows, "01_conservation", folder=folder).name
'01_conservation_claims.csv'
>>> load_claims(folder).iloc[0][["figure", "ours", "paper", "match"]].tolist()
['Fig 4', '1.000', '1.000', 'yes']
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.files import atomic_write
from ..utils.paths import figures_dir

COLUMNS = ("notebook", "figure", "claim", "ours", "paper", "match")
MATCHES = ("yes", "no", "n/a")
SUFFIX = "_claims.csv"
_NOTEBOOK = re.compile(r"[0-9]{2}_[a-z0-9_]+")


def number(value, digits: int = 2) -> str:
    """``value`` as fixed-point text with ``digits`` decimals ("" for None; "inf", "nan"
    as such; -0 as 0; a bool as "yes"/"no"; text unchanged).

    >>> number(3.14159), number(-0.001), number(None), number(True), number(7, 0)
    ('3.14', '0.00', '', 'yes', '7')
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    text = f"{value:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def verdict(holds) -> str:
    """"yes" if ``holds`` else "no" (``holds`` may be a numpy bool); "n/a" for None.

    >>> import numpy as np
    >>> verdict(np.bool_(True)), verdict(0), verdict(None)
    ('yes', 'no', 'n/a')
    """
    return "n/a" if holds is None else ("yes" if bool(holds) else "no")


def within(ours, paper, tolerance: float) -> str:
    """"yes" when |ours - paper| <= tolerance (up to float round-off: 1.05 is within 0.05
    of 1.0), "no" otherwise, "n/a" when either is missing (None or NaN).

    >>> within(0.742, 0.743, 0.01), within(0.81, 0.0, 0.05), within(1.0, None, 0.1)
    ('yes', 'no', 'n/a')
    """
    if ours is None or paper is None or math.isnan(float(ours)) or math.isnan(float(paper)):
        return "n/a"
    return verdict(abs(float(ours) - float(paper)) <= tolerance * (1 + 1e-9) + 1e-12)


def claim(figure: str, text: str, ours, paper=None, match: str = "n/a", *,
          digits: int = 2) -> dict:
    """One claim row: ``ours`` and ``paper`` formatted by :func:`number` with ``digits``
    decimals (text is kept as it is; ``paper`` None gives ""). ``match`` must be one of
    :data:`MATCHES` (checked by :func:`save_claims`).

    >>> claim("Fig. 1", "critical compression", 2.0 / 3, 0.7)
    {'figure': 'Fig. 1', 'claim': 'critical compression', 'ours': '0.67', 'paper': '0.70', 'match': 'n/a'}
    """
    return {"figure": figure, "claim": text, "ours": number(ours, digits),
            "paper": number(paper, digits), "match": match}


def _checked(rows: Iterable[Mapping], notebook: str) -> list[dict]:
    if not isinstance(notebook, str) or not _NOTEBOOK.fullmatch(notebook):
        raise ValueError(f"notebook {notebook!r} is not a notebook stem like '02_layer_collapse'")
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or set(row) != set(COLUMNS[1:]):
            keys = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(f"claim {index} has the keys {keys}; a claim has exactly "
                             f"{list(COLUMNS[1:])} (build it with claim())")
        for column in COLUMNS[1:]:
            if not isinstance(row[column], str):
                raise TypeError(f"claim {index}: {column} = {row[column]!r} is not text; "
                                 "format numbers with claim() or number()")
        if row["match"] not in MATCHES:
            raise ValueError(f"claim {index}: match {row['match']!r} is not one of {MATCHES}")
        if not row["figure"] or not row["claim"]:
            raise ValueError(f"claim {index} needs a figure and a claim text, got {dict(row)}")
        checked.append({"notebook": notebook, **{c: row[c] for c in COLUMNS[1:]}})
    if not checked:
        raise ValueError(f"no claims given for {notebook}")
    return sorted(checked, key=lambda row: tuple(row[c] for c in COLUMNS))


def save_claims(rows: Iterable[Mapping], notebook: str,
                folder: str | os.PathLike | None = None) -> Path:
    """Write ``rows`` (from :func:`claim`) as ``<folder>/<notebook>_claims.csv``,
    atomically, sorted, UTF-8 with "\\n" line ends; ``folder`` defaults to
    :func:`synflow.utils.paths.figures_dir`. Returns the path.

    Raises ValueError naming the bad value (a notebook name that is not a stem like
    "02_layer_collapse", a row without exactly the keys figure, claim, ours, paper,
    match, a match not in :data:`MATCHES`, no rows) and TypeError for a value that is
    not text; nothing is written then.

    >>> import tempfile
    >>> path = save_claims([claim("Fig. 1", "holds", True, match="n/a")], "02_layer_collapse", tempfile.mkdtemp())
    >>> path.name, path.read_text().splitlines()[0]
    ('02_layer_collapse_claims.csv', 'notebook,figure,claim,ours,paper,match')
    >>> save_claims([], "layer collapse", tempfile.mkdtemp())
    Traceback (most recent call last):
        ...
    ValueError: notebook 'layer collapse' is not a notebook stem like '02_layer_collapse'
    """
    checked = _checked(rows, notebook)
    path = Path(folder if folder is not None else figures_dir()) / f"{notebook}{SUFFIX}"

    def write(file):
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(checked)

    return atomic_write(path, write, text=True)


def load_claims(folder: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every ``*_claims.csv`` of ``folder`` (default: the figures folder) as one table
    with the columns of :data:`COLUMNS`, all text, in notebook order.

    Raises FileNotFoundError naming the folder when it holds no claims file, and
    ValueError naming a file whose columns or matches are not those of
    :func:`save_claims`.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_claims([claim("Fig. 1", "holds", True)], "02_layer_collapse", folder)
    >>> load_claims(folder).to_dict("records")
    [{'notebook': '02_layer_collapse', 'figure': 'Fig. 1', 'claim': 'holds', 'ours': 'yes', 'paper': '', 'match': 'n/a'}]
    """
    folder = Path(folder if folder is not None else figures_dir())
    paths = sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"no *{SUFFIX} files in {folder}; run the notebooks first")
    tables = []
    for path in paths:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if tuple(table.columns) != COLUMNS:
            raise ValueError(f"{path} has the columns {list(table.columns)}, not {list(COLUMNS)}")
        bad = sorted(set(table["match"]) - set(MATCHES))
        if bad:
            raise ValueError(f"{path} has matches {bad}, not one of {MATCHES}")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
