"""synflow.paths: every path inside the repository or from an environment variable;
the authors' reference data ship with the repository (issue 11, item 0)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from synflow import figures, paths
from synflow.paths import REPO_ROOT


def test_paper_reference_is_found_in_the_repository(monkeypatch):
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    for name in ("fig1_reference.csv", "fig6_reference.csv"):
        assert paths.paper_reference(name) == REPO_ROOT / "paper" / name


def test_paper_reference_never_looks_beside_the_repository(monkeypatch, tmp_path):
    # a folder named like the workplace's shared one beside the repository is ignored
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    (tmp_path / "shared" / "paper").mkdir(parents=True)
    (tmp_path / "shared" / "paper" / "fig1_reference.csv").write_text("run\n0\n")
    with pytest.raises(FileNotFoundError, match=r"fig1_reference\.csv.*SYNFLOW_PAPER"):
        paths.paper_reference("fig1_reference.csv")


def test_synflow_paper_overrides_the_shipped_copy(monkeypatch, tmp_path):
    (tmp_path / "fig1_reference.csv").write_text("run\n0\n")
    monkeypatch.setenv("SYNFLOW_PAPER", str(tmp_path))
    assert paths.paper_reference("fig1_reference.csv") == tmp_path / "fig1_reference.csv"
    with pytest.raises(FileNotFoundError, match="fig6_reference.csv"):
        paths.paper_reference("fig6_reference.csv")  # no silent fall-back elsewhere


def test_shipped_reference_tables_are_complete(monkeypatch):
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)
    fig1 = figures.load_fig1_reference()
    assert len(fig1) == 5 * 3 * 25 and fig1["best_top1"].notna().all()
    fig6 = figures.load_fig6_reference()
    assert len(fig6) == 3 * 4 * 5 * 3 * 13 and set(fig6["model"]) == {
        "vgg11_bn", "vgg16_bn", "resnet18", "wrn18_2", "vgg11_bn_tiny", "vgg16_bn_tiny"
    }  # the Tiny ImageNet VGGs are the authors' tinyimagenet_vgg.py nets
    columns = pd.read_csv(REPO_ROOT / "paper" / "fig1_reference.csv").columns
    readme = (REPO_ROOT / "paper" / "README.md").read_text()
    assert all(f"`{column}`" in readme for column in columns)  # every column documented


def test_no_product_file_reads_outside_the_repository():
    # lib/, tools/ and notebooks/ must work in a clone with nothing beside it
    pattern = re.compile(
        r"\.\./shared|parent\s*/\s*[\"']shared[\"']|parents?\[\d\]\s*/\s*[\"']shared"
    )
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("lib", "tools", "notebooks")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.suffix in {".py", ".ipynb", ".yaml"} and pattern.search(path.read_text())
    ]
    assert offenders == []
