"""``python -m synflow launch --runs-per-gpu N``: N worker processes per task, sharing its
GPU (here: the CPU), every run stored once and none run in the task's own process."""

from __future__ import annotations

import dataclasses

from synflow.experiments import cli, execution, launch, store

BASE = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=1,
                       batch_size=12, lr=0.05)
RUNS = [dataclasses.replace(BASE, compression=c) for c in (2, 4, 8)]


def test_runs_per_gpu_packs_worker_processes_into_one_task(env, monkeypatch, capsys):
    monkeypatch.setattr(launch, "planned_runs", lambda notebooks, profile, *overrides: [
        ("packed", run) for run in RUNS])

    def not_here(*args, **kwargs):
        raise AssertionError("a run ran in the task's own process, not in its workers")

    monkeypatch.setattr(execution, "execute", not_here)  # spawned workers don't see it
    code = cli.main(["launch", "04_accuracy_vs_compression", "--profile", "smoke",
                     "--runs-per-gpu", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "finished: 3 ran, 0 failed" in out
    assert sorted(r.config.compression for r in store.sweep(RUNS, "packed")) == [2, 4, 8]
    assert len(list((env / "results" / "packed").glob("*/run.json"))) == 3


def test_runs_per_gpu_must_be_a_positive_integer(capsys):
    try:
        cli.main(["launch", "04_accuracy_vs_compression", "--profile", "smoke",
                  "--runs-per-gpu", "0"])
    except SystemExit as exit:
        assert exit.code == 2
    assert "'0' is not allowed; give an integer >= 1" in capsys.readouterr().err
