"""tools/notebook_jobs.py (``run_notebooks.py --jobs N``): what runs first, and that
jobs share the slots and the memory as promised. No notebook is executed here."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebook_jobs", ROOT / "tools" / "notebook_jobs.py")
jobs_module = importlib.util.module_from_spec(spec)
sys.modules["notebook_jobs"] = jobs_module  # its dataclass looks itself up there
spec.loader.exec_module(jobs_module)


def notebook(stem: str) -> Path:
    return ROOT / "notebooks" / f"{stem}.ipynb"


def test_big_notebooks_first_then_the_runs_then_the_training_notebooks():
    names = ["00_quickstart", "01_conservation", "02_layer_collapse",
             "05_iterative_magnitude_pruning"]
    jobs = jobs_module.plan([notebook(n) for n in names], "laptop", lambda nb: [nb.stem])
    order = [job.name for job in jobs]
    assert order[:3] == ["01_conservation", "02_layer_collapse", "00_quickstart"]
    assert order[-1] == "05_iterative_magnitude_pruning"
    runs = jobs[3:-1]
    assert len(runs) == 16 and all(job.run is not None for job in runs)
    assert jobs[-1].after == {job.name for job in runs}  # it starts once they are stored
    assert jobs[0].memory_gb == 14.0 and jobs[2].memory_gb == jobs_module.DEFAULT_NOTEBOOK_GB
    assert all(job.argv == [job.name] for job in jobs if job.run is None)


def timed_job(name: str, memory: float, log: Path, seconds: float = 1.0, after=()):
    code = (f"import json, sys, time; start = time.time(); time.sleep({seconds!r}); "
            f"open({str(log)!r}, 'a').write(json.dumps([{name!r}, start, time.time()]) + '\\n')")
    return jobs_module.Job(name, memory, argv=[sys.executable, "-c", code], after=set(after))


def spans(log: Path) -> dict:
    return {name: (start, end) for name, start, end in map(json.loads, log.read_text().splitlines())}


def overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_jobs_keep_to_the_slots_the_memory_and_their_order(tmp_path):
    log = tmp_path / "spans.jsonl"
    jobs = [timed_job("big1", 14, log), timed_job("big2", 14, log),
            timed_job("small", 3, log), timed_job("small2", 3, log),
            timed_job("last", 3, log, 0.2, after=["big2"])]
    failed = jobs_module.execute(jobs, slots=2, memory_gb=20)
    assert failed == []
    ran = spans(log)
    assert not overlap(ran["big1"], ran["big2"])  # 28 GB > 20 GB: never together
    assert overlap(ran["big1"], ran["small"])  # the second slot is used meanwhile
    assert ran["last"][0] >= ran["big2"][1]  # after its dependency
    for start, _ in ran.values():  # never more than two at once
        assert sum(begin <= start < end for begin, end in ran.values()) <= 2


def test_a_failed_notebook_is_reported_and_the_others_run(tmp_path):
    log = tmp_path / "spans.jsonl"
    bad = jobs_module.Job("bad", 1, argv=[sys.executable, "-c", "raise SystemExit(3)"])
    failed = jobs_module.execute([bad, timed_job("good", 1, log, 0.1)], slots=1, memory_gb=8)
    assert failed == ["bad"] and set(spans(log)) == {"good"}


def test_each_job_is_timed_and_the_times_file_sums_a_notebooks_runs(tmp_path):
    log = tmp_path / "spans.jsonl"
    jobs = [timed_job("00_a", 1, log, 0.1), timed_job("05_b", 1, log, 0.1)]
    seconds = {}
    assert jobs_module.execute(jobs, slots=2, memory_gb=8, seconds=seconds) == []
    jobs[1].after = {"x/1", "x/2"}  # as if two training runs had come before it
    ran = spans(log)
    for name in ("00_a", "05_b"):  # the wall clock of the child, plus its start-up
        assert seconds[name] >= ran[name][1] - ran[name][0]
    seconds.update({"x/1": 60.0, "x/2": 120.0})  # two training runs of 05_b
    path = jobs_module.write_run_times(tmp_path / "figures" / "run_times.csv", jobs, seconds,
                                      wall=600.0, slots=2)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == jobs_module.RUN_TIMES_COLUMNS
    assert [r["notebook"] for r in rows] == ["00_a", "05_b", "all"]
    assert (rows[1]["training_runs"], rows[1]["training_run_minutes"]) == ("2", "3.0")
    assert (rows[0]["training_runs"], rows[0]["training_run_minutes"]) == ("0", "0.0")
    assert rows[2]["notebook_minutes"] == "10.0" and rows[2]["training_runs"] == "2"
    cpu, train_precision = jobs_module.host()
    assert {(r["cpu"], r["train_precision"]) for r in rows} == {(cpu, train_precision)}
    assert train_precision in ("float32", "bfloat16") and "bf16" in cpu
    assert not list(path.parent.glob(".*"))  # no temporary file left


def test_training_notebooks_and_their_runs_go_longest_kernel_first(tmp_path):
    names = ["04_accuracy_vs_compression", "05_iterative_magnitude_pruning", "06_sanity_checks"]
    paths = [notebook(n) for n in names]
    times = tmp_path / "run_times.csv"
    times.write_text("notebook,notebook_minutes,training_runs\n04_accuracy_vs_compression,0.3,78\n"
                     "05_iterative_magnitude_pruning,0.2,16\n06_sanity_checks,1.1,94\nall,30.1,188\n")
    minutes = jobs_module.previous_kernel_minutes(times)
    assert minutes == {names[0]: 0.3, names[1]: 0.2, names[2]: 1.1}
    jobs = jobs_module.plan(paths, "smoke", lambda nb: [nb.stem], minutes)
    notebooks = [job.name for job in jobs if job.run is None]
    assert notebooks == [names[2], names[0], names[1]]  # the shortest kernel ends the schedule
    owner = {run: job.name for job in jobs for run in job.after}
    owners = [owner[job.name] for job in jobs if job.run is not None]
    assert owners == sorted(owners, key=notebooks.index)  # the runs in the same order
    assert set(owners) == set(names)
    unordered = jobs_module.plan(paths, "smoke", lambda nb: [nb.stem],
                                 jobs_module.previous_kernel_minutes(tmp_path / "none.csv"))
    assert [job.name for job in unordered if job.run is None] == names  # no file: as given


def test_a_damaged_run_times_file_is_ignored(tmp_path):
    path = tmp_path / "run_times.csv"
    header = "notebook,notebook_minutes\n"
    for body in ["", "nonsense", "04_a,fast\n", "04_a,nan\n06_b,2\n", "04_a,-1\n",
                 "04_a,inf\n", '04_a,"' + "x" * 200_000 + '"\n', "04_a\n"]:
        path.write_text(header + body)
        assert jobs_module.previous_kernel_minutes(path) == {}, body[:20]
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert jobs_module.previous_kernel_minutes(path) == {}
    path.write_text(header + "04_a,0.3\n")
    assert jobs_module.previous_kernel_minutes(path) == {"04_a": 0.3}


def test_the_schedule_wakes_when_a_run_ends_not_on_its_half_second_tick(env, monkeypatch):
    from synflow.experiments import store

    config = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=2, width=0.2,
                             epochs=1, batch_size=12, lr=0.05)
    runs = [jobs_module.Job(f"exp/{c}", 1, run=(n, 2, replace(config, compression=c), "exp", {}))
            for n, c in enumerate((2, 4), 1)]
    ticks, sleep = [], time.sleep

    def counted_sleep(seconds):
        ticks.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(jobs_module.time, "sleep", counted_sleep)  # only runs: never called
    assert jobs_module.execute(runs, slots=1, memory_gb=8) == []
    assert ticks == [] and len(store.frame("exp")) == 2


def test_a_worker_killed_mid_run_fails_that_run_and_the_schedule_goes_on(env, capsys):
    import os
    import signal
    import threading

    import psutil

    from synflow.experiments import claims, store

    config = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=2, width=0.2,
                             epochs=1, batch_size=12, lr=0.05)
    configs = [replace(config, compression=c) for c in (2, 4, 8)]
    runs = [jobs_module.Job(f"exp/{c.compression}", 1, run=(n, 3, c, "exp", {}))
            for n, c in enumerate(configs, 1)]
    first_claim = store.run_dir(configs[0], "exp") / claims.CLAIM_FILE

    def kill_the_worker_of_the_first_run():  # as the kernel's OOM killer would
        deadline = time.monotonic() + 120
        while not first_claim.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for child in psutil.Process().children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()):  # the pool's workers only
                os.kill(child.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker_of_the_first_run)
    killer.start()
    failed = jobs_module.execute(runs, slots=1, memory_gb=8)
    killer.join()
    assert failed == []  # a failed run fails its notebook, not the schedule
    out = capsys.readouterr().out
    assert "run 1/3" in out and "FAILED" in out.split("run 1/3")[1].splitlines()[0]
    assert store.stored_result(configs[0], "exp") is None
    assert all(store.stored_result(c, "exp") is not None for c in configs[1:])
