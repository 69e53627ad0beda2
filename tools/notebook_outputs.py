"""Claims read from a notebook's printed tables, for notebooks executed before they wrote
claims files.

The paper profile of 01-03 (``notebooks/paper/``, executed at commit 6ac611a, 181 min of
CPU time) predates ``synflow.analysis.report.save_claims``; rather than re-running it, its
claims are read from the tables those notebooks printed (pandas' HTML output, parsed with
the standard library). Each extractor names the table it needs by its column labels and
fails with the notebook's name when the table is not there; the match rule of each claim
is stated in its text, which describes the paper profile's networks: ``tools/paper_claims.py``
uses an extractor only at the paper profile, and only for a notebook with no claims file.
"""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

METHODS = {"random": "Random", "magnitude": "Magnitude", "snip": "SNIP", "grasp": "GraSP",
           "synflow": "SynFlow"}


class _Tables(HTMLParser):
    """Every <table> of an HTML text as rows of (is_header, text, colspan) cells."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "body": []})
            self._part = "head"
        elif tag in ("thead", "tbody"):
            self._part = tag[1:]
        elif tag == "tr" and self.tables:
            self.tables[-1][self._part].append([])
        elif tag in ("th", "td") and self.tables:
            self._cell = [tag == "th", "", int(dict(attrs).get("colspan", 1))]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            text = self._cell[1].strip()
            self.tables[-1][self._part][-1] += [text] * self._cell[2]
            self._cell = None


class Table:
    """A pandas table: ``row_labels`` and ``value(row, *column)``; a column is named by the
    tuple of its non-empty header labels, top to bottom (``("ours", "linear", "2.0")``)."""

    def __init__(self, head: list[list[str]], body: list[list[str]]):
        width = max(len(row) for row in head + body)
        self.columns = [
            tuple(row[j] for row in head if j < len(row) and row[j]) for j in range(1, width)
        ]
        self.rows = {row[0]: row[1:] for row in body}

    @property
    def row_labels(self) -> list[str]:
        return list(self.rows)

    def value(self, row: str, *column: str) -> str:
        return self.rows[row][self.columns.index(tuple(column))]


def tables(notebook: Path) -> list[Table]:
    """Every table in the HTML outputs of ``notebook``, in cell order."""
    found = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html:
                parser = _Tables()
                parser.feed("".join(html))
                found += [Table(t["head"], t["body"]) for t in parser.tables if t["body"]]
    return found


def find_table(notebook: Path, *columns: tuple[str, ...]) -> Table:
    """The first table of ``notebook`` that has every one of ``columns``."""
    for table in tables(notebook):
        if all(column in table.columns for column in columns):
            return table
    raise ValueError(f"{notebook}: no printed table has the columns {list(columns)}; the "
                     "claims of a notebook executed after the claims files existed come from "
                     "its <figures>/<notebook>_claims.csv")


def _within(ours: str, paper: str, tolerance: float) -> str:
    return "yes" if abs(float(ours) - float(paper)) <= tolerance + 1e-12 else "no"


def _row(notebook, figure, claim, ours, paper, match):
    return {"notebook": notebook, "figure": figure, "claim": claim, "ours": ours,
            "paper": paper, "match": match}


def conservation(notebook: Path) -> list[dict]:
    """01: Figure 3's per-unit correlation and Figure 4's slope, per method."""
    r_ours, r_paper = ("Fig 3 r, ours (paper's units)",), ("Fig 3 r, paper",)
    s_ours, s_paper = ("Fig 4 slope, ours",), ("Fig 4 slope, paper",)
    table = find_table(notebook, r_ours, r_paper, s_ours, s_paper)
    rows = []
    for key in table.row_labels:
        name = METHODS.get(key, key)
        r, rp = table.value(key, *r_ours), table.value(key, *r_paper)
        s, sp = table.value(key, *s_ours), table.value(key, *s_paper)
        rows += [
            _row("01_conservation", "Figure 3", f"{name}: Pearson r of incoming vs outgoing score "
                 "per unit; match: within 0.02",
                 r, rp, _within(r, rp, 0.02)),
            _row("01_conservation", "Figure 4", f"{name}: slope of a layer's average score vs "
                 "1/size (log-log); match: within 0.02", s, sp, _within(s, sp, 0.02)),
        ]
    return rows


def layer_collapse(notebook: Path) -> list[dict]:
    """02: Figure 2's first collapse per method and Figure 1's critical compressions."""
    first, layers = ("ours: first empty at",), ("ours: empty layers (index)",)
    paper_first, paper_layers = ("paper: first empty at",), ("paper: empty layers (index)",)
    fig2 = find_table(notebook, first, layers, paper_first, paper_layers)
    rows = []
    for key in fig2.row_labels:
        name = METHODS.get(key, key)
        ours_k, paper_k = fig2.value(key, *first), fig2.value(key, *paper_first)
        ours_l, paper_l = fig2.value(key, *layers), fig2.value(key, *paper_layers)
        rows += [
            _row("02_layer_collapse", "Figure 2", f"{name}: first compression 4^k with an empty "
                 "layer; match: the same k", ours_k, paper_k,
                 "yes" if ours_k == paper_k else "no"),
            _row("02_layer_collapse", "Figure 2", f"{name}: the layers empty there (1-19); match: "
                 "the same layers", ours_l, paper_l,
                 "yes" if ours_l == paper_l else "no"),
        ]
    authors = ("authors' runs: last grid point with no empty layer",)
    single, iterative = ("ours single-shot (min over seeds)",), ("ours iterative (100 it.)",)
    fig1 = find_table(notebook, authors, single, iterative)
    for key in fig1.row_labels:
        how = "100 iterations" if key == "synflow" else "single-shot"
        ours = fig1.value(key, *(iterative if key == "synflow" else single))
        paper = fig1.value(key, *authors)
        rows.append(_row(
            "02_layer_collapse", "Figure 1", f"{METHODS.get(key, key)} ({how}): critical "
            "compression, log10 (VGG-16; ours CIFAR-10, the authors' runs CIFAR-100); match: "
            "within 0.25",
            ours, paper, _within(ours, paper, 0.25)))
    return rows


def iterative_pruning(notebook: Path) -> list[dict]:
    """03: the ablation (critical compression vs iterations) and Figure 7 against the paper."""
    methods = [(m,) for m in METHODS if m != "random"]
    ablation = find_table(notebook, *methods)
    rows = []
    for (key,) in methods:
        found = [(int(n), ablation.value(n, key)) for n in ablation.row_labels
                 if not math.isnan(float(ablation.value(n, key)))]
        (n0, c0), (n1, c1) = found[0], found[-1]
        rows.append(_row(
            "03_iterative_pruning", "Ablation", f"{METHODS[key]}: critical compression, log10, "
            f"CIFAR VGG-16, {n0} -> {n1} iterations", f"{c0} -> {c1}", "", "n/a"))
    compressions = ("1.0", "2.0", "3.0")
    for schedule in ("exponential", "linear"):
        ours = [find_table(notebook, ("ours", schedule, c)).value("100", "ours", schedule, c)
                for c in compressions]
        paper = [find_table(notebook, ("paper", schedule, c)).value("100", "paper", schedule, c)
                 for c in compressions]
        match = all(abs(float(o) / float(p) - 1) <= 0.02 for o, p in zip(ours, paper))
        rows.append(_row(
            "03_iterative_pruning", "Figure 7", f"{schedule.capitalize()} schedule: prune-size "
            "ratio after 100 iterations at 10^1 / 10^2 / 10^3; match: each within 2 %", " / ".join(ours), " / ".join(paper),
            "yes" if match else "no"))
    return rows


EXTRACTORS = {
    "01_conservation": conservation,
    "02_layer_collapse": layer_collapse,
    "03_iterative_pruning": iterative_pruning,
}
