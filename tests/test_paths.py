"""synflow.utils.paths and synflow.analysis.reference: every path from an environment
variable or a fixed default, never inside the installed package; the paper's reference
data ship inside the package."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from synflow.analysis import reference
from synflow.utils import paths

REPO = Path(__file__).resolve().parents[1]


def test_this_checkout_is_recognised_and_its_folders_are_the_defaults(monkeypatch):
    for variable in ("SYNFLOW_DATA", "SYNFLOW_RESULTS", "SYNFLOW_FIGURES"):
        monkeypatch.delenv(variable, raising=False)
    assert paths.repo_root() == REPO
    assert paths.data_root() == REPO / "data"
    assert paths.results_dir() == REPO / "results"
    assert paths.figures_dir() == REPO / "figures"


def test_outside_a_checkout_the_defaults_are_the_users_data_folder(monkeypatch, tmp_path):
    # an installed package (site-packages/synflow) has no repository around it
    monkeypatch.setattr(paths, "PACKAGE_DIR", tmp_path / "site-packages" / "synflow")
    for variable in ("SYNFLOW_DATA", "SYNFLOW_RESULTS", "SYNFLOW_FIGURES", "SYNFLOW_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.repo_root() is None
    assert paths.results_dir() == tmp_path / "share" / "synflow" / "results"
    assert paths.figures_dir() == tmp_path / "share" / "synflow" / "figures"
    assert paths.data_root() == tmp_path / "share" / "synflow" / "data"
    assert paths.cache_dir() == tmp_path / "cache" / "synflow"
    for folder in (paths.results_dir(), paths.figures_dir(), paths.data_root()):
        assert paths.PACKAGE_DIR not in folder.parents  # never inside the package


def test_environment_variables_win(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNFLOW_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("SYNFLOW_DATA", str(tmp_path / "d"))
    assert paths.results_dir() == tmp_path / "r" and paths.data_root() == tmp_path / "d"
    assert paths.data_root(tmp_path / "x") == tmp_path / "x"  # an explicit root wins over all


def test_paper_reference_is_found_in_the_package(monkeypatch):
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    for name in ("fig1_reference.csv", "fig6_reference.csv"):
        assert reference.paper_reference(name) == REPO / "lib/synflow/analysis/reference" / name


def test_paper_reference_never_looks_beside_the_repository(monkeypatch, tmp_path):
    # a folder named like the workplace's shared one beside the package is ignored
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "pkg" / "reference")
    (tmp_path / "shared" / "paper").mkdir(parents=True)
    (tmp_path / "shared" / "paper" / "fig1_reference.csv").write_text("run\n0\n")
    with pytest.raises(FileNotFoundError, match=r"fig1_reference\.csv.*SYNFLOW_PAPER"):
        reference.paper_reference("fig1_reference.csv")


def test_synflow_paper_overrides_the_shipped_copy(monkeypatch, tmp_path):
    (tmp_path / "fig1_reference.csv").write_text("run\n0\n")
    monkeypatch.setenv("SYNFLOW_PAPER", str(tmp_path))
    assert reference.paper_reference("fig1_reference.csv") == tmp_path / "fig1_reference.csv"
    with pytest.raises(FileNotFoundError, match="fig6_reference.csv"):
        reference.paper_reference("fig6_reference.csv")  # no silent fall-back elsewhere


def test_shipped_reference_tables_are_complete(monkeypatch):
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    fig1 = reference.load_fig1_reference()
    assert len(fig1) == 5 * 3 * 25 and fig1["best_top1"].notna().all()
    fig6 = reference.load_fig6_reference()
    assert len(fig6) == 3 * 4 * 5 * 3 * 13 and set(fig6["model"]) == {
        "vgg11_bn", "vgg16_bn", "resnet18", "wrn18_2", "vgg11_bn_tiny", "vgg16_bn_tiny"
    }  # the Tiny ImageNet VGGs are the authors' tinyimagenet_vgg.py nets
    columns = pd.read_csv(reference.paper_reference("fig1_reference.csv")).columns
    readme = (REPO / "paper" / "README.md").read_text()
    assert all(f"`{column}`" in readme for column in columns)  # every column documented


def test_no_product_file_reads_outside_the_repository():
    # lib/, tools/ and notebooks/ must work in a clone with nothing beside it
    pattern = re.compile(
        r"\.\./shared|parent\s*/\s*[\"']shared[\"']|parents?\[\d\]\s*/\s*[\"']shared"
    )
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("lib", "tools", "notebooks")
        for path in (REPO / folder).rglob("*")
        if path.suffix in {".py", ".ipynb", ".yaml"} and pattern.search(path.read_text())
    ]
    assert offenders == []
