"""python -m synflow launch / status on a tiny sweep: inline and submitit's LocalExecutor."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

import pytest

from synflow.experiments import claims, cli, execution, holders, launch, status, store, worker
from synflow.experiments.results import RunResult

BASE = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=2,
                       batch_size=12, lr=0.05)
RUNS = [dataclasses.replace(BASE, compression=c) for c in (1.5, 2, 4, 8, 16)]
NOTEBOOK = "04_accuracy_vs_compression"


@pytest.fixture
def tiny(env, monkeypatch):
    """The notebook's sweep replaced by five tiny runs on the "blobs" dataset."""
    monkeypatch.setattr(launch, "planned_runs", lambda notebooks, profile, *overrides: [
        ("tiny", run) for run in RUNS])
    return env


def main(*args):
    return cli.main(list(args))


def test_launch_inline_then_nothing_to_submit(tiny, capsys):
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "5 runs of 04_accuracy_vs_compression at profile smoke" in out and "5 missing" in out
    assert "training precision float32, decided on this machine" in out  # conftest's variable
    assert "finished: 5 ran" in out
    assert len(store.frame("tiny")) == 5
    assert main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "local") == 0
    out = capsys.readouterr().out
    assert "5 done" in out and "submitted" not in out
    assert "nothing to submit: finished, 5 of 5 runs stored" in out


def truncate(payload, text):
    return text[:100]


def reformat(payload, text):
    return json.dumps({**payload, "format": 99})


def without(key, metric=False):
    def damage(payload, text):
        if metric:
            payload["metrics"].pop(key)
        else:
            payload.pop(key)
        return json.dumps(payload)

    return damage


def other_config(payload, text):
    payload["config"]["seed"] = 7
    return json.dumps(payload)


def text_metric(payload, text):
    payload["metrics"]["best_top1"] = "oops"
    return json.dumps(payload)


