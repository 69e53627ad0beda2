"""synflow.analysis: sweep configs, tidy tables, reference CSVs, differences, collapse, plots."""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
import pytest

import synflow
from synflow import analysis
from synflow.analysis import collapse, plots, reference, tables
from synflow.experiments import sweeps
from synflow.experiments.runconfig import DENSE

matplotlib.use("Agg")

METHODS = ["random", "magnitude", "snip", "grasp", "synflow"]


def test_sweep_configs_share_dense_runs_and_iterate_the_synflow_methods_only():
    methods = [*METHODS, "synflow_l2"]
    configs = sweeps.sweep_configs(
        {"conv": 0.5}, "cifar10", [0, 1, 2], methods, [0, 1], synflow_iterations=7,
        subset=10, epochs=1,
    )
    assert len(configs) == 2 * (1 + 2 * len(methods))
    assert len(set(configs)) == len(configs)
    dense = [c for c in configs if c.pruner == DENSE]
    assert [c.seed for c in dense] == [0, 1] and all(c.compression == 1 for c in dense)
    assert {c.compression for c in configs} == {1.0, 10.0, 100.0}
    assert {c.iterations for c in configs if c.pruner in ("synflow", "synflow_l2")} == {7}
    assert {c.iterations for c in configs
            if c.pruner not in ("synflow", "synflow_l2", DENSE)} == {1}
    assert all(c.subset == 10 and c.epochs == 1 and c.width == 0.5 for c in configs)
    assert [c.seed for c in configs] == sorted(c.seed for c in configs)  # seed-major
    with pytest.raises(ValueError):
        sweeps.sweep_configs({"conv": 1.0}, "cifar10", [-1], METHODS, [0])


def fake_runs() -> pd.DataFrame:
    def row(pruner, compression, seed, top1, empty=0):
        return {"model": "conv", "dataset": "cifar10", "width": 0.5, "pruner": pruner,
                "compression": compression, "seed": seed, "iterations": 1,
                "best_top1": top1 + seed, "final_top1": top1, "empty_layers": empty}

    rows = []
    for seed in (0, 1):
        rows.append(row("dense", 1.0, seed, 50.0))
        for method in ("snip", "synflow"):
            rows.append(row(method, 10.0, seed, 40.0))
            top1 = 10.0 if method == "snip" else 20.0
            rows.append(row(method, 1000.0, seed, top1, int(top1 == 10.0)))
    return pd.DataFrame(rows)


def test_accuracy_table_repeats_dense_for_every_method():
    table = tables.accuracy_table(fake_runs(), methods=["snip", "synflow"])
    assert len(table) == 2 * 2 * 3
    at_one = table[table["log10_compression"] == 0]
    assert sorted(at_one["method"]) == ["snip", "snip", "synflow", "synflow"]
    assert set(at_one["best_top1"]) == {50.0, 51.0} and set(at_one["final_top1"]) == {50.0}
    assert sorted(table["log10_compression"].unique()) == [0.0, 1.0, 3.0]
    assert list(table["method"].unique()) == ["snip", "synflow"]  # method order kept


def test_band_is_mean_min_max_over_seeds():
    table = tables.accuracy_table(fake_runs(), methods=["snip", "synflow"])
    summary = tables.band(table).set_index(["method", "log10_compression"])
    row = summary.loc[("synflow", 3.0)]
    assert (row["mean"], row["min"], row["max"], row["count"]) == (20.5, 20.0, 21.0, 2)


def write_reference(tmp_path):
    fig6 = tmp_path / "fig6.csv"
    fig6.write_text(
        "dataset,model,pruner,run,log10_compression,top1_best_epoch\n"
        "cifar10,conv,snip,0,1.0,44.0\ncifar10,conv,snip,1,1.0,46.0\n"
        "cifar10,conv,snip,0,2.0,30.0\ncifar10,wide_resnet18,snip,0,1.0,90.0\n"
    )
    fig1 = tmp_path / "fig1.csv"
    fig1.write_text(
        "run,pruner,log10_compression,top1_best_epoch,top1_final_epoch,empty_layers\n"
        "0,snip,0.0,70.0,69.5,0\n0,snip,4.0,1.0,1.0,3\n"
    )
    return fig6, fig1


