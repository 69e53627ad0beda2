"""A worker task of ``python -m synflow launch``: it runs its share of a sweep's runs in
turn through :func:`synflow.experiments.store.run_unless_stored` (claims keep two
workers off one run) and reports counts, failures and where each run's seconds went.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, replace

import submitit

from . import parallel, store
from .results import RunResult
from .runconfig import config_from_dict
from .runnable import RunRefused


@dataclass
class Worker(submitit.helpers.Checkpointable):
    """Runs ``(experiment, config dict)`` pairs in turn through ``store.run_unless_stored``,
    skipping runs another worker holds; a run that raises is recorded (by the store, or
    here for one refused before it started: :class:`RunRefused`) and the worker goes on
    with the next. Returns counts and the failures.

    >>> import tempfile
    >>> from dataclasses import asdict
    >>> from synflow.experiments.runconfig import RunConfig
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> _ = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [],
    ...               {}).write(store.run_dir(config, "demo", results) / "run.json")
    >>> Worker(results)([("demo", asdict(config))])["stored"]  # already stored: skipped
    task start-up: ... s from process start to the first run (interpreter, imports, unpickling)
    1
    """

    results: str
    retry_failed: bool = False
    checkpoint_every: int = 1
    stale_after: float | None = None
    threads: int | None = None
    processes: int = 1  # --runs-per-gpu: worker processes side by side in this task

    def __call__(self, runs: list[tuple[str, dict]]) -> dict:
        if self.processes > 1:
            return self.packed(runs)
        startup = process_age()
        if startup is not None:
            print(f"task start-up: {startup:.1f} s from process start to the first run "
                  f"(interpreter, imports, unpickling)", flush=True)
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        summary = {"ran": 0, "stored": 0, "busy": 0, "failed before": 0, "failed": [],
                   "startup": startup}
        for number, (experiment, fields) in enumerate(runs, start=1):
            config = config_from_dict(fields)
            if store.stored_result(config, experiment, self.results) is not None:
                summary["stored"] += 1
                continue
            start = time.perf_counter()
            try:
                result, ran = store.run_unless_stored(
                    config, experiment, results=self.results, retry_failed=self.retry_failed,
                    checkpoint_every=self.checkpoint_every, stale_after=self.stale_after)
                summary["ran" if ran else "stored"] += 1
                outcome = (f"done in {time.perf_counter() - start:.1f} s ({phases(result)})"
                           if ran else "skipped: another worker stored it just now")
            except store.RunBusy:
                summary["busy"] += 1
                outcome = "skipped: another worker runs it"
            except store.RunFailed:
                summary["failed before"] += 1
                outcome = "skipped: failed before (--retry-failed retries it)"
            except Exception as error:  # noqa: BLE001  (recorded in failed.json; next run)
                if isinstance(error, RunRefused):  # the store wrote nothing for it
                    store.record_failure(store.run_dir(config, experiment, self.results),
                                         config, error)
                traceback.print_exc(file=sys.stdout)
                summary["failed"].append(f"{config.name()}: {type(error).__name__}: {error}")
                outcome = f"FAILED: {type(error).__name__}: {error}"
            print(f"{experiment}: run {number}/{len(runs)} {config.name()} {outcome}", flush=True)
        return summary


    def packed(self, runs: list[tuple[str, dict]]) -> dict:
        """``processes`` workers side by side (spawned; they share the task's GPU and
        split its CPUs), each walking the whole list from its own offset, so claims share
        the work as between local workers; their summaries added up."""
        cpus = self.threads or parallel.available_cpus()
        single = replace(self, processes=1, threads=max(1, cpus // self.processes))
        step = max(1, len(runs) // self.processes)
        lists = [runs[i * step:] + runs[:i * step] for i in range(self.processes)]
        summaries = parallel.side_by_side(single, lists, self.processes)
        total = {key: sum(s[key] for s in summaries)
                 for key in ("ran", "stored", "busy", "failed before")}
        startups = [s["startup"] for s in summaries if s["startup"] is not None]
        return {**total, "failed": [line for s in summaries for line in s["failed"]],
                "startup": max(startups) if startups else None}


def process_age() -> float | None:
    """Seconds since this process started (Linux: ``/proc/self/stat``, 10 ms ticks), or
    None where that cannot be read. In a task: interpreter start, imports, unpickling.

    >>> process_age() > 0
    True
    """
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()  # after "pid (command)"
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def phases(result: RunResult) -> str:
    """Where a run's seconds went: set-up (data, model), pruning (IMP: with its cycles'
    trainings), training; from its stored ``environment.duration`` and ``metrics``
    (seconds, one decimal).

    >>> from synflow.experiments.runconfig import RunConfig
    >>> result = RunResult(RunConfig("mlp", "mnist"), {}, {"seconds": 6.0, "prune_seconds": 0.5},
    ...                    [], [], [], {"duration": 8.0})
    >>> phases(result)
    'set-up 1.5 s, pruning 0.5 s, training 6.0 s'
    """
    if result.environment.get("resumed_from_stage"):
        return "resumed from a checkpoint"  # the training seconds span both executions
    metrics = result.metrics
    training, pruning = metrics.get("seconds") or 0.0, metrics.get("prune_seconds") or 0.0
    setup = result.environment["duration"] - training - pruning
    return f"set-up {setup:.1f} s, pruning {pruning:.1f} s, training {training:.1f} s"