@pytest.mark.parametrize(("damage", "reason"), [
    (truncate, "is damaged and cannot be read as a run"),
    (reformat, "has format 99; this synflow reads format 1 only"),
    (without("history"), r"lacks the keys \['history'\]"),
    (without("best_top1", metric=True), r"lacks the metrics \['best_top1'\]"),
    (other_config, "holds a different config"),
    (text_metric, r"has metrics that are not numbers: \{'best_top1': 'oops'\}"),
], ids=["truncated", "format_99", "no_history", "no_best_top1", "another_config", "text_metric"])
def test_status_frame_and_launch_agree_that_a_damaged_result_is_not_done(tiny, capsys, damage,
                                                                         reason):
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    path = store.run_dir(RUNS[2], "tiny") / store.RESULT_FILE
    text = path.read_text()
    damaged = damage(json.loads(text), text)
    path.write_text(damaged)
    capsys.readouterr()
    # status only reads: the file is reported as damaged, by name and reason, and stays
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "5 runs: 4 done, 0 running, 0 failed, 1 damaged, 0 missing" in out
    assert re.search(rf"DAMAGED {re.escape(str(path))}.*{reason}", out), out
    assert path.read_text() == damaged
    # frame: not a done run either: named in a warning, left out of the table (a file
    # holding another config is a complete run of that config to frame, which reads
    # every run.json of an experiment without knowing which runs are planned, and keeps
    # a run stored before a field existed under its folder's old name)
    if damage is not other_config:
        with pytest.warns(UserWarning, match=rf"{re.escape(str(path))}.*{reason}.*left out"):
            table = store.frame("tiny")
        assert len(table) == 4 and RUNS[2].key() not in set(table["key"])
        with pytest.warns(UserWarning, match=reason):
            assert len(store.frame("tiny", history=True)) == 4 * BASE.epochs
    # launch moves it aside (never deletes it) and runs it again
    with pytest.warns(UserWarning, match=rf"{re.escape(str(path))}.*{reason}.*moved it to"):
        assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "4 done, 1 missing" in out and "finished: 1 ran" in out
    aside = list(path.parent.glob("run.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == damaged
    assert len(store.frame("tiny")) == 5
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    assert "5 runs: 5 done" in capsys.readouterr().out


def test_local_executor_two_workers_store_every_run_once(tiny, capsys):
    code = main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "local", "--workers", "2",
                "--wait", "--logs", str(tiny / "logs"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submitted 5 runs as 2 local task(s)" in out and str(tiny / "logs") in out
    # each run trained by exactly one worker: 5 ran in total, none failed (a second
    # write of a result would have failed: results are written exclusively)
    assert "finished: 5 ran" in out and "0 failed" in out.split("finished:")[1]
    assert len(store.frame("tiny")) == 5
    leftovers = [p.name for p in (tiny / "results" / "tiny").glob("*/*") if p.name != "run.json"]
    assert leftovers == []  # no claim, checkpoint or failure record left
    # where a task's seconds went: its start-up, then each run's phases (in the task's log)
    assert "task start-up (process start to the first run): mean" in out and "over 2 task(s)" in out
    assert not (tiny / "logs" / "%j").exists()  # no folder named after the job-id pattern
    logs = "".join(path.read_text() for path in (tiny / "logs").glob("*_log.out"))
    assert "task start-up: " in logs and ", pruning " in logs and ", training " in logs


def test_ctrl_c_while_waiting_leaves_the_tasks_running_and_says_so(tiny, capsys, monkeypatch):
    waited, real_wait = [], launch._wait

    def interrupted(jobs, **kwargs):
        waited.extend(jobs)
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "_wait", interrupted)
    monkeypatch.setenv(holders.STALE_VARIABLE, "600")  # launch sets it for its workers
    code = main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "local", "--workers", "1",
                "--wait", "--set", "epochs=2", "--set", "models={conv: 0.5}", "--stale-after",
                "900")
    out = capsys.readouterr().out
    assert code == 130 and "stopped waiting; local workers that got the Ctrl-C too" in out, out
    # the status command for these runs: the same overrides and precision (conftest's), or
    # it counts other runs
    assert (f"`SYNFLOW_TRAIN_PRECISION=float32 python -m synflow status {NOTEBOOK} --profile "
            "smoke --results ") in out
    assert ("--set epochs=2 --set 'models={conv: 0.5}' --stale-after 900` shows what is "
            "stored") in out
    assert not [line for s in real_wait(waited) for line in s.get("failed", [])]  # they went on
    assert len(store.frame("tiny")) == len(RUNS)


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"),
                                   OSError(30, "Read-only file system")])
def test_a_damaged_result_in_a_read_only_store_is_an_error_that_says_why(tiny, capsys,
                                                                         monkeypatch, error):
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    path = store.run_dir(RUNS[2], "tiny") / store.RESULT_FILE
    path.write_text("{")

    def read_only(source, target):
        raise error

    monkeypatch.setattr(store.os, "replace", read_only)  # root may write anywhere: simulated
    capsys.readouterr()
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 2
    err = capsys.readouterr().err
    assert f"{path} is damaged" in err and "cannot be moved aside to run again: " \
        f"{error.strerror} in" in err and "`status` only reads" in err
    assert path.read_text() == "{"


def test_ctrl_c_inline_exits_130_without_a_traceback_and_the_run_resumes(tiny, capsys,
                                                                         monkeypatch):
    from synflow import experiments

    assert experiments.RunConfig is store.RunConfig  # importable from the package
    real_train = execution.training_loop.train

    def interrupted_in_the_second_epoch(*args, **kwargs):
        def stop(state):
            kwargs["on_checkpoint"](state)
            raise KeyboardInterrupt

        return real_train(*args, **{**kwargs, "on_checkpoint": stop})

    monkeypatch.setattr(execution.training_loop, "train", interrupted_in_the_second_epoch)
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 130
    err = capsys.readouterr().err
    assert "synflow launch: interrupted; a run left half-done resumes from its checkpoint" in err
    assert "Traceback" not in err
    checkpoints = list((tiny / "results" / "tiny").glob(f"*/{store.CHECKPOINT_FILE}"))
    assert len(checkpoints) == 1
    monkeypatch.setattr(execution.training_loop, "train", real_train)
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    table = store.frame("tiny").set_index("path")
    assert len(table) == len(RUNS) and not checkpoints[0].exists()
    resumed = RunResult.read(checkpoints[0].parent / store.RESULT_FILE)
    assert resumed.environment["resumed_from_stage"] == 1  # from the checkpoint, not afresh


