"""Claims, stale-claim takeover, concurrent workers, failure records, retries and damaged
results in the store (synflow.experiments.claims, synflow.experiments.store)."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import pytest

from synflow.experiments import claims, execution, holders, runconfig, store
from synflow.experiments.results import RunResult

BASE = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=1,
                       batch_size=12, lr=0.05)


def age(path, seconds):
    past = time.time() - seconds
    os.utime(path, (past, past))


# ------------------------------------------------------------------ claims


def test_a_claim_is_exclusive_until_released(tmp_path):
    first = claims.claim_run(tmp_path / "run", stale_after=60)
    assert first is not None and first.owned()
    holder = json.loads((tmp_path / "run" / claims.CLAIM_FILE).read_text())
    assert {"host", "pid", "job", "token", "log", "since"} <= set(holder)
    assert claims.claim_run(tmp_path / "run", stale_after=60) is None
    first.release()
    assert not (tmp_path / "run" / claims.CLAIM_FILE).exists()
    assert claims.claim_run(tmp_path / "run", stale_after=60) is not None


def test_a_stale_claim_is_taken_over_and_the_old_holder_notices(tmp_path):
    old = claims.claim_run(tmp_path, stale_after=60)
    age(tmp_path / claims.CLAIM_FILE, 30)
    assert claims.claim_run(tmp_path, stale_after=60) is None  # 30 s: still fresh
    age(tmp_path / claims.CLAIM_FILE, 61)
    new = claims.claim_run(tmp_path, stale_after=60)
    assert new is not None and new.owned() and not old.owned()
    with pytest.raises(claims.ClaimLost, match="taken over"):
        old.check()
    old.release()  # must not remove the new holder's claim
    assert new.owned()


def wait_for(condition, timeout=120.0):
    """Poll ``condition`` until it holds; True, or False after ``timeout`` seconds (a
    bound for a broken build only: a working one is done in well under a second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_heartbeat_keeps_a_working_claim_fresh(tmp_path):
    # no race with the clock: the claim file is aged far past stale_after and the heartbeat
    # thread (every stale_after / 6 = 1 s here) must bring it back, however loaded the machine
    path = tmp_path / claims.CLAIM_FILE
    with claims.claim_run(tmp_path, stale_after=6) as held:
        age(path, 3600)
        assert wait_for(lambda: claims.read_claim(path)["age"] < 600)
        assert claims.claim_run(tmp_path, stale_after=600) is None
        assert held.owned()


def test_a_requeued_slurm_task_takes_back_its_own_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert claims.claim_run(tmp_path, stale_after=600) is not None
    assert claims.claim_run(tmp_path, stale_after=600) is not None  # same job: requeued
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    assert claims.claim_run(tmp_path, stale_after=600) is None


def _take(folder, start, answered, queue):
    start.wait()
    queue.put(claims.claim_run(folder, stale_after=600) is not None)
    # stay alive until every worker answered: the claim of a dead process on this host is
    # taken over at once (rightly), which would let a slow worker take the winner's claim
    answered.wait()


def test_exactly_one_of_many_workers_takes_over_a_stale_claim(tmp_path):
    # the old claim is an hour old and the new one's margin is stale_after = 600 s: no
    # timing margin, however slowly the workers are scheduled
    claims.claim_run(tmp_path, stale_after=600)
    age(tmp_path / claims.CLAIM_FILE, 3600)
    context = multiprocessing.get_context("fork")
    start, answered, queue = context.Barrier(6), context.Barrier(6), context.Queue()
    workers = [context.Process(target=_take, args=(tmp_path, start, answered, queue))
               for _ in range(6)]
    for worker in workers:
        worker.start()
    outcomes = sorted(queue.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join(600)
    assert outcomes == [False] * 5 + [True]
    assert all(worker.exitcode == 0 for worker in workers)


def test_a_taker_that_saw_the_claim_stale_before_another_took_it_over_loses(tmp_path,
                                                                           monkeypatch):
    claims.claim_run(tmp_path, stale_after=600)
    age(tmp_path / claims.CLAIM_FILE, 3600)
    stale_view = claims.read_claim(tmp_path / claims.CLAIM_FILE)
    winner = claims.claim_run(tmp_path, stale_after=600)
    real, views = claims.read_claim, [stale_view]  # the first look: before the winner came
    monkeypatch.setattr(claims, "read_claim",
                        lambda path, now=None: views.pop() if views else real(path, now))
    assert claims.claim_run(tmp_path, stale_after=600) is None
    assert winner.owned()


# ------------------------------------------------------------- clock skew


def test_a_heartbeat_far_in_the_future_counts_as_stale(tmp_path):
    # a dead worker whose clock ran an hour ahead stamped its claim: it must not block
    # the run for that hour (the rule: more than stale_after in the future is stale)
    claims.claim_run(tmp_path, stale_after=600)  # this process: alive, so not "gone"
    age(tmp_path / claims.CLAIM_FILE, -3600)
    holder = claims.read_claim(tmp_path / claims.CLAIM_FILE)
    assert holder["age"] < -3500 and holders.is_stale(holder, 600)
    assert "s in the future (clock skew" in holders.heartbeat(holder)
    assert claims.claim_run(tmp_path, stale_after=600) is not None


def test_a_heartbeat_a_little_in_the_future_still_holds(tmp_path):
    claims.claim_run(tmp_path, stale_after=600)
    age(tmp_path / claims.CLAIM_FILE, -300)  # within stale_after: a live worker, clocks apart
    assert claims.claim_run(tmp_path, stale_after=600) is None


def test_a_worker_reads_claim_ages_on_the_file_systems_clock(tmp_path, monkeypatch):
    # this machine's clock two hours behind the file server's: a live claim, touched by
    # the file system just now, must not look two hours in the future and be taken over
    held = claims.claim_run(tmp_path, stale_after=600)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 7200)
    assert claims.claim_run(tmp_path, stale_after=600) is None
    assert held.owned()
    assert abs(claims.fs_now(tmp_path) - real()) < 600  # the file system's own clock


def test_the_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    code = f"from synflow import claims; import os; claims.claim_run({str(tmp_path)!r}); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True)  # dies holding its claim
    assert (tmp_path / claims.CLAIM_FILE).is_file()
    assert claims.claim_run(tmp_path, stale_after=600) is not None


@pytest.mark.parametrize(("squeue_says", "taken"), [("", True), ("CANCELLED", True),
                                                    ("RUNNING", False), ("PENDING", False)])
def test_the_claim_of_an_ended_slurm_job_is_taken_over_at_once(tmp_path, monkeypatch,
                                                               squeue_says, taken):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho '{squeue_says}'\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    claims.claim_run(tmp_path / "run", stale_after=600)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert (claims.claim_run(tmp_path / "run", stale_after=600) is not None) == taken


def test_bad_stale_after_is_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="stale_after must be > 0 seconds, got 0"):
        claims.claim_run(tmp_path, stale_after=0)
    monkeypatch.setenv(holders.STALE_VARIABLE, "soon")
    with pytest.raises(ValueError, match=r"SYNFLOW_CLAIM_STALE_S='soon' .*seconds > 0"):
        claims.claim_run(tmp_path)


