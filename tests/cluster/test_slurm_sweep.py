"""A small sweep as a Slurm job array on a real (single-node) Slurm, through the CLI.

Run by ``make test-cluster``, which brings up a private Slurm with
``tools/slurm/with_slurm.sh`` (``pytest tests`` does not collect this folder). Without a
reachable Slurm the tests are skipped with the reason, except under $CI, where they fail.

The sweep: notebook 05's smoke profile with longer training (``--set``: 6 epochs on 100
images per class, IMP with 3 cycles only), 5 runs, one run per array task, 2 tasks at a
time. One IMP run (24 epochs over 4 trainings) is cancelled with ``scancel --signal=KILL``
right after its first training checkpoint (a plain scancel's SIGTERM is ignored by
submitit's workers, and the run could finish within KillWait); the next launch submits only
that run, which resumes from the checkpoint. Every result must equal the same run done
inline (CPU, 1 thread: identical metrics and per-epoch history), and a last launch must
submit nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synflow.experiments import claims, store
from synflow.experiments.launch import planned_runs, state_of
from synflow.experiments.results import RunResult

NOTEBOOK = "05_iterative_magnitude_pruning"
PROFILE = "smoke"
SETTINGS = {"epochs": "6", "subset": "100", "cycles_list": "[3]"}
STALE_AFTER = 8  # seconds: the cancelled run's claim is taken over soon after
SLURM = ["--executor", "slurm", "--cpus-per-task", "1", "--mem-gb", "2", "--time-min", "15",
         "--array-parallelism", "2", "--runs-per-task", "1"]
TIMEOUT = 300  # seconds for any one wait
TIMING_KEYS = {"seconds", "prune_seconds", "duration", "finished", "environment"}


def slurm_unavailable() -> str | None:
    """Why no Slurm can be used here, or None."""
    reason = os.environ.get("SYNFLOW_SLURM_UNAVAILABLE")  # set by tools/slurm/with_slurm.sh
    if reason:
        return reason
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo not found); `make test-cluster` brings up a single-node one"
    probe = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return (f"no Slurm reachable (sinfo: {probe.stderr.strip()[-200:]}); "
                "`make test-cluster` brings up a single-node one")
    if "idle" not in probe.stdout.split() and "mix" not in probe.stdout.split():
        return f"no idle Slurm node (sinfo states: {probe.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI is set, so the cluster test must run, but Slurm is unavailable: {reason}")
    if reason:
        pytest.skip(reason)


def cli(*args: str, results: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m synflow ARGS`` on this sweep (1 torch thread, as the Slurm tasks)."""
    settings = [item for key, value in SETTINGS.items() for item in ("--set", f"{key}={value}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNFLOW_QUIET": "1"}
    command = [sys.executable, "-m", "synflow", *args[:1], NOTEBOOK, "--profile", PROFILE,
               *settings, "--results", str(results), "--stale-after", str(STALE_AFTER),
               *args[1:]]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    print(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    return done


def load_result(path: Path) -> dict:
    """A stored run.json as a dict, read by its owner (RunResult)."""
    return RunResult.read(path).to_json()


def runs(results: Path) -> list[tuple[str, store.RunConfig, Path]]:
    overrides = {key: json.loads(value) for key, value in SETTINGS.items()}
    return [(experiment, config, store.run_dir(config, experiment, results))
            for experiment, config in planned_runs([NOTEBOOK], PROFILE, overrides)]


def squeue(job: str) -> list[str]:
    listed = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %t"], capture_output=True,
                            text=True, check=False)
    return listed.stdout.split("\n") if listed.stdout.strip() else []


def wait_for(condition, what: str, timeout: float = TIMEOUT, every: float = 0.2,
             launcher: subprocess.Popen | None = None):
    """Poll ``condition`` until true; fail at ``timeout``, or at once with the launcher's
    output when the ``launcher`` process ends first (e.g. every run failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if launcher is not None and launcher.poll() is not None:
            output = launcher.stdout.read() if launcher.stdout else ""
            raise AssertionError(f"the launcher ended (exit {launcher.returncode}) before "
                                 f"{what}:\n{output[-3000:]}")
        time.sleep(every)
    queue = subprocess.run(["squeue"], capture_output=True, text=True, check=False).stdout
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; squeue:\n{queue}")


def without_timing(value):
    """``value`` without wall-clock fields (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


@pytest.fixture(scope="module")
def sweep(slurm, tmp_path_factory):
    """Launch, cancel one task mid-training, relaunch, launch again; the same sweep inline."""
    base = tmp_path_factory.mktemp("sweep")
    results, logs = base / "slurm", base / "submitit"
    planned = runs(results)
    target = next(folder for _, config, folder in planned if config.cycles == 3)
    record = {"results": results, "planned": planned, "target": target}

    # 1. the whole sweep as one job array; the launcher waits in the background
    first = subprocess.Popen(
        [sys.executable, "-m", "synflow", "launch", NOTEBOOK, "--profile", PROFILE,
         *[item for key, value in SETTINGS.items() for item in ("--set", f"{key}={value}")],
         "--results", str(results), "--stale-after", str(STALE_AFTER), "--logs", str(logs),
         *SLURM, "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SYNFLOW_QUIET": "1"},
    )
    try:
        # 2. cancel the IMP run's task once its first checkpoint is written
        checkpoint, result = target / store.CHECKPOINT_FILE, target / store.RESULT_FILE
        wait_for(lambda: checkpoint.exists() or result.exists(),
                 f"the first checkpoint of {target.name}", every=0.05, launcher=first)
        holder = claims.read_claim(target / claims.CLAIM_FILE) or {}
        task = holder.get("job")
        assert not result.exists() and task, (
            f"{target.name} finished (or holds no claim: {holder}) before it could be "
            "cancelled mid-training: make its training longer")
        # SIGKILL at once: a plain scancel sends SIGTERM (ignored by submitit's workers) and
        # kills only after KillWait, time enough for this short run to finish when idle
        subprocess.run(["scancel", "--signal=KILL", task], check=True)
        record["cancelled"] = task
        # 3. the rest of the array finishes
        output, _ = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            subprocess.run(["scancel", "--name", "synflow"], check=False)
    print(output)
    record["first"] = output
    record["first_rc"] = first.returncode
    record["job"] = task.split("_")[0]
    wait_for(lambda: not squeue(record["job"]), f"job {record['job']} to leave the queue")
    record["after_cancel"] = {
        name: sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        for name, folder in ((f.name, f) for _, _, f in planned)
    }

    # 4. relaunch once the cancelled run's claim is stale: only that run is submitted
    experiment, config = next((e, c) for e, c, f in planned if f == target)
    wait_for(lambda: state_of(config, experiment, results, stale_after=STALE_AFTER) == "missing",
             "the cancelled run's claim to go stale", timeout=4 * STALE_AFTER)
    record["second"] = cli("launch", "--logs", str(logs), *SLURM, "--wait", results=results)

    # 5. everything is stored: a further launch submits nothing
    jobs_before = sorted(p.name for p in logs.iterdir())
    record["third"] = cli("launch", "--logs", str(logs), *SLURM, results=results)
    record["new_job_folders"] = sorted({p.name for p in logs.iterdir()} - set(jobs_before))

    # 6. the same sweep inline, for the comparison
    inline = base / "inline"
    record["inline"] = cli("launch", "--executor", "inline", results=inline)
    record["inline_results"] = inline
    return record


def test_cancelled_task_leaves_no_result_and_keeps_its_checkpoint(sweep):
    files = sweep["after_cancel"][sweep["target"].name]
    assert store.RESULT_FILE not in files, (
        f"{files}: the run finished after scancel, within Slurm's KillWait (1 s in "
        "tools/slurm/slurm.conf.in); if the machine is that fast, lengthen its training")
    assert store.CHECKPOINT_FILE in files, files
    others = {name: listed for name, listed in sweep["after_cancel"].items()
              if name != sweep["target"].name}
    assert all(store.RESULT_FILE in listed for listed in others.values()), others
    # the launcher saw the other 4 runs through and reported the cancelled task
    assert sweep["first_rc"] == 1, sweep["first"]
    assert "finished: 4 ran" in sweep["first"], sweep["first"]
    assert f"FAILED task {sweep['cancelled']}" in sweep["first"], sweep["first"]


def test_relaunch_submits_only_the_cancelled_run_and_it_resumes(sweep):
    second = sweep["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "4 done, 1 missing" in second.stdout, second.stdout
    assert re.search(r"submitted 1 runs as 1 slurm task", second.stdout), second.stdout
    assert "finished: 1 ran" in second.stdout, second.stdout
    result = load_result(sweep["target"] / store.RESULT_FILE)
    resumed = result["environment"]["resumed_from_stage"]
    assert resumed is not None and resumed >= 1, result["environment"]
    assert result["environment"].get("host"), result["environment"]


def test_every_run_stored_exactly_once(sweep):
    planned = sweep["planned"]
    experiments = {folder.parent for _, _, folder in planned}
    stored = sorted(p for e in experiments for p in e.iterdir())
    assert sorted(folder for _, _, folder in planned) == stored  # no stray or moved-aside runs
    for _, config, folder in planned:
        files = sorted(p.name for p in folder.iterdir())
        assert files == [store.RESULT_FILE], (folder.name, files)  # no claim, checkpoint, temp
        assert load_result(folder / store.RESULT_FILE)["key"] == config.key()


def test_second_launch_submits_nothing(sweep):
    third = sweep["third"]
    assert third.returncode == 0, third.stdout + third.stderr
    assert "5 done" in third.stdout and "nothing to submit" in third.stdout, third.stdout
    assert "submitted" not in third.stdout, third.stdout
    assert sweep["new_job_folders"] == [], sweep["new_job_folders"]


def test_slurm_results_equal_inline_results(sweep):
    inline = sweep["inline"]
    assert inline.returncode == 0, inline.stdout + inline.stderr
    assert "finished: 5 ran" in inline.stdout, inline.stdout
    for experiment, config, folder in sweep["planned"]:
        on_slurm = load_result(folder / store.RESULT_FILE)
        here = load_result(store.run_dir(config, experiment, sweep["inline_results"])
                                 / store.RESULT_FILE)
        assert on_slurm["environment"]["device"] == here["environment"]["device"] == "cpu"
        assert without_timing(on_slurm) == without_timing(here), folder.name
