"""Fill the results store with a notebook's runs: in this process, in local worker
processes, or as a Slurm job array -- through submitit.

    python -m synflow launch 04_accuracy_vs_compression --profile paper --executor slurm \\
        --partition gpu --gpus-per-task 1 --cpus-per-task 8 --mem-gb 32 --time-min 240 \\
        --array-parallelism 64 --runs-per-task 4
    python -m synflow status 04_accuracy_vs_compression --profile paper

Only runs without a result (and without a fresh claim, and, unless
``--retry-failed``, without a failure record) are submitted, so a second launch
submits nothing. Every worker goes through :func:`synflow.experiments.store.run_or_load`:
claims keep two workers off one run, training checkpoints let a killed or
preempted run continue, and a timed-out Slurm task is requeued by submitit
(:class:`synflow.experiments.worker.Worker` is ``Checkpointable``) and resumes from its checkpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import submitit

from ..training.precision import VARIABLE
from . import claims, holders, store, sweeps
from .parameters import check_runs, status_command
from .results import DamagedResult
from .runconfig import RunConfig
from .worker import Worker

EXECUTORS = ("inline", "local", "slurm")


def planned_runs(notebooks: list[str], profile: str, overrides: dict | None = None
                 ) -> list[tuple[str, RunConfig]]:
    """``(experiment, config)`` of every run of ``notebooks`` at ``profile`` (with the
    parameter ``overrides`` of ``--set``, see :func:`synflow.experiments.sweeps.profile_params`).

    Raises ValueError naming the notebook and the parameter when a value has the wrong
    type or range (:func:`synflow.experiments.parameters.check_parameters`) or makes
    runs that cannot work (:func:`synflow.experiments.parameters.check_runs`: an unknown
    dataset, a compression above the model's weight count), so ``launch`` and ``status``
    refuse it before anything is submitted or stored.

    >>> runs = planned_runs(["04_accuracy_vs_compression"], "smoke")
    >>> len(runs), runs[0][0]
    (6, '04_accuracy_smoke')
    """
    runs = []
    for notebook in notebooks:
        params = sweeps.profile_params(notebook, profile, overrides)
        experiment = sweeps.experiment(notebook, params)
        configs = sweeps.configs(notebook, params)
        check_runs(notebook, params, configs)
        runs += [(experiment, config) for config in configs]
    return runs


def state_of(config: RunConfig, experiment: str, results=None, *,
             stale_after: float | None = None, resuming: bool = False) -> str:
    """"done", "other data", "damaged", "running" (fresh claim), "failed" (failure
    record) or "missing".

    Done is :func:`synflow.experiments.store.read_stored`'s answer, for ``status`` and
    ``launch`` alike, unless the run was trained on another copy of its dataset than the
    data root holds (:func:`synflow.experiments.store.other_data`): "other data", which
    the notebooks would refuse. A damaged ``run.json`` (or one holding another config) is
    "damaged" (read only: ``status``); ``resuming=True`` (``launch``) moves it aside,
    named in a warning, and the run reads as missing.

    >>> import tempfile
    >>> state_of(RunConfig("mlp", "mnist"), "demo", results=tempfile.mkdtemp())
    'missing'
    """
    return read_state(config, experiment, results, stale_after=stale_after,
                      resuming=resuming)[0]


def read_state(config: RunConfig, experiment: str, results=None, *,
               stale_after: float | None = None, resuming: bool = False) -> tuple:
    """``(state, stored result)``: :func:`state_of`'s state and the result it read (None
    unless "done" or "other data"), so that ``status`` reads each ``run.json`` once.

    >>> import tempfile
    >>> read_state(RunConfig("mlp", "mnist"), "demo", results=tempfile.mkdtemp())
    ('missing', None)
    """
    folder = store.run_dir(config, experiment, results)
    try:
        stored = (store.stored_result if resuming else store.read_stored)(
            config, experiment, results)
    except DamagedResult:
        return "damaged", None
    if stored is not None:
        return "done" if store.other_data(stored) is None else "other data", stored
    holder = claims.read_claim(folder / claims.CLAIM_FILE)
    stale = holders.stale_after_default() if stale_after is None else stale_after
    if holder is not None and not holders.is_stale(holder, stale):
        return "running", None
    if (folder / store.FAILURE_FILE).is_file():
        return "failed", None
    return "missing", None


def _why_nothing(counts: dict[str, int]) -> str:
    """Why no run of a launch is left to submit, from its :func:`state_of` counts.

    >>> _why_nothing({"done": 5})
    'finished, 5 of 5 runs stored'
    >>> _why_nothing({"done": 3, "running": 1, "failed": 1})
    '3 stored, 1 running (claimed by a live worker), 1 failed (--retry-failed retries them)'
    >>> _why_nothing({})
    'the notebooks plan no runs at this profile'
    """
    if not counts:
        return "the notebooks plan no runs at this profile"
    if set(counts) == {"done"}:
        return f"finished, {counts['done']} of {counts['done']} runs stored"
    said = {"done": "stored", "running": "running (claimed by a live worker)",
            "failed": "failed (--retry-failed retries them)"}
    return ", ".join(f"{counts[state]} {text}" for state, text in said.items() if state in counts)


def _slurm_parameters(args) -> dict:
    extra = {}
    for item in args.slurm_param:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"--slurm-param {item!r} is not allowed; give KEY=VALUE")
        extra[key] = value
    parameters = {
        "timeout_min": args.time_min, "slurm_array_parallelism": args.array_parallelism,
        "name": "synflow", "slurm_additional_parameters": extra,
    }
    optional = {"slurm_partition": args.partition, "slurm_gpus_per_task": args.gpus_per_task,
                "cpus_per_task": args.cpus_per_task, "mem_gb": args.mem_gb}
    parameters.update({k: v for k, v in optional.items() if v is not None})
    return parameters


def launch(args) -> int:
    """``python -m synflow launch``: submit the missing runs; see the module docstring.
    Returns the exit status (1 when a run failed). Bad arguments raise ValueError
    before anything is submitted.

    >>> import argparse, tempfile
    >>> launch(argparse.Namespace(results=tempfile.mkdtemp(), executor="slurm", slurm_param=["x"]))
    Traceback (most recent call last):
    ValueError: --slurm-param 'x' is not allowed; give KEY=VALUE
    """
    results = str(store.results_root(args.results))
    slurm = _slurm_parameters(args) if args.executor == "slurm" else None  # checked first
    if args.stale_after is not None:
        os.environ[holders.STALE_VARIABLE] = str(args.stale_after)  # inherited by workers
    planned = planned_runs(args.notebooks, args.profile, args.set)
    todo, counts = [], {}
    for experiment, config in planned:
        state = state_of(config, experiment, results, stale_after=args.stale_after,
                         resuming=True)
        counts[state] = counts.get(state, 0) + 1
        if state == "missing" or (state == "failed" and args.retry_failed):
            todo.append((experiment, asdict(config)))
    print(f"{len(planned)} runs of {', '.join(args.notebooks)} at profile {args.profile} in "
          f"{results}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    precisions = sorted({config.train_precision for _, config in planned})
    print(f"training precision {', '.join(precisions)}, decided on this machine (its own "
          f"'auto' unless ${VARIABLE} says otherwise)")
    if counts.get("other data"):
        raise ValueError(f"{counts['other data']} stored runs were trained on another copy of "
                         "their dataset than the data root holds ($SYNFLOW_DATA; `status` "
                         "names them): the notebooks would not reuse them. Point the data "
                         "root at that copy, or give another results folder. Nothing was "
                         "submitted")
    if not todo:
        print(f"nothing to submit: {_why_nothing(counts)}")
        return 0
    _check_ready(results, todo)
    worker = Worker(results, args.retry_failed, args.checkpoint_every, args.stale_after,
                    threads=None, processes=getattr(args, "runs_per_gpu", 1))
    if args.executor == "inline":
        print(f"running {len(todo)} runs in this process")
        return _report([worker(todo)], tasks=False)
    logs = Path(args.logs or Path(results) / "_submitit").expanduser().resolve()
    if args.executor == "local":
        # no "%j" folder level: submitit's local controller creates the folder it is given
        # literally, which left an empty "%j" beside the job folders; one flat folder instead
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=args.time_min)
        worker.threads = max(1, (os.cpu_count() or 1) // args.workers)
        worker.processes = 1  # --workers already sets the processes here
        # every worker walks the whole list from its own offset; claims share the work
        step = max(1, len(todo) // args.workers)
        lists = [todo[i * step:] + todo[:i * step] for i in range(args.workers)]
        with executor.batch():
            jobs = [executor.submit(worker, runs) for runs in lists]
    else:
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise ValueError(f"--executor slurm needs Slurm's {' and '.join(missing)} on PATH; "
                             "not found (use --executor local or inline on a machine without "
                             "Slurm)")
        executor = submitit.AutoExecutor(folder=logs / "%j", cluster="slurm")
        executor.update_parameters(**slurm)
        worker.threads = args.cpus_per_task
        size = args.runs_per_task
        chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
        try:
            jobs = executor.map_array(worker, chunks)
        except submitit.core.utils.FailedJobError as error:
            last = (str(error).strip().splitlines() or [""])[-1]
            raise ValueError(
                f"sbatch could not submit the job array ({last.strip()}); is a Slurm "
                "controller reachable from this machine (try `sinfo`)? Nothing was submitted"
            ) from None
    ids = sorted({job.job_id.split("_")[0] for job in jobs})
    print(f"submitted {len(todo)} runs as {len(jobs)} {args.executor} task(s), job id(s) "
          f"{', '.join(ids)}; logs in {logs}")
    if not args.wait:
        return 0
    try:
        return _report(_wait(jobs, slurm=args.executor == "slurm"))
    except KeyboardInterrupt:  # Ctrl-C stops the waiting; Slurm's tasks go on
        follow = status_command(args.notebooks, args.profile, results, args.set, args.stale_after)
        if args.executor == "slurm":
            print(f"\nstopped waiting; the {len(jobs)} Slurm task(s) keep running: `{follow}` "
                  f"follows them, `scancel {' '.join(ids)}` ends them")
        else:  # a terminal's Ctrl-C reaches the local workers too (one process group)
            print(f"\nstopped waiting; local workers that got the Ctrl-C too have stopped "
                  f"(a run left half-done resumes from its checkpoint at the next launch); "
                  f"`{follow}` shows what is stored")
        return 130


def _check_ready(results: str, todo: list) -> None:
    """ValueError, before anything is submitted, when every run would fail at its start:
    an experiment folder that cannot be written, or a dataset that is not under the data
    root (downloaded here first where torchvision can: once, not by every worker)."""
    from ..data.datasets import DatasetNotFoundError, locate

    for dataset in sorted({config["dataset"] for _, config in todo}):
        try:
            locate(dataset)
        except DatasetNotFoundError as error:
            raise ValueError(f"{error}\nNothing was submitted") from None
    for experiment in sorted({experiment for experiment, _ in todo}):
        folder = Path(results) / experiment
        existing = next(p for p in (folder, *folder.parents) if p.exists())  # made there
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as error:
            raise ValueError(f"the results folder {folder} cannot be written ({error}); give a "
                             "writable one (--results or $SYNFLOW_RESULTS). Nothing was "
                             "submitted") from None


def _slurm_queue(jobs) -> set[str] | None:
    """``JOB_TASK`` ids of ``jobs`` that Slurm still lists (pending, running, completing,
    requeued), or None if squeue cannot tell."""
    ids = sorted({job.job_id.split("_")[0] for job in jobs})
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(ids)],
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:  # every id already purged: "Invalid job id specified"
        return set() if "invalid job id" in listed.stderr.lower() else None
    return set(listed.stdout.split())


def _wait(jobs, *, slurm: bool = False, poll: float = 2.0) -> list[dict]:
    """Each job's summary once every job ended. A task that died (killed, cancelled,
    timed out) gives a ``failed`` line. On Slurm a task that left the queue without a
    result counts as ended even when submitit cannot tell (no ``sacct``: a cluster
    without accounting, where submitit would wait for ever)."""
    summaries, pending = {}, list(jobs)
    while pending:
        queued = _slurm_queue(pending) if slurm else None
        for job in list(pending):
            if queued is not None and job.job_id not in queued \
                    and not job.paths.result_pickle.exists():
                reason = (f"task {job.job_id}: left the Slurm queue without a result "
                          f"(cancelled, killed or out of memory); log: {job.paths.stdout}")
                summaries[job.job_id] = {"failed": [reason]}
            elif job.done():
                try:
                    summaries[job.job_id] = job.result()
                except Exception as error:  # noqa: BLE001  (the task died: killed, cancelled)
                    last = (str(error).strip().splitlines() or [""])[-1]
                    summaries[job.job_id] = {
                        "failed": [f"task {job.job_id}: {type(error).__name__}: {last}"]}
            else:
                continue
            pending.remove(job)
        if pending:
            time.sleep(poll)
    return [summaries[job.job_id] for job in jobs]


def _report(summaries: list[dict], *, tasks: bool = True) -> int:
    total = {key: sum(s.get(key, 0) for s in summaries)
             for key in ("ran", "stored", "busy", "failed before")}
    failed = [line for s in summaries for line in s.get("failed", [])]
    # every local task walks the whole list: the runs another task stored or held are
    # skipped, so "ran" (and not a sum of these counts) is the number of runs trained
    print(f"finished: {total['ran']} ran, {len(failed)} failed; skipped by a task because "
          f"already stored {total['stored']}, claimed by another task {total['busy']}, "
          f"failed before {total['failed before']}")
    startups = [s["startup"] for s in summaries if s.get("startup") is not None]
    if tasks and startups:
        print(f"task start-up (process start to the first run): mean "
              f"{sum(startups) / len(startups):.2f} s, max {max(startups):.2f} s over "
              f"{len(startups)} task(s)")
    for line in failed:
        print(f"  FAILED {line}")
    return 1 if failed else 0