# ------------------------------------------------------- concurrent workers

WORKER = textwrap.dedent("""
    import json, os, sys, time
    from synflow.experiments import execution, launch, store
    runs, log = json.loads(sys.argv[1]), sys.argv[2]
    original = execution.execute

    def execute(config, **kwargs):
        with open(log, "a") as handle:
            handle.write(config.name() + "\\n")
        time.sleep(0.5)  # long enough for the other worker to reach the same run
        return original(config, **kwargs)

    execution.execute = execute
    print(json.dumps(launch.Worker(os.environ["SYNFLOW_RESULTS"])(runs)))
""")


def test_two_worker_processes_never_train_the_same_run(env):
    runs = [("exp", dataclasses.asdict(dataclasses.replace(BASE, compression=c)))
            for c in (2, 4, 8, 16)]
    log = env / "executed.log"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(runs), str(log)],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = [json.loads(w.communicate(timeout=300)[0].splitlines()[-1]) for w in workers]
    executed = log.read_text().splitlines()
    assert sorted(executed) == sorted(runconfig.config_from_dict(r).name() for _, r in runs)
    assert sum(s["ran"] for s in summaries) == 4 and not any(s["failed"] for s in summaries)
    assert len(store.frame("exp")) == 4


def test_a_run_stored_by_another_worker_while_claiming_counts_as_stored_not_ran(
        env, monkeypatch):
    # the race of two workers on one run: the other stores it and releases its claim
    # between this worker's look for run.json and its claim (CI counted "4 ran" of 3 runs)
    store.run_or_load(BASE, "exp")
    path = store.run_dir(BASE, "exp") / store.RESULT_FILE
    text = path.read_text()
    path.unlink()
    original = claims.claim_run

    def other_worker_finishes_first(folder, **kwargs):
        path.write_text(text)
        return original(folder, **kwargs)

    monkeypatch.setattr(claims, "claim_run", other_worker_finishes_first)
    monkeypatch.setattr(execution, "execute", lambda *a, **k: pytest.fail("ran it again"))
    from synflow.experiments import launch

    summary = launch.Worker(str(store.results_root()))([("exp", dataclasses.asdict(BASE))])
    assert (summary["ran"], summary["stored"]) == (0, 1)
    path.unlink()
    result, ran = store.run_unless_stored(BASE, "exp")
    assert not ran and result == RunResult.read(path)