def test_reference_loaders_and_differences(tmp_path):
    fig6, fig1 = write_reference(tmp_path)
    theirs = reference.load_fig6_reference(fig6)
    assert list(theirs.columns) == [
        "dataset", "model", "width", "method", "run", "log10_compression", "best_top1"]
    assert "wrn18_2" in set(theirs["model"])  # their WRN-18 name translated
    ours = tables.accuracy_table(fake_runs(), methods=["snip", "synflow"])
    diff = tables.differences(ours, theirs)
    assert len(diff) == 1  # only (cifar10, conv, snip, 10^1) is on both grids
    row = diff.iloc[0]
    assert (row["ours"], row["theirs"], row["ours - theirs"]) == (40.5, 45.0, -4.5)
    assert row["width"] == 0.5 and row["our_seeds"] == 2
    one = reference.load_fig1_reference(fig1)
    assert {"best_top1", "final_top1", "empty_layers", "method"} <= set(one.columns)
    assert set(one["dataset"]) == {"cifar100"} and set(one["model"]) == {"vgg16_bn"}


def test_real_reference_files_load():
    theirs = reference.load_fig6_reference()
    assert len(theirs) == 2340 and theirs["best_top1"].between(0, 100).all()
    # their Tiny ImageNet VGGs are the tinyimagenet_vgg.py networks, named as ours
    models = theirs.groupby("dataset")["model"].unique().map(set)
    assert models["tinyimagenet"] == {"vgg11_bn_tiny", "vgg16_bn_tiny", "resnet18", "wrn18_2"}
    assert models["cifar10"] == {"vgg11_bn", "vgg16_bn", "resnet18", "wrn18_2"}
    assert tables.model_label("vgg16_bn_tiny") == "VGG-16"
    assert len(reference.load_fig1_reference()) == 375


def tiny_mlp():
    # zero biases, so that SynFlow conserves layer by layer (not the toy's PyTorch default)
    return synflow.build_model("mlp", input_shape=(1, 4, 4), width=0.1, seed=0,
                               init="kaiming_fan_in")


def test_measured_critical_and_empty_counts_agree():
    critical = analysis.measured_critical(
        tiny_mlp, ["magnitude", "synflow"], synflow_iterations=20, input_shape=(1, 4, 4),
        bisection_steps=0,
    )
    assert list(critical["method"]) == ["magnitude", "synflow"]
    rho_max = analysis.max_compression(tiny_mlp())
    assert critical["log10_rho_max"].iloc[0] == pytest.approx(math.log10(rho_max))
    assert (critical["log10_critical"] <= critical["log10_rho_max"] + 1e-12).all()
    exponents = [0.0, 0.5, 1.0, 1.5, math.log10(rho_max)]
    empty = collapse.empty_layer_counts(
        tiny_mlp, ["magnitude"], exponents, input_shape=(1, 4, 4))
    assert list(empty["log10_compression"]) == exponents
    magnitude = critical.set_index("method").loc["magnitude"]
    safe = empty[empty["log10_compression"] <= magnitude["log10_critical"] + 1e-9]
    assert (safe["empty_layers"] == 0).all()  # no empty layer up to the critical point
    assert empty["empty_layers"].is_monotonic_increasing  # single-shot masks are nested


def test_plots_draw_ours_and_theirs(tmp_path):
    fig6, fig1 = write_reference(tmp_path)
    ours = tables.accuracy_table(fake_runs(), methods=["snip", "synflow"])
    fig = plots.plot_accuracy_vs_compression(
        ours, reference.load_fig6_reference(fig6), methods=["snip", "synflow"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("authors" in label for label in labels)
    assert "best-epoch" in fig.axes[0].get_ylabel()
    critical = pd.DataFrame({"method": ["snip", "synflow"], "log10_critical": [2.5, 4.0],
                             "log10_rho_max": [4.0, 4.0]})
    empty = pd.DataFrame({"method": ["snip"] * 2, "log10_compression": [0.0, 3.0],
                          "empty_layers": [0, 2]})
    fig = plots.plot_layer_collapse(
        ours, critical, reference.load_fig1_reference(fig1), empty, value="final_top1",
        methods=["snip", "synflow"])
    assert len(fig.axes) == 4 and "final-epoch" in fig.axes[0].get_ylabel()
    assert len(fig.axes[0].texts) == 2  # one arrow per method
    assert any("authors" in ax.get_title() for ax in fig.axes)
    plots.plt.close("all")


def test_empty_layer_counts_count_the_final_iterative_mask():
    model = tiny_mlp()
    total = sum(m.numel() for m in synflow.current_masks(model).values())
    layers = len(synflow.prunable_layers(model))
    exponents = [math.log10(total / 2), math.log10(total)]  # 2 weights left, then 1
    empty = collapse.empty_layer_counts(
        tiny_mlp, ["synflow"], exponents, synflow_iterations=4, input_shape=(1, 4, 4))
    # with k weights left, at least L - k layers are empty; with 1, exactly L - 1
    assert list(empty["empty_layers"]) == [layers - 2, layers - 1]
    direct = synflow.prune(tiny_mlp(), "synflow", total / 2, iterations=4, input_shape=(1, 4, 4))
    assert len(synflow.empty_layers(direct)) == layers - 2
