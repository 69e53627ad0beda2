"""Notebooks and training runs side by side: ``tools/run_notebooks.py --jobs N``.

The work of a notebook run is split into jobs, each with ONE thread, at most N at once
and only while the machine's available memory holds their estimated peaks:

* every training notebook's runs (``synflow.experiments.launch.planned_runs``: exactly
  what the notebook's ``store.sweep`` trains), one job per run, in spawned one-thread
  workers that store each result;
* every notebook, executed by a child ``run_notebooks.py`` (its kernel with one thread
  and ``SYNFLOW_WORKERS=1``); a training notebook starts once all its runs are stored, so
  it only loads them.

Jobs start in this order: the notebooks with the largest memory (the longest), the other
notebooks without runs, the runs, then the training notebooks. The training notebooks'
runs come notebook by notebook, the notebook whose kernel took longest in the last full
run (its ``run_times.csv``, when there is one) first: the last training notebook starts
only after the last run and may run alone at the end, so it should be the shortest. With
one thread per job a notebook's outputs do not depend on N, on the order or on what ran
beside it. A run that fails in a worker, or whose worker is killed (e.g. for memory: the
next runs then go to a new pool), is run again by its notebook, whose output then shows
the error. The schedule wakes as soon as a run ends (a notebook's end is seen within
half a second).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "SYNFLOW_WORKERS": "1"}
# estimated peak memory (GB) of a notebook's kernel per profile (README: 01 and 02 need
# 12-14 GB at the laptop profile; 01 peaks at 17.6 GB at the paper profile)
NOTEBOOK_GB = {
    "laptop": {"01_conservation": 14.0, "02_layer_collapse": 14.0},
    "paper": {"01_conservation": 18.0, "02_layer_collapse": 18.0},
}
DEFAULT_NOTEBOOK_GB = 3.0
RUN_GB = 1.5  # a one-thread training worker (torch, the data subsets, the model)


def available_gb() -> float:
    """MemAvailable of /proc/meminfo in GB (inf where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


@dataclass(eq=False)  # jobs are told apart by identity
class Job:
    """A notebook (``argv``: the child command line) or a training run (``run``: the job
    of ``store._worker_run``)."""

    name: str
    memory_gb: float
    argv: list | None = None
    run: tuple | None = None
    after: set = field(default_factory=set)  # names of jobs that must end first


class Notebook:
    """A child ``run_notebooks.py`` for one notebook, its output prefixed by its name."""

    def __init__(self, argv: list[str], label: str):
        env = {**os.environ, **ONE_THREAD}
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._echo, args=(label,), daemon=True)
        self.reader.start()

    def _echo(self, label: str) -> None:
        for line in self.process.stdout:
            print(f"[{label}] {line.rstrip()}", flush=True)

    def poll(self):
        code = self.process.poll()
        if code is not None:
            self.reader.join()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()


class Run:
    """A training run in the worker pool; ends 0 when its result is stored."""

    def __init__(self, pool, job: tuple):
        from synflow.experiments import store

        self.job, self.begun = job, time.perf_counter()
        self.future = pool.submit(store._worker_run, job)

    def poll(self):
        if not self.future.done():
            return None
        number, count, config, experiment, _ = self.job
        stored = self.future.exception() is None and self.future.result() is not None
        outcome = f"({time.perf_counter() - self.begun:.1f} s)" if stored else \
            "FAILED (its notebook runs it again and shows the error)"
        print(f"    {experiment}: run {number}/{count} {config.name()} {outcome}", flush=True)
        return 0  # a failed run fails its notebook, not the schedule

    def stop(self) -> None:
        self.future.cancel()


def plan(notebooks: list[Path], profile: str, child_argv,
         kernel_minutes: dict[str, float] | None = None) -> list[Job]:
    """The jobs of ``notebooks`` at ``profile`` in the order they start;
    ``child_argv(notebook)`` is the command line that executes one notebook alone.
    ``kernel_minutes`` (:func:`previous_kernel_minutes`) orders the training notebooks,
    and their runs, longest kernel first (a notebook not in it counts as 0; ties keep
    the notebooks' order)."""
    from synflow.experiments import launch, sweeps

    sizes = NOTEBOOK_GB.get(profile, {})
    first, runs, last = [], [], []
    training = [n for n in notebooks if n.stem in sweeps.BUILDERS]
    training.sort(key=lambda n: -(kernel_minutes or {}).get(n.stem, 0.0))  # stable
    notebooks = [n for n in notebooks if n.stem not in sweeps.BUILDERS] + training
    for notebook in notebooks:
        stem = notebook.stem
        gb = sizes.get(stem, DEFAULT_NOTEBOOK_GB)
        job = Job(stem, gb, argv=child_argv(notebook))
        if stem not in sweeps.BUILDERS:
            first.append(job)
            continue
        planned = launch.planned_runs([stem], profile)
        names = []
        for number, (experiment, config) in enumerate(planned, start=1):
            name = f"{experiment}/{config.name()}"
            names.append(name)
            payload = (number, len(planned), config, experiment, {})
            runs.append(Job(name, RUN_GB, run=payload))
        job.after = set(names)
        last.append(job)
    first.sort(key=lambda job: -job.memory_gb)  # stable: the largest first
    return first + runs + last