def test_a_worker_records_a_refused_run_as_failed(tiny, capsys):
    refused = dataclasses.replace(BASE, dataset="nowhere")
    summary = worker.Worker(str(tiny / "results"))([("tiny", dataclasses.asdict(refused))])
    assert summary["failed"] and "RunRefused" in summary["failed"][0]
    assert launch.state_of(refused, "tiny") == "failed"  # status shows why; not re-sent
    assert "unknown dataset 'nowhere'" in store.failure(refused, "tiny")["error"]


def test_a_failure_in_a_local_worker_records_its_log(tiny, capsys, monkeypatch):
    # a compression above the weight count fails in the worker (the real plan refuses it
    # up front: parameters.check_runs)
    failing = dataclasses.replace(BASE, compression=1e9)
    monkeypatch.setattr(launch, "planned_runs",
                        lambda notebooks, profile, *overrides: [("tiny", failing)])
    code = main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "local", "--workers", "1",
                "--wait", "--logs", str(tiny / "logs"))
    assert code == 1 and "FAILED mlp-w0.2-blobs" in capsys.readouterr().out
    record = store.failure(failing, "tiny")
    assert record["error"].startswith("ValueError: compression 1000000000.0 keeps"), record
    assert record["log"].startswith(str(tiny / "logs")) and record["log"].endswith("_log.out")
    assert "compression must be in" in Path(record["log"]).read_text()  # the worker's output


def test_failed_runs_are_not_resubmitted_unless_asked(tiny, capsys, monkeypatch):
    original = execution.execute

    def execute(config, **kwargs):
        if config.compression == 8:
            raise ValueError("diverged: loss is nan")
        return original(config, **kwargs)

    monkeypatch.setattr(execution, "execute", execute)
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 1
    out = capsys.readouterr().out
    assert "4 ran" in out and "FAILED mlp-w0.2-blobs-magnitude-c8" in out
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "5 runs: 4 done, 0 running, 1 failed, 0 damaged, 0 missing" in out
    assert "ValueError: diverged: loss is nan" in out and "failed.json" in out
    assert "runs/h" in out and "ETA for 1 runs" in out
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    assert "nothing to submit: 4 stored, 1 failed (--retry-failed retries them)" in \
        capsys.readouterr().out
    monkeypatch.setattr(execution, "execute", original)
    assert main("launch", NOTEBOOK, "--profile", "smoke", "--retry-failed") == 0
    assert "finished: 1 ran" in capsys.readouterr().out
    assert len(store.frame("tiny")) == 5


def test_status_reads_each_stored_result_once(tiny, capsys, monkeypatch):
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0
    reads, real_read = [], RunResult.read.__func__

    def counted(cls, path):
        reads.append(path)
        return real_read(cls, path)

    monkeypatch.setattr(RunResult, "read", classmethod(counted))
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    assert "5 runs: 5 done" in capsys.readouterr().out
    assert len(reads) == len(set(reads)) == 5  # a shared filesystem is slow: once each


def test_status_measures_the_rate_since_the_last_pause(tiny, capsys):
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0  # 5 runs, seconds apart
    for run in RUNS[:2]:  # as if they had finished the day before
        path = store.run_dir(run, "tiny") / store.RESULT_FILE
        payload = json.loads(path.read_text())
        day_before = time.time() - 86_400 - RUNS.index(run)
        payload["environment"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                           time.localtime(day_before))
        path.write_text(json.dumps(payload))
    capsys.readouterr()
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    rate = float(re.search(r"rate ([0-9.]+) runs/h", capsys.readouterr().out).group(1))
    assert rate > 100  # the last 3 runs' pace; over the day's gap it would be under 1


