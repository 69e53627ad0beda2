"""The paper's Figures 2, 3, 4 and 7 as recovered from the authors' vector PDFs by
tools/extract_paper_figures.py (issue 10, "Must show"): every file loads through
synflow.analysis.reference.paper_reference, has its documented columns, and shows the facts the figures
visibly show (paper/README.md gives the source and precision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synflow.analysis.reference import paper_reference

METHODS = {"random", "magnitude", "snip", "grasp", "synflow"}
COLUMNS = {
    "fig2_reference.csv": ["method", "curve_index", "authors_j", "dashed", "layer", "status",
                           "log10_kept_fraction", "calibration_residual_log10"],
    "fig3_reference.csv": ["method", "unit", "score_in", "score_out", "pearson_r"],
    "fig4_reference.csv": ["method", "layer", "log10_inverse_size", "log10_average_score",
                           "fitted_slope", "calibration_residual_log10"],
    "fig7_reference.csv": ["schedule", "log10_compression", "iterations", "prune_size_ratio",
                           "calibration_residual"],
}
# ImageNet VGG-19 (torchvision layout): (fan-in, outputs) of its 16 convolutions and 3 Linear layers
VGG19_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)] + [(256, 256)] * 3 \
    + [(256, 512)] + [(512, 512)] * 7
VGG19_LINEAR = [(25088, 4096), (4096, 4096), (4096, 1000)]


def load(name: str) -> pd.DataFrame:
    return pd.read_csv(paper_reference(name))


@pytest.fixture(autouse=True)
def _shipped_copy(monkeypatch):
    monkeypatch.delenv("SYNFLOW_PAPER", raising=False)  # the files shipped in paper/


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_columns_are_the_documented_ones(name):
    table = load(name)
    assert list(table.columns) == COLUMNS[name]
    readme = (Path(__file__).resolve().parents[1] / "paper" / "README.md").read_text()
    assert f"`{name}`" in readme and all(f"`{c}`" in readme for c in COLUMNS[name])
    key = "schedule" if name == "fig7_reference.csv" else "method"
    expected = {"linear", "exponential"} if key == "schedule" else METHODS
    assert set(table[key]) == expected


def test_fig4_inverse_sizes_are_vgg19_layers_and_synflow_slope_is_one():
    table = load("fig4_reference.csv")
    sizes = [9 * i * o + o for i, o in VGG19_CONVS] + [i * o + o for i, o in VGG19_LINEAR]
    for method, rows in table.groupby("method"):
        rows = rows.sort_values("layer")
        assert list(rows["layer"]) == list(range(1, 20)), method
        np.testing.assert_allclose(rows["log10_inverse_size"], -np.log10(sizes), atol=0.01)
        slope = np.polyfit(rows["log10_inverse_size"], rows["log10_average_score"], 1)[0]
        assert rows["fitted_slope"].nunique() == 1
        assert abs(slope - rows["fitted_slope"].iloc[0]) < 1e-3, method
    slopes = table.groupby("method")["fitted_slope"].first()
    assert abs(slopes["synflow"] - 1) < 0.02  # Theorem 1: average score = R_SF / layer size
    assert abs(slopes["random"]) < 0.05  # random scores do not depend on layer size
    assert 0 < slopes["magnitude"] < slopes["snip"] < slopes["synflow"]
    assert (table["calibration_residual_log10"] < 0.02).all()


def test_fig3_correlations_match_the_dots():
    table = load("fig3_reference.csv")
    for method, rows in table.groupby("method"):
        assert len(rows) == 4992, method  # one dot per hidden unit the authors plotted
        r = np.corrcoef(rows["score_in"], rows["score_out"])[0, 1]
        assert abs(r - rows["pearson_r"].iloc[0]) < 2e-3, method
    r = table.groupby("method")["pearson_r"].first()
    assert r["synflow"] > 0.999 and abs(r["random"]) < 0.1  # conserved vs not at all
    synflow = table[table["method"] == "synflow"]
    np.testing.assert_allclose(synflow["score_out"], synflow["score_in"], rtol=0.02)
    assert 1e31 < synflow["score_in"].max() < 1e33  # the panel's axis offset reads "1e32"


def test_fig2_curves_are_4_to_the_k_and_dashed_means_an_empty_layer():
    table = load("fig2_reference.csv")
    assert len(table) == 5 * 12 * 19
    assert set(table["status"]) <= {"plotted", "empty", "empty_or_isolated", "not_drawn"}
    for (method, k), rows in table.groupby(["method", "curve_index"]):
        assert list(rows["layer"]) == list(range(1, 20))
        plotted = rows["status"] == "plotted"
        assert plotted.eq(rows["log10_kept_fraction"].notna()).all()
        if (rows["status"] == "not_drawn").any():
            assert (rows["status"] == "not_drawn").all()
        elif rows["dashed"].iloc[0] == 0:
            assert plotted.all(), (method, k)  # solid: no layer empty
        else:
            assert not plotted.all(), (method, k)  # dashed: some layer empty
        assert (rows["log10_kept_fraction"].dropna() <= 0.01).all()
    random = table[(table["method"] == "random") & (table["dashed"] == 0)]
    mean = random.groupby("curve_index")["log10_kept_fraction"].mean()
    np.testing.assert_allclose(mean, -mean.index * np.log10(4), atol=0.03)  # density 4^-k
    first_dashed = table[table["dashed"] == 1].groupby("method")["curve_index"].min()
    assert "synflow" not in first_dashed  # SynFlow never collapses up to 4^11
    assert set(first_dashed.index) == METHODS - {"synflow"}


def test_fig7_ratios_are_positive_and_exponential_stays_below_the_cut_size():
    table = load("fig7_reference.csv")
    assert len(table) == 2 * 7 * 11 and (table["prune_size_ratio"] >= 0).all()
    assert (table.loc[table["log10_compression"] == 0, "prune_size_ratio"].abs() < 0.01).all()
    single = table[table["iterations"] == 1].pivot(
        index="log10_compression", columns="schedule", values="prune_size_ratio")
    np.testing.assert_allclose(single["linear"], single["exponential"], atol=0.01)
    assert single["linear"].is_monotonic_increasing and single["linear"].iloc[-1] > 10
    last = table[table["iterations"] == 100].pivot(
        index="log10_compression", columns="schedule", values="prune_size_ratio")
    assert (last["exponential"] < 1).all()  # 100 exponential iterations avoid collapse
    assert (last["linear"] >= last["exponential"] - 0.01).all()


def test_fig3_and_fig4_give_the_same_synflow_total_score():
    # Theorem 1 (paper section 5): every layer of SynFlow scores sums to R_SF, so Figure 4's
    # average score x layer size and the sum of Figure 3's incoming scores over the 15 conv
    # layers whose units it plots (4,992 = 2x64 + 2x128 + 4x256 + 7x512) both read R_SF:
    # two independently calibrated panels, in two PDFs, must agree.
    fig4 = load("fig4_reference.csv")
    synflow = fig4[fig4["method"] == "synflow"]
    r_sf_fig4 = synflow["log10_average_score"] - synflow["log10_inverse_size"]
    assert r_sf_fig4.max() - r_sf_fig4.min() < 0.02
    fig3 = load("fig3_reference.csv")
    r_sf_fig3 = np.log10(fig3.loc[fig3["method"] == "synflow", "score_in"].sum() / 15)
    assert abs(r_sf_fig3 - r_sf_fig4.mean()) < 0.01
