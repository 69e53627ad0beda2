"""synflow.analysis.report: each notebook's claims as a byte-stable CSV beside its figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synflow.analysis import report
from synflow.analysis.report import claim, load_claims, number, save_claims, verdict, within

ROWS = [
    claim("Fig 4", "SynFlow's slope (match: within 0.05)", 1.0004, 1.0, within(1.0004, 1.0, 0.05),
          digits=3),
    claim("Fig 3", "random's r (match: within 0.05)", 0.805, 0.0, within(0.805, 0.0, 0.05),
          digits=3),
    claim("Fig 2", "iterative SynFlow keeps every layer below rho_max", True, None,
          verdict(np.bool_(True))),
]


def test_saved_claims_are_sorted_text_with_exactly_the_columns(tmp_path):
    path = save_claims(ROWS, "01_conservation", folder=tmp_path)
    assert path == tmp_path / "01_conservation_claims.csv"
    assert path.read_text(encoding="utf-8").splitlines() == [
        "notebook,figure,claim,ours,paper,match",
        "01_conservation,Fig 2,iterative SynFlow keeps every layer below rho_max,yes,,yes",
        "01_conservation,Fig 3,random's r (match: within 0.05),0.805,0.000,no",
        "01_conservation,Fig 4,SynFlow's slope (match: within 0.05),1.000,1.000,yes",
    ]
    table = load_claims(tmp_path)
    assert tuple(table.columns) == report.COLUMNS
    assert table["paper"].tolist() == ["", "0.000", "1.000"]  # "" stays "", not NaN


def test_the_same_claims_give_the_same_bytes_in_any_order(tmp_path):
    first = save_claims(ROWS, "01_conservation", folder=tmp_path / "a").read_bytes()
    second = save_claims(ROWS[::-1], "01_conservation", folder=tmp_path / "b").read_bytes()
    assert first == second and b"\r" not in first


def test_load_claims_reads_every_notebooks_file_and_keeps_na_as_text(tmp_path):
    save_claims([claim("Fig 7", "a ratio", 0.5, None, "n/a")], "03_iterative_pruning",
                folder=tmp_path)
    save_claims(ROWS[:1], "01_conservation", folder=tmp_path)
    (tmp_path / "notes.csv").write_text("not,a,claims,file\n")
    table = load_claims(tmp_path)
    assert table["notebook"].tolist() == ["01_conservation", "03_iterative_pruning"]
    assert table["match"].tolist() == ["yes", "n/a"]


def test_claims_go_to_the_figures_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNFLOW_FIGURES", str(tmp_path / "figs"))
    path = save_claims(ROWS, "00_quickstart")
    assert path == (tmp_path / "figs" / "00_quickstart_claims.csv").resolve()
    assert len(load_claims()) == 3


@pytest.mark.parametrize(
    ("rows", "notebook", "error", "match"),
    [
        (ROWS, "../01_conservation", ValueError, "not a notebook stem"),
        (ROWS, "conservation", ValueError, "not a notebook stem"),
        ([{**ROWS[0], "match": "maybe"}], "01_conservation", ValueError, "match 'maybe'"),
        ([{**ROWS[0], "ours": 0.5}], "01_conservation", TypeError, "ours = 0.5 is not text"),
        ([{**ROWS[0], "extra": "x"}], "01_conservation", ValueError, "exactly"),
        ([{k: v for k, v in ROWS[0].items() if k != "paper"}], "01_conservation", ValueError,
         "exactly"),
        ([{**ROWS[0], "figure": ""}], "01_conservation", ValueError, "needs a figure"),
        ([], "01_conservation", ValueError, "no claims"),
    ],
)
def test_bad_claims_are_named_and_leave_the_old_file(tmp_path, rows, notebook, error, match):
    old = save_claims(ROWS, "01_conservation", folder=tmp_path)
    before = old.read_bytes()
    with pytest.raises(error, match=match):
        save_claims(rows, notebook, folder=tmp_path)
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_conservation_claims.csv"]


def test_load_claims_refuses_foreign_files_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_claims(tmp_path)
    bad = tmp_path / "02_layer_collapse_claims.csv"
    bad.write_text("notebook,figure,claim,ours\n02_layer_collapse,Fig 2,x,1\n")
    with pytest.raises(ValueError, match="02_layer_collapse_claims.csv has the columns"):
        load_claims(tmp_path)
    bad.write_text("notebook,figure,claim,ours,paper,match\n02_layer_collapse,Fig 2,x,1,,sure\n")
    with pytest.raises(ValueError, match="matches \\['sure'\\]"):
        load_claims(tmp_path)


def test_numbers_are_formatted_with_fixed_decimals():
    assert number(3.14159) == "3.14" and number(3.14159, 4) == "3.1416"
    assert number(-0.0001) == "0.00" and number(-0.0001, 0) == "0"
    assert number(-1.5, 1) == "-1.5" and number(2) == "2.00" and number(12345.6, 0) == "12346"
    assert number(math.inf) == "inf" and number(float("nan")) == "nan"
    assert number(None) == "" and number("10^2.31") == "10^2.31"
    assert number(np.bool_(False)) == "no" and number(np.float32(0.5)) == "0.50"


def test_match_rules():
    assert within(0.742, 0.743, 0.01) == "yes" and within(0.742, 0.753, 0.01) == "no"
    assert within(1.0, 1.05, 0.05) == "yes"  # the tolerance is inclusive
    assert within(None, 1.0, 0.1) == within(1.0, float("nan"), 0.1) == "n/a"
    assert verdict(True) == "yes" and verdict(np.bool_(False)) == "no" and verdict(None) == "n/a"