def test_status_counts_running_and_missing(tiny, capsys):
    store.run_or_load(RUNS[0], "tiny")
    claims.claim_run(store.run_dir(RUNS[1], "tiny"), stale_after=600)
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "5 runs: 1 done, 1 running, 0 failed, 0 damaged, 3 missing" in out
    assert f"running {RUNS[1].name()} on " in out
    garbled = store.run_dir(RUNS[2], "tiny") / claims.CLAIM_FILE
    garbled.parent.mkdir(parents=True)
    garbled.write_text("{")  # a claim being written, or damaged: no worker named
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "5 runs: 1 done, 2 running, 0 failed, 0 damaged, 2 missing" in out
    assert f"running {RUNS[2].name()}: its claim names no worker (being written, or damaged; " \
           "last touched 0 s ago), taken over once 600 s old" in out and "on None" not in out
    real_summarize = status._summarize

    def released_meanwhile(*args, **kwargs):  # the run finishes between count and print
        summary = real_summarize(*args, **kwargs)
        garbled.unlink()
        return summary

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(status, "_summarize", released_meanwhile)
        assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    assert f"running {RUNS[2].name()}: its claim was released just now" in \
        capsys.readouterr().out
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 0  # the claimed run is skipped
    assert "finished: 3 ran" in capsys.readouterr().out


def test_status_names_missing_runs_stored_at_the_other_precision(tiny, capsys, monkeypatch):
    # planned on a float32 machine, the runs a bfloat16 machine stored are missing: said so
    store.run_or_load(dataclasses.replace(RUNS[0], train_precision="bfloat16"), "tiny")
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "0 done" in out and "5 missing" in out
    assert ("1 of the missing runs are stored trained in bfloat16: this machine plans float32 "
            "(set $SYNFLOW_TRAIN_PRECISION=bfloat16") in out, out


def test_status_and_launch_name_runs_trained_on_another_copy_of_the_data(tiny, capsys):
    # what run_or_load would refuse to reuse is not "done" for status and launch either
    store.run_or_load(RUNS[0], "tiny")
    (tiny / "data" / "blobs").rename(tiny / "data" / "blobs-png")
    assert main("status", NOTEBOOK, "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "0 done" in out and "4 missing, 1 other data" in out, out
    assert (f"OTHER DATA {RUNS[0].name()}: trained on 'folder blobs', the data root holds "
            "'folder blobs-png': not reused") in out
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 2
    err = capsys.readouterr().err
    assert "1 stored runs were trained on another copy" in err and "Nothing was submitted" in err
    assert len(store.frame("tiny")) == 1  # no run trained


def test_status_flags_a_heartbeat_in_the_future_and_bounds_its_block(tiny, capsys):
    import time

    for run, ahead in ((RUNS[1], 300), (RUNS[2], 3600)):  # its writer's clock was ahead
        claims.claim_run(store.run_dir(run, "tiny"), stale_after=600)
        path = store.run_dir(run, "tiny") / claims.CLAIM_FILE
        os.utime(path, (time.time() + ahead, time.time() + ahead))
    assert main("status", NOTEBOOK, "--profile", "smoke", "--stale-after", "600") == 0
    out = capsys.readouterr().out
    # 300 s ahead: within stale_after, still running; an hour ahead: stale (not 70 minutes)
    assert "5 runs: 0 done, 1 running, 0 failed, 0 damaged, 4 missing" in out
    assert re.search(rf"running {RUNS[1].name()} .*heartbeat 30\d s in the future \(clock "
                     "skew", out), out
    for run in RUNS[1:3]:
        assert re.search(rf"CLOCK SKEW {store.run_dir(run, 'tiny')}/claim.json: heartbeat "
                         r"\d+ s in the future .*counts as stale", out), out
    assert not re.search(r"heartbeat -\d", out)  # no negative "s ago"


def test_stored_results_keep_their_duration(tiny):
    result = store.run_or_load(RUNS[0], "tiny")
    stored = json.loads((store.run_dir(RUNS[0], "tiny") / "run.json").read_text())
    assert stored["environment"]["duration"] == result.environment["duration"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["launch", "02_layer_collapse", "--profile", "smoke"], "invalid choice: '02_layer"),
        (["launch", NOTEBOOK, "--profile", "huge"], "invalid choice: 'huge'"),
        (["launch", NOTEBOOK, "--profile", "smoke", "--workers", "0"], "'0' is not allowed"),
        (["status", NOTEBOOK, "--profile", "smoke", "--stale-after", "-1"], "'-1' is not allowed"),
    ],
)
def test_bad_arguments_are_named(args, message, capsys):
    with pytest.raises(SystemExit):
        main(*args)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["status", "launch"])
