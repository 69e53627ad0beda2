"""Training checkpoints: a run killed (SIGKILL, a real subprocess) after a checkpoint and
started again ends with the same weights and metrics as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from synflow.experiments import execution, store

BASE = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=3,
                       batch_size=12, lr=0.05)

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from synflow.experiments import execution, runconfig, store
    config = runconfig.config_from_dict(__import__("json").loads(sys.argv[1]))
    marker, kill_after = Path(sys.argv[2]), int(sys.argv[3])
    original = execution.save_checkpoint
    saved = []

    def save_then_wait(*args, **kwargs):
        original(*args, **kwargs)
        saved.append(1)
        if len(saved) == kill_after:  # the parent kills us here, mid-training
            marker.write_text("checkpointed")
            time.sleep(3600)  # killed here by the parent, whatever the load

    execution.save_checkpoint = save_then_wait
    store.run_or_load(config, "exp")
    marker.write_text("finished")  # the test fails if it gets here
""")


def final_weights(monkeypatch):
    """Capture the model's state after every training."""
    seen = []
    original = execution.training_loop.train

    def train(model, *args, **kwargs):
        metrics = original(model, *args, **kwargs)
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return metrics

    monkeypatch.setattr(execution.training_loop, "train", train)
    return seen


def without_times(result):
    drop = {"seconds", "prune_seconds"}
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    metrics = {k: v for k, v in result.metrics.items() if k not in drop}
    return metrics, history, result.cycles, result.layer_history


@pytest.mark.parametrize(
    ("changes", "kill_after"),
    [
        ({}, 1),  # pruning at init, killed in the final (only) training
        ({"cycles": 2, "epochs": 2, "test_subset": 2}, 2),  # IMP, killed in cycle 2
        ({"cycles": 2, "epochs": 2, "rewind": False}, 3),  # IMP, killed in the final training
        ({"mask": "shuffled", "record_layers": True}, 2),
    ],
)
def test_killed_run_resumes_to_identical_weights_and_metrics(env, monkeypatch, changes,
                                                             kill_after):
    config = dataclasses.replace(BASE, **changes)
    folder = store.run_dir(config, "exp")
    marker = env / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(dataclasses.asdict(config)), str(marker),
         str(kill_after)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 600  # a bound for a broken build, not a timing margin
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert marker.exists() and marker.read_text() == "checkpointed"
    finally:  # never leave the child behind, even when the test fails
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (folder / store.CHECKPOINT_FILE).is_file()
    assert not (folder / store.RESULT_FILE).exists()

    seen = final_weights(monkeypatch)
    resumed = store.run_or_load(config, "exp")  # the dead worker's claim is taken over
    assert resumed.environment["resumed_from_stage"] == (
        kill_after if config.cycles else config.cycles + 1)
    assert not (folder / store.CHECKPOINT_FILE).exists()  # removed once the result is stored
    resumed_weights = seen[-1]

    uninterrupted = execution.execute(config)
    assert uninterrupted.environment["resumed_from_stage"] is None
    assert without_times(resumed) == without_times(uninterrupted)
    assert resumed_weights.keys() == seen[-1].keys()
    for name, tensor in seen[-1].items():
        assert torch.equal(resumed_weights[name], tensor), name


def test_checkpoints_do_not_change_an_uninterrupted_run(env, monkeypatch):
    seen = final_weights(monkeypatch)
    config = dataclasses.replace(BASE, cycles=2, epochs=2)
    plain = execution.execute(config)
    checkpointed = execution.execute(config, checkpoint=env / "c.pt", checkpoint_every=1)
    assert (env / "c.pt").is_file()
    assert without_times(plain) == without_times(checkpointed)
    assert len(seen) == 6  # 2 cycles + the final training, twice
    for name, tensor in seen[2].items():
        assert torch.equal(seen[5][name], tensor), name


def test_a_checkpoint_of_another_run_is_refused(env):
    config = dataclasses.replace(BASE, epochs=2)
    execution.execute(config, checkpoint=env / "c.pt")
    with pytest.raises(ValueError, match=r"checkpoint .*c.pt is for run .*not"):
        execution.execute(dataclasses.replace(config, seed=5), checkpoint=env / "c.pt")


def test_checkpoint_every_must_be_a_positive_integer(env):
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1, got 0"):
        execution.execute(BASE, checkpoint=env / "c.pt", checkpoint_every=0)


def truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbled(path):
    path.write_bytes(b"\x00not a checkpoint" * 10)


def wrong_structure(path):
    torch.save({"format": 1, "key": "x"}, path)


def other_format(path):
    saved = torch.load(path, weights_only=False)
    torch.save({**saved, "format": 99}, path)


@pytest.mark.parametrize("damage", [truncated, garbled, wrong_structure, other_format])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_again(env, damage):
    # e.g. a node lost while the file system flushed: every retry failed on torch's
    # "failed finding central directory", with no path
    config = dataclasses.replace(BASE, epochs=2)
    folder = store.run_dir(config, "exp")
    execution.execute(config, checkpoint=env / "c.pt")  # a real checkpoint of this run
    folder.mkdir(parents=True)
    checkpoint = folder / store.CHECKPOINT_FILE
    checkpoint.write_bytes((env / "c.pt").read_bytes())
    damage(checkpoint)
    damaged = checkpoint.read_bytes()
    with pytest.warns(UserWarning, match=rf"training checkpoint {checkpoint} is damaged .*moved "
                      r"it to .*checkpoint.pt.damaged-.*starts again from its beginning") as caught:
        result = store.run_or_load(config, "exp", retry_failed=False)
    assert {w.filename for w in caught} == {__file__}  # at the caller's line
    assert result.environment["resumed_from_stage"] is None  # from the beginning
    assert without_times(result) == without_times(execution.execute(config))
    aside = list(folder.glob("checkpoint.pt.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept, not deleted
    assert store.failure(config, "exp") is None and not checkpoint.exists()


def test_a_killed_writers_half_written_files_are_removed_once_the_run_is_stored(env):
    """A worker killed inside atomic_write (a cancelled Slurm job) leaves its temporary
    file; the run that finishes the folder removes it (the cluster test found one)."""
    folder = store.run_dir(BASE, "exp")
    folder.mkdir(parents=True)
    (folder / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    (folder / ".run.json.k1ll3d.tmp").write_text("{")
    (folder / "notes.txt").write_text("not ours")
    store.run_or_load(BASE, "exp")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", store.RESULT_FILE]