def test_a_run_held_by_another_worker_raises_run_busy(env):
    claims.claim_run(store.run_dir(BASE, "exp"), stale_after=600)
    with pytest.raises(store.RunBusy, match=r"being run by another worker .*claim.json"):
        store.run_or_load(BASE, "exp")


# ------------------------------------------------------------------ failures


@pytest.fixture
def broken(monkeypatch):
    original = execution.execute

    def execute(config, **kwargs):
        if config.compression == 4:
            raise RuntimeError("CUDA out of memory\nsecond line")
        return original(config, **kwargs)

    monkeypatch.setattr(execution, "execute", execute)
    return lambda: monkeypatch.setattr(execution, "execute", original)


def test_a_failing_run_is_recorded_and_not_retried_unless_asked(env, broken, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    with pytest.raises(RuntimeError, match="out of memory"):
        store.run_or_load(BASE, "exp", retry_failed=False)
    record = store.failure(BASE, "exp")
    assert record["error"] == "RuntimeError: CUDA out of memory second line"  # all, one line
    assert "Traceback" in record["traceback"] and "second line" in record["traceback"]
    assert record["config"] == dataclasses.asdict(BASE) and record["job"] == "123"
    assert {"host", "time", "log", "attempts"} <= set(record)
    assert not (store.run_dir(BASE, "exp") / claims.CLAIM_FILE).exists()  # released
    with pytest.raises(store.RunFailed, match=r"failed before \(RuntimeError: CUDA out"):
        store.run_or_load(BASE, "exp", retry_failed=False)
    summary = execution_summary(dataclasses.replace(BASE, compression=2))
    assert summary["failed before"] == 1 and summary["ran"] == 1
    broken()  # repaired
    result = store.run_or_load(BASE, "exp", retry_failed=True)
    assert result.metrics["kept"] and store.failure(BASE, "exp") is None


def execution_summary(other):
    from synflow.experiments import launch

    worker = launch.Worker(str(store.results_root()), retry_failed=False)
    return worker([("exp", dataclasses.asdict(BASE)), ("exp", dataclasses.asdict(other))])


# ------------------------------------------------------------ damaged files


def test_a_damaged_run_json_is_named_and_moved_aside_when_resuming(env):
    store.run_or_load(BASE, "exp")
    path = store.run_dir(BASE, "exp") / store.RESULT_FILE
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # truncated
    with pytest.warns(UserWarning, match=rf"{path} is damaged.*left out of the table") as table:
        assert store.frame("exp").empty
    with pytest.warns(UserWarning, match=r"run.json is damaged.*moved it to .*damaged-") as moved:
        result = store.run_or_load(BASE, "exp")
    assert {w.filename for w in [*table, *moved]} == {__file__}  # at the caller's line
    assert result.metrics["kept"] > 0 and RunResult.read(path).key == BASE.key()
    aside = list(path.parent.glob("run.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == text[: len(text) // 2]  # kept
    assert len(store.frame("exp")) == 1