@pytest.mark.parametrize("under", [False, True])
def test_results_naming_a_file_is_one_line_naming_it(tmp_path, capsys, command, under):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    results = a_file / "sub" if under else a_file
    code = main(command, NOTEBOOK, "--profile", "smoke", "--results", str(results))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"synflow {command}: the results folder {results} is ")
    assert f"{a_file} is a file" in err or "is a file, not a folder" in err
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_missing_data_is_named_before_anything_is_submitted(tiny, capsys, monkeypatch, executor):
    monkeypatch.setenv("SYNFLOW_DATA", str(tiny / "nowhere"))
    code = main("launch", NOTEBOOK, "--profile", "smoke", "--executor", executor)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("synflow launch: unknown dataset 'blobs'") and "Nothing was submitted" in err
    assert not (tiny / "results").exists()  # nothing written, no run marked failed


def test_a_results_folder_that_cannot_be_written_is_named(tiny, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(launch.tempfile, "TemporaryFile", read_only)
    code = main("launch", NOTEBOOK, "--profile", "smoke")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"the results folder {tiny / 'results' / 'tiny'} cannot be written" in err
    assert not (tiny / "results").exists()
    assert "Read-only file system" in err and "Nothing was submitted" in err


def test_status_into_a_reader_that_stops_early_is_quiet(tmp_path):
    # `status ... | head -1`: the closed pipe is not an error, and says nothing
    import subprocess
    import sys

    command = [sys.executable, "-m", "synflow", "status", NOTEBOOK,
               "05_iterative_magnitude_pruning", "06_sanity_checks", "--profile", "laptop",
               "--results", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "SYNFLOW_QUIET": "1"})
    first = process.stdout.readline()
    process.stdout.close()  # as head does after its line
    error = process.stderr.read().decode()
    assert first.startswith(NOTEBOOK.encode()) and process.wait() == 0 and error == "", error


def test_launch_into_a_reader_that_stops_early_is_an_error(tiny, capsys, monkeypatch):
    # runs not started are lost to a closed pipe: unlike status, launch says so (exit 2)
    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(launch, "launch", closed)
    assert main("launch", NOTEBOOK, "--profile", "smoke") == 2
    assert "runs not started are still missing" in capsys.readouterr().err


def test_bad_slurm_param_is_named(tiny, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tiny))  # named before anything else, sbatch or not
    code = main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "slurm",
                "--slurm-param", "qos")
    assert code == 2
    assert "--slurm-param 'qos' is not allowed; give KEY=VALUE" in capsys.readouterr().err


def test_slurm_without_sbatch_is_named(tiny, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tiny))  # no sbatch there
    assert main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "slurm") == 2
    assert "--executor slurm needs Slurm's sbatch and srun on PATH" in capsys.readouterr().err
    assert not (tiny / "results" / "_submitit").exists()


def test_slurm_without_a_reachable_controller_is_named(tiny, capsys, monkeypatch):
    bin_dir = tiny / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"  # fails as Slurm's does when no slurmctld answers
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: "
                      "Unable to contact slurm controller (connect failure)' >&2\nexit 1\n")
    sbatch.chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # present, as on a Slurm client
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert main("launch", NOTEBOOK, "--profile", "smoke", "--executor", "slurm") == 2
    err = capsys.readouterr().err
    assert "sbatch could not submit the job array" in err, err
    assert "Unable to contact slurm controller" in err and "sinfo" in err, err
    assert "Traceback" not in err


