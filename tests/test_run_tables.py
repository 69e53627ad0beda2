"""The analysis layer's tables of stored runs (notebooks 05, 06) and the critical-compression
tables of notebooks 02 and 03: what the notebooks used to compute inline."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import synflow
from synflow import analysis
from synflow.analysis import reference, tables
from synflow.experiments import execution
from synflow.experiments.results import RunResult
from synflow.experiments.runconfig import RunConfig


def result(pruner="magnitude", compression=4.0, seed=0, kept=(3, 2), totals=(8, 8), **changes):
    config = RunConfig("mlp", "cifar10", pruner, compression, seed=seed, **changes)
    metrics = {"best_top1": 40.0 + seed, "final_top1": 39.0, "kept": sum(kept),
               "prunable": sum(totals), "empty_layers": 0, "final_test_loss": 1.5}
    layers = [{"layer": f"{i}.weight", "kept": k, "total": n}
              for i, (k, n) in enumerate(zip(kept, totals))]
    return RunResult(config, {}, metrics, [], layers, [], {})


def test_runs_table_puts_the_key_columns_first_and_they_win():
    runs = {("snip", 4.0, 0, "as found"): result("snip"),
            ("snip", 4.0, 1, "shuffled"): result("snip", seed=1, mask="shuffled")}
    table = tables.runs_table(runs, ("method", "compression", "seed", "variant"))
    assert list(table.columns[:4]) == ["method", "compression", "seed", "variant"]
    assert table["variant"].tolist() == ["as found", "shuffled"]
    assert table["mask"].tolist() == ["as_found", "shuffled"]  # config fields follow
    assert table["best_top1"].tolist() == [40.0, 41.0] and table["key"].str.len().eq(10).all()
    keyed = tables.runs_table({("x", 1.0): result()}, ("method", "seed"))
    assert keyed["seed"].tolist() == [1.0]  # the key's value, not the config's seed 0
    plain = tables.runs_table([result(), result(seed=2)])
    assert plain["seed"].tolist() == [0, 2] and "method" not in plain


@pytest.mark.parametrize(
    ("runs", "keys", "match"),
    [
        ([result()], ("method",), "got no dict but a list"),
        ({("a", 1.0): result()}, ("method",), "does not fit the key names \\('method',\\)"),
        ({"a": result()}, ("method",), "the key 'a' does not fit"),
    ],
)
def test_runs_table_names_keys_that_do_not_fit(runs, keys, match):
    with pytest.raises(ValueError, match=match):
        tables.runs_table(runs, keys)


def test_layers_table_counts_layers_from_the_input():
    runs = {("random_erk", 4.0, 0): result("random_erk", kept=(6, 1))}
    layers = tables.layers_table(runs, ("method", "compression", "seed"))
    assert layers["layer_index"].tolist() == [1, 2]
    assert layers["layer"].tolist() == ["0.weight", "1.weight"]
    assert layers["fraction_kept"].tolist() == [6 / 8, 1 / 8]
    assert layers["method"].tolist() == layers["pruner"].tolist() == ["random_erk"] * 2
    assert tables.layers_table([result()])["pruner"].tolist() == ["magnitude"] * 2


def test_exact_counts_and_equal_layer_counts():
    assert tables.keeps_target(result(compression=16 / 5))
    assert not tables.keeps_target(result(compression=4.0))  # 5 kept, round(16 / 4) = 4
    assert tables.same_layer_counts(result(kept=(3, 2)), result(mask="shuffled", kept=(3, 2)))
    assert not tables.same_layer_counts(result(kept=(3, 2)), result(kept=(2, 3)))


def test_imp_variant_labels():
    labels = [tables.imp_variant(RunConfig("mlp", "cifar10", **changes)) for changes in (
        {}, {"pruner": "magnitude", "compression": 10.0},
        {"pruner": "magnitude", "compression": 10.0, "cycles": 2},
        {"pruner": "magnitude", "compression": 10.0, "cycles": 1, "rewind": False})]
    assert labels == ["dense", "magnitude at init", "IMP 2 cycle(s), rewind",
                      "IMP 1 cycle(s), no rewind"]


def test_cycles_table_and_targets_of_a_real_imp_run(env):
    config = RunConfig("mlp", "blobs", pruner="magnitude", compression=8, width=0.2, epochs=1,
                       batch_size=12, lr=0.05, init="kaiming_fan_in", cycles=3, rewind=False)
    run = execution.execute(config)
    cycles = tables.cycles_table([run])
    total = run.metrics["prunable"]
    assert cycles["target"].tolist() == [round(total / 8 ** (j / 3)) for j in (1, 2, 3)]
    assert cycles["kept"].tolist() == cycles["target"].tolist()
    assert cycles["cycle"].tolist() == [1, 2, 3] and not cycles["rewind"].any()
    assert cycles["masks_only_shrank"].all() and not cycles["kept_at_initial_values"].any()
    assert cycles["compression_reached"].iloc[-1] == pytest.approx(8, rel=0.01)
    assert tables.imp_keeps_targets(run)
    short = dataclasses.replace(run, cycles=run.cycles[:2])
    assert not tables.imp_keeps_targets(short)
    off = dataclasses.replace(run, cycles=[{**run.cycles[0], "kept": 1}, *run.cycles[1:]])
    assert not tables.imp_keeps_targets(off)


def test_layer_history_and_the_drift_towards_conservation():
    sizes = {"a": 10, "b": 1000}
    rows = [{"epoch": 0, "layer": n, "size": s, "kept": s, "total_sq": 2.0 * s ** 0.5,
             "mean_sq": 2.0 * s ** 0.5 / s} for n, s in sizes.items()]
    rows += [{"epoch": 1, "layer": n, "size": s, "kept": s, "total_sq": 5.0,
              "mean_sq": 5.0 / s} for n, s in sizes.items()]  # equal layer totals
    config = RunConfig("mlp", "cifar10", record_layers=True)
    history = tables.layer_history(RunResult(config, {}, {}, [], [], [], {}, layer_history=rows))
    drift = tables.squared_weight_drift(history)
    assert drift.index.tolist() == [0, 1]
    assert drift.loc[0, "slope"] == pytest.approx(0.5) and drift.loc[1, "slope"] == pytest.approx(1)
    assert drift.loc[1, "total spread"] == 0 and drift.loc[0, "total spread"] == pytest.approx(0.9)
    assert np.isnan(drift.loc[0, "increment spread"])
    increments = np.array([5 - 2 * 10 ** 0.5, 5 - 2 * 1000 ** 0.5])
    assert drift.loc[1, "increment spread"] == pytest.approx(
        (increments.max() - increments.min()) / np.abs(increments).max())
    assert drift.loc[0, "total max/min"] == pytest.approx(10)
    with pytest.raises(ValueError, match="no layer records; run it with record_layers=True"):
        tables.layer_history(result())


# ----------------------------------------------------------- critical compressions


def chain():
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 5, bias=False),
                        nn.ReLU(), nn.Linear(5, 3, bias=False))
    torch.manual_seed(0)
    return synflow.models.inits.kaiming_fan_in(net)


COLUMNS = ["model", "method", "iterations", "seed", "log10_critical", "log10_collapse",
           "log10_rho_max", "first_empty", "log10_closed_form", "search_matches_closed_form"]


def test_critical_table_agrees_with_the_closed_form_and_adds_iterative_synflow():
    table = analysis.critical_table(
        {"chain": chain}, ["random", "magnitude", "synflow"], input_shape=(4,), seed=0,
        random_seeds=[0, 1], bisection_steps=3, iterative_models=["chain"],
        synflow_iterations=20)
    assert list(table.columns) == COLUMNS
    assert table[["method", "iterations", "seed"]].values.tolist() == [
        ["random", 1, 0], ["random", 1, 1], ["magnitude", 1, 0], ["synflow", 1, 0],
        ["synflow", 20, 0]]
    single = table[table["iterations"] == 1]
    assert single["search_matches_closed_form"].tolist() == [True] * 4
    for row in single.itertuples():
        scores = synflow.compute_scores(chain(), row.method, input_shape=(4,), seed=row.seed)
        closed, layer = analysis.exact_critical_compression(scores)
        assert row.log10_closed_form == pytest.approx(math.log10(closed))
        assert layer in row.first_empty.split(", ")
        total, k_star = 69, round(69 / closed)  # kept counts: safe >= k* > collapsed
        assert round(total / 10**row.log10_critical) >= k_star > round(total / 10**row.log10_collapse)
    iterative = table[table["iterations"] == 20].iloc[0]
    assert np.isnan(iterative["log10_closed_form"])
    found = analysis.critical_compression(chain, "synflow", iterations=20, input_shape=(4,),
                                          bisection_steps=0, search="binary")
    assert iterative["log10_critical"] == pytest.approx(math.log10(found.compression))
    assert table["log10_rho_max"].eq(math.log10(analysis.max_compression(chain()))).all()


def test_a_search_off_the_closed_form_is_flagged():
    total, closed = 74, 74 / 9  # k* = 9 kept weights
    bracket = analysis.Critical(74 / 10, 74 / 8, ["0.weight"])
    assert analysis.critical._brackets(bracket, total, closed, "0.weight")
    assert not analysis.critical._brackets(bracket, total, closed, "2.weight")
    tight = analysis.Critical(74 / 9.4, 74 / 8.4, ["0.weight"])  # keeps 9, then 8
    assert analysis.critical._brackets(tight, total, closed, "0.weight")
    late = analysis.Critical(74 / 9.4, 74 / 8.6, ["0.weight"])  # keeps 9 at both ends
    assert not analysis.critical._brackets(late, total, closed, "0.weight")
    assert not analysis.critical._brackets(analysis.Critical(74 / 12, 74 / 10, ["0.weight"]),
                                           total, closed, "0.weight")
    assert analysis.critical._brackets(analysis.Critical(74 / 3, None), total, 74 / 3, "")
    assert not analysis.critical._brackets(analysis.Critical(74 / 3, None), total, 74 / 4, "")


def test_iterations_table_stops_each_method_at_its_limit():
    table = analysis.iterations_table(chain, ["magnitude", "synflow"], [1, 5, 20],
                                      max_iterations={"magnitude": 5}, input_shape=(4,),
                                      bisection_steps=1)
    assert table[["method", "iterations"]].values.tolist() == [
        ["magnitude", 1], ["magnitude", 5], ["synflow", 1], ["synflow", 5], ["synflow", 20]]
    magnitude = table[table["method"] == "magnitude"]["log10_critical"]
    assert magnitude.nunique() == 1  # iterating magnitude at init gives the single-shot mask
    found = analysis.critical_compression(chain, "synflow", iterations=20, input_shape=(4,),
                                          bisection_steps=1, search="downward")
    last = table.iloc[-1]
    assert last["log10_critical"] == pytest.approx(math.log10(found.compression))
    assert last["reaches_rho_max"] == found.reaches_max


def test_authors_critical_is_the_last_grid_point_where_no_run_has_an_empty_layer():
    fig1 = pd.DataFrame({
        "method": ["a"] * 6 + ["b"] * 2,
        "log10_compression": [1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 1.0, 1.5],
        "empty_layers": [0, 0, 0, 1, 0, 0, 0, 0],  # a: one run empty at 1.5, none at 2.0
    })
    assert reference.authors_critical(fig1).to_dict() == {"a": 2.0, "b": 1.5}
    assert reference.authors_critical().to_dict() == {
        "grasp": 3.5, "magnitude": 2.75, "random": 2.75, "snip": 3.5, "synflow": 5.75}


def test_first_collapse():
    fractions = pd.DataFrame({"a": [1.0, 0.5, 0.0, 0.0], "b": [1.0, 0.25, 0.25, 0.0]},
                             index=[1, 4, 16, 64])
    assert analysis.first_collapse(fractions) == (16, ["a"])
    assert analysis.first_collapse(fractions.iloc[:2]) == (None, [])