def execute(jobs: list[Job], slots: int, memory_gb: float | None = None,
            seconds: dict | None = None) -> list[str]:
    """Run ``jobs`` at most ``slots`` at once within ``memory_gb`` (default: the memory
    available now; a job that alone exceeds it still runs, alone); the names of those
    that failed. ``seconds``, when given, receives each job's wall-clock seconds by name
    (not the runs that were stored before)."""
    import multiprocessing

    from synflow.experiments import store

    budget = available_gb() if memory_gb is None else memory_gb
    pending, running, ended, failed = list(jobs), {}, set(), []
    begun, seconds = {}, {} if seconds is None else seconds
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(slots, mp_context=context)
    try:
        while pending or running:
            used = sum(job.memory_gb for job in running)
            for job in list(pending):
                if len(running) >= slots:
                    break
                fits = used + job.memory_gb <= budget or not running
                if not fits or not job.after <= ended:
                    continue
                pending.remove(job)
                if job.run is not None and store.stored_result(job.run[2], job.run[3]) is not None:
                    ended.add(job.name)  # stored before: nothing to do
                    continue
                if job.run is None:
                    running[job] = Notebook(job.argv, job.name)
                else:
                    try:
                        running[job] = Run(pool, job.run)
                    except BrokenProcessPool:  # a worker died (killed for memory?): its
                        # runs then in the pool were reported failed (their notebooks
                        # run them again); the next runs go to a new pool
                        pool.shutdown(wait=True)
                        pool = ProcessPoolExecutor(slots, mp_context=context)
                        running[job] = Run(pool, job.run)
                begun[job.name] = time.perf_counter()
                used += job.memory_gb
            futures = [h.future for h in running.values() if isinstance(h, Run)]
            if futures:  # wake when a run ends, not up to half a second later
                wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
            else:
                time.sleep(0.5)
            for job, handle in list(running.items()):
                code = handle.poll()
                if code is not None:
                    del running[job]
                    seconds[job.name] = time.perf_counter() - begun[job.name]
                    ended.add(job.name)  # a failed run still lets its notebook start
                    if code:
                        failed.append(job.name)
    except BaseException:
        for handle in running.values():
            handle.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
    return failed


RUN_TIMES_FILE = "run_times.csv"
RUN_TIMES_COLUMNS = ["notebook", "notebook_minutes", "training_runs", "training_run_minutes",
                     "jobs", "cpu", "train_precision"]


def host() -> tuple[str, str]:
    """``(cpu, train_precision)`` of this machine, for the run-times file: the CPU's model
    name with torch's CPU capability and whether it has native bf16, and the precision
    ``train_precision="auto"`` resolves to on the CPU (what the CPU runs trained in)."""
    import torch

    from synflow.training import precision

    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            name = next((line.partition(":")[2].strip() for line in handle
                         if line.startswith("model name")), name)
    except OSError:
        pass
    bf16 = "native bf16" if precision.native_bf16() else "no native bf16"
    cpu = f"{name} ({torch.backends.cpu.get_cpu_capability()}, {bf16})"
    return cpu, precision.resolve("auto", "cpu")


def previous_kernel_minutes(path: Path | None) -> dict[str, float]:
    """``{notebook: kernel minutes}`` of the run-times file at ``path``
    (:func:`write_run_times`); empty when there is none or it cannot be read, or when a
    value is not a finite number >= 0 (the file is only a hint for the order)."""
    try:
        with open(path, encoding="utf-8") as handle:
            minutes = {row["notebook"]: float(row["notebook_minutes"])
                       for row in csv.DictReader(handle) if row["notebook"] != "all"}
    except (OSError, TypeError, KeyError, ValueError, csv.Error):
        return {}
    return minutes if all(0 <= m < float("inf") for m in minutes.values()) else {}


def write_run_times(path: Path, jobs: list[Job], seconds: dict, wall: float, slots: int) -> Path:
    """``path`` (``<figures>/run_times.csv``, read by ``tools/paper_claims.py`` for
    docs/benchmarks.md): per notebook the minutes of its kernel and the number and summed
    minutes of its training runs (each in its own one-thread process), then a row ``all``
    whose ``notebook_minutes`` is the whole schedule's wall clock; every row names the
    machine (:func:`host`). Written atomically
    (:func:`synflow.core.files.atomic_write`)."""
    rows = []
    machine = list(host())
    for job in jobs:
        if job.run is not None:
            continue
        runs = [name for name in job.after if name in seconds]
        rows.append([job.name, f"{seconds.get(job.name, 0) / 60:.1f}", len(runs),
                     f"{sum(seconds[name] for name in runs) / 60:.1f}", slots, *machine])
    rows.sort()
    ran = [name for name in seconds if "/" in name]
    rows.append(["all", f"{wall / 60:.1f}", len(ran),
                 f"{sum(seconds[name] for name in ran) / 60:.1f}", slots, *machine])
    from synflow.core.files import atomic_write

    def write(file) -> None:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(RUN_TIMES_COLUMNS)
        writer.writerows(rows)

    return atomic_write(path, write, text=True)


def main(notebooks: list[Path], profile: str, slots: int, child_argv,
         run_times: Path | None = None) -> list[str]:
    """Plan and execute; prints what runs where. The names of failed jobs. With
    ``run_times`` and no failure, the times go there (:func:`write_run_times`); the
    times already there order the training notebooks (:func:`plan`)."""
    jobs = plan(notebooks, profile, child_argv, previous_kernel_minutes(run_times))
    runs = sum(job.run is not None for job in jobs)
    print(f"{len(notebooks)} notebook(s) and {runs} training run(s) at profile {profile}, "
          f"{slots} at once with one thread each, within {available_gb():.1f} GB", flush=True)
    sys.stdout.flush()
    seconds, start = {}, time.perf_counter()
    failed = execute(jobs, slots, seconds=seconds)
    if run_times is not None and not failed:
        print(f"run times: {write_run_times(run_times, jobs, seconds, time.perf_counter() - start, slots)}")
    return failed