def test_the_real_plan_is_the_notebooks():
    planned = launch.planned_runs([NOTEBOOK, "05_iterative_magnitude_pruning"], "smoke")
    assert {experiment for experiment, _ in planned} == {"04_accuracy_smoke", "05_imp_smoke"}
    assert len(planned) == len(set(planned))


def test_a_timed_out_task_requeues_itself_with_its_runs(tmp_path):
    # submitit calls checkpoint() on timeout/preemption and resubmits what it returns;
    # the requeued task takes back its own claim and resumes from the training checkpoint
    worker = launch.Worker(str(tmp_path), retry_failed=True, checkpoint_every=2)
    runs = [("tiny", dataclasses.asdict(RUNS[0]))]
    delayed = worker.checkpoint(runs)
    assert delayed.function is worker and delayed.args == (runs,)


@dataclasses.dataclass
class LoggingWorker(launch.Worker):
    """A Worker that logs every run it really executes and takes its time doing it."""

    log: str = ""

    def __call__(self, runs):
        import time

        original = execution.execute

        def execute(config, **kwargs):
            with open(self.log, "a") as handle:
                handle.write(config.name() + "\n")
            time.sleep(0.5)  # long enough for the other job to reach the same run
            return original(config, **kwargs)

        execution.execute = execute
        return super().__call__(runs)


def test_two_local_executor_jobs_on_the_same_list_never_train_the_same_run(tiny):
    import sys

    import cloudpickle
    import submitit

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the jobs cannot import tests
    executor = submitit.LocalExecutor(folder=tiny / "logs" / "%j")
    executor.update_parameters(timeout_min=10)
    worker = LoggingWorker(str(tiny / "results"), log=str(tiny / "executed.log"))
    runs = [("tiny", dataclasses.asdict(run)) for run in RUNS]
    try:
        jobs = [executor.submit(worker, runs) for _ in range(2)]  # same runs, same order
        summaries = [job.result() for job in jobs]
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    executed = (tiny / "executed.log").read_text().splitlines()
    assert sorted(executed) == sorted(run.name() for run in RUNS)  # each exactly once
    assert sum(s["ran"] for s in summaries) == 5 and not any(s["failed"] for s in summaries)
    assert sum(s["busy"] + s["stored"] for s in summaries) == 5  # the other job skipped them


def test_a_task_imports_neither_pandas_nor_matplotlib():
    # unpickling a Worker imports synflow.experiments.launch; pandas, matplotlib and seaborn (about
    # 1.5 s of every Slurm task's start-up) come only with analysis, plotting, sweeps, frame
    import subprocess
    import sys

    heavy = ("pandas", "matplotlib", "seaborn")
    code = (f"import sys, synflow.experiments.launch; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    import synflow  # the lazy layers are still there, on first use
    from synflow.analysis import plots

    assert plots.METHOD_ORDER[0] == "random" and "analysis" in dir(synflow)
    with pytest.raises(AttributeError, match="has no attribute 'plotter'"):
        synflow.plotter  # noqa: B018


def test_process_age_counts_from_the_process_start():
    import subprocess
    import sys
    import time

    code = ("import time; time.sleep(1.5); from synflow.experiments.worker import process_age; "
            "print(process_age())")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    # the start time is read in clock ticks (10 ms), rounded down: the age may exceed the
    # wall time measured around the process by up to one tick, however loaded the machine
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert 1.5 <= float(done.stdout) <= wall + tick


def test_phases_split_a_runs_duration():
    result = RunResult(BASE, {}, {"seconds": 6.0, "prune_seconds": 0.5}, [], [], [],
                       {"duration": 8.0, "resumed_from_stage": None})
    assert worker.phases(result) == "set-up 1.5 s, pruning 0.5 s, training 6.0 s"
    result.environment["resumed_from_stage"] = 1
    assert worker.phases(result) == "resumed from a checkpoint"
