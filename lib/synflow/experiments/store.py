"""A resumable store of runs: prune, train, record -- once per config.

A run is a frozen :class:`RunConfig`. Its results live in
``<results>/<experiment>/<readable name>-<short hash of the config>/run.json``
(``<results>`` is :func:`synflow.utils.paths.results_dir`, $SYNFLOW_RESULTS), one
JSON file written atomically by :class:`synflow.experiments.results.RunResult` (its one
owner), so a file that exists is complete: a sweep killed half-way and started again
redoes only the runs without one. No pickles. While a run works, its folder holds a claim
(``claim.json``, :mod:`synflow.experiments.claims`: one worker per run) and a training
checkpoint (``checkpoint.pt``, :mod:`synflow.experiments.execution`); a run that raised
leaves ``failed.json``; a damaged or foreign ``run.json`` is moved aside (named in a
warning), never deleted and never trained over silently.

>>> from synflow.experiments.store import run_dir
>>> from synflow.experiments.runconfig import RunConfig
>>> run_dir(RunConfig("mlp", "mnist", train_precision="float32"), "demo", "/tmp/results").name
'mlp-w1-mnist-dense-s0-67f28a79fd'

    result = run_or_load(config, "fig6")        # runs once, then loads (a RunResult)
    df = frame("fig6")                          # one row per stored run
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from ..core.files import remove_leftovers
from ..core.stack import outside_stacklevel
from ..data.images import source_label
from ..utils.paths import data_root
from ..utils.progress import log_line, progress
from . import claims, execution, holders, parallel
from .folders import FAILURE_FILE, failure, record_failure, results_root, run_dir  # noqa: F401
from .frames import frame  # noqa: F401  (re-exported: store.frame; results_root too)
from .results import RESULT_FILE, DamagedResult, RunResult
from .runconfig import RunConfig
from .runnable import check_runnable

CHECKPOINT_FILE = "checkpoint.pt"


class RunFailed(RuntimeError):
    """The run failed before (its failure record says why); not retried unless asked.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> _ = record_failure(run_dir(config, "demo", results), config, ValueError("boom"))
    >>> run_or_load(config, "demo", results=results, retry_failed=False)
    Traceback (most recent call last):
    synflow.experiments.store.RunFailed: mlp-...-s0-... failed before (ValueError: boom; ...
    """


class RunBusy(RuntimeError):
    """Another worker holds a fresh claim on the run.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> claim = claims.claim_run(run_dir(config, "demo", results))
    >>> run_or_load(config, "demo", results=results)
    Traceback (most recent call last):
    synflow.experiments.store.RunBusy: mlp-...-s0-... is being run by another worker (host ...
    >>> claim.release()
    """


def _move_aside(path: Path, why: str) -> Path | None:
    """Rename ``path`` to ``<name>.damaged-<time>`` (never deleted) and warn; None if
    another worker moved it first; PermissionError, saying why, in a read-only store."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as error:  # EACCES, EPERM; EROFS on a read-only mount
        raise PermissionError(f"{why}; it cannot be moved aside to run again: "
                              f"{error.strerror or error} in {path.parent} (running needs "
                              "write access to the results folder; `status` only reads)") from error
    warnings.warn(f"{why}; moved it to {target} and treating the run as missing",
                  stacklevel=outside_stacklevel())
    return target


def read_stored(config: RunConfig, experiment: str, results=None) -> RunResult | None:
    """``config``'s stored result, or None when it has none; read only. Raises
    :class:`DamagedResult` naming the file when its ``run.json`` is damaged (not JSON,
    another format, a required key missing: :meth:`RunResult.read`) or holds another
    run's config. The one test of "done" that ``status``, ``launch`` and
    :func:`run_or_load` share.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> read_stored(config, "demo", results) is None
    True
    >>> stored = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [], {})
    >>> _ = stored.write(run_dir(config, "demo", results) / RESULT_FILE)
    >>> read_stored(config, "demo", results) == stored
    True
    """
    path = run_dir(config, experiment, results) / RESULT_FILE
    if not path.is_file():
        return None
    stored = RunResult.read(path)
    if stored.config != config:
        raise DamagedResult(f"{path} holds a different config ({stored.config.name()}, not "
                            f"{config.name()})")
    return stored


def stored_result(config: RunConfig, experiment: str, results=None) -> RunResult | None:
    """``config``'s stored result, or None when it has none. A damaged ``run.json``, or
    one holding another config (:func:`read_stored`), is moved aside (:func:`_move_aside`:
    renamed, never deleted, named in a warning) and reads as none.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> path = run_dir(config, "demo", results) / RESULT_FILE
    >>> path.parent.mkdir(parents=True)
    >>> _ = path.write_text("{")  # cut short
    >>> with warnings.catch_warnings(record=True):
    ...     stored_result(config, "demo", results) is None
    True
    >>> [p.name.split("-")[0] for p in path.parent.iterdir()]
    ['run.json.damaged']
    """
    try:
        return read_stored(config, experiment, results)
    except DamagedResult as error:
        _move_aside(run_dir(config, experiment, results) / RESULT_FILE, str(error))
        return None


def run_or_load(
    config: RunConfig, experiment: str, *, device=None, root=None, cache=None, results=None,
    retry_failed: bool = True, checkpoint_every: int = 1, stale_after: float | None = None,
) -> RunResult:
    """The stored result of ``config`` in ``experiment``, or run it and store it.

    The result is a :class:`synflow.experiments.results.RunResult`: ``config``,
    ``training`` (the hyperparameters used), ``metrics`` (``best_top1``/``best_top5``: the
    epoch with the highest top-1, the paper's number; ``final_top1``/``final_top5``: after
    the last epoch; ``compression_actual``, ``kept``, ``empty_layers`` count, times),
    ``history`` (per epoch), ``layers`` (kept/total per prunable layer), ``empty_layers``
    (names) and ``environment`` (device, host, duration in s).

    Running: the run is claimed (:mod:`synflow.experiments.claims`; ``stale_after``
    seconds without a heartbeat let another worker take it over), executed by
    :func:`synflow.experiments.execution.execute` with a training checkpoint in its folder
    every ``checkpoint_every`` epochs (resumed from if present, removed once the result is
    stored) and its ``run.json`` written exactly once. A damaged ``run.json`` is moved
    aside and the run redone. A run that can only fail (no such dataset, compression > N:
    :func:`check_runnable`) is refused before anything is written; if the run raises, a
    failure record ``failed.json`` is written and the error re-raised; a run with a record
    raises RunFailed unless ``retry_failed`` (the default here; the launcher's is False).
    Raises RunBusy if another worker holds the run.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> stored = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [], {})
    >>> _ = stored.write(run_dir(config, "demo", results) / RESULT_FILE)
    >>> run_or_load(config, "demo", results=results) == stored  # loaded, not run again
    True
    """
    return run_unless_stored(
        config, experiment, device=device, root=root, cache=cache, results=results,
        retry_failed=retry_failed, checkpoint_every=checkpoint_every, stale_after=stale_after,
    )[0]


def run_unless_stored(
    config: RunConfig, experiment: str, *, device=None, root=None, cache=None, results=None,
    retry_failed: bool = True, checkpoint_every: int = 1, stale_after: float | None = None,
) -> tuple[RunResult, bool]:
    """:func:`run_or_load` that also says whether this call ran the run: ``(result,
    True)`` when it executed and stored it, ``(result, False)`` when it loaded it (stored
    before, or by another worker while this one was claiming it). Workers count with it.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> _ = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [],
    ...               {}).write(run_dir(config, "demo", results) / RESULT_FILE)
    >>> run_unless_stored(config, "demo", results=results)[1]  # loaded: not run here
    False
    """
    folder = run_dir(config, experiment, results)
    stored = stored_result(config, experiment, results)
    if stored is not None:
        return _same_data(stored, root, folder), False
    failed = failure(config, experiment, results)
    if failed is not None and not retry_failed:
        raise RunFailed(
            f"{config.name()} failed before ({failed.get('error')}; log: {failed.get('log')}; "
            f"record: {folder / FAILURE_FILE}); retry it with retry_failed=True / --retry-failed"
        )
    check_runnable(config, root)  # before its folder exists: a refusal leaves nothing
    claim = claims.claim_run(folder, stale_after=stale_after)
    if claim is None:
        holder = claims.read_claim(folder / claims.CLAIM_FILE) or {}
        raise RunBusy(
            f"{config.name()} is being run by another worker (host {holder.get('host')}, "
            f"pid {holder.get('pid')}, job {holder.get('job')}, last heartbeat "
            f"{holders.heartbeat(holder)}): {folder / claims.CLAIM_FILE}"
        )
    with claim:
        stored = stored_result(config, experiment, results)  # finished while we claimed
        if stored is not None:
            return _same_data(stored, root, folder), False
        checkpoint = folder / CHECKPOINT_FILE
        try:
            result = execution.execute(
                config, device=device, root=root, cache=cache, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every, on_checkpoint=claim.check,
            )
            claim.check()
        except claims.ClaimLost:
            raise
        except Exception as error:
            record_failure(folder, config, error)
            raise
        result.write(folder / RESULT_FILE, exclusive=True)
        (folder / FAILURE_FILE).unlink(missing_ok=True)
        checkpoint.unlink(missing_ok=True)
        for written in (checkpoint, folder / RESULT_FILE):  # a killed worker's half-writes
            remove_leftovers(written)
    return RunResult.read(folder / RESULT_FILE), True  # as every later load gives it


class OtherDataError(ValueError):
    """A stored run trained on another copy of its dataset than this process reads (exact
    files against a JPEG folder, say): not reused.

    >>> issubclass(OtherDataError, ValueError)
    True
    """


def other_data(stored: RunResult, root=None) -> str | None:
    """The copy of ``stored``'s dataset under this data root (``source_label``) when the
    run records another, else None (the same copy; no record: stored before; the data not
    here: results read elsewhere).

    >>> other_data(RunResult(RunConfig("mlp", "mnist"), {}, {}, [], [], [], {})) is None
    True
    """
    recorded = stored.environment.get("data")
    here = source_label(stored.config.dataset, root) if recorded is not None else None
    return None if here is None or here == recorded else here


def _same_data(stored: RunResult, root, folder) -> RunResult:
    """``stored``, unless it was trained on another copy of its dataset
    (:func:`other_data`): then :class:`OtherDataError` naming both."""
    here = other_data(stored, root)
    if here is None:
        return stored
    recorded = stored.environment["data"]
    raise OtherDataError(
        f"{stored.config.name()} was trained on {stored.config.dataset} from '{recorded}', "
        f"and this process reads it from '{here}' under {data_root(root)}: the stored run is "
        f"not reused (another copy gives other results). Point the data root "
        f"($SYNFLOW_DATA) at the copy the run used, or give another results folder "
        f"({folder.parent.parent})")


def sweep(configs, experiment: str, *, workers: int | None = None, **kwargs
          ) -> list[RunResult]:
    """``run_or_load`` every config in turn, with a progress bar; stored runs are
    loaded, so an interrupted sweep restarts where it stopped.

    ``workers`` (default $SYNFLOW_WORKERS, else the CPUs when the runs train on the CPU,
    else 1; :func:`synflow.experiments.parallel.count_workers`): with more than one, the
    runs without a result first run side by side in that many worker processes (one
    thread each, as in this process: :func:`synflow.experiments.execution.execute`); a
    run that failed there runs again here, so its error shows here.
    When $SYNFLOW_PROGRESS_LOG names a file, one line per run is appended to it
    (``tools/run_notebooks.py`` prints these while a notebook runs headless).

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> stored = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [], {})
    >>> _ = stored.write(run_dir(config, "demo", results) / RESULT_FILE)
    >>> sweep([config], "demo", results=results, workers=1) == [stored]
    True
    """
    configs = list(configs)
    device = kwargs.get("device") or execution.training_loop.default_device()
    workers = parallel.count_workers(workers, device)
    todo = [(number, len(configs), config, experiment, kwargs)
            for number, config in enumerate(configs, start=1)
            if stored_result(config, experiment, kwargs.get("results")) is None]
    done = set()
    if workers > 1 and len(todo) > 1:
        done = set(parallel.side_by_side(_worker_run, todo, workers)) - {None}
    results = []
    for number, config in enumerate(progress(configs, desc=experiment, unit="run"), start=1):
        start = time.perf_counter()
        results.append(run_or_load(config, experiment, **kwargs))
        if number not in done:
            _log_run(experiment, number, len(configs), config, time.perf_counter() - start)
    return results


def _log_run(experiment, number, count, config, seconds) -> None:
    log_line(f"{experiment}: run {number}/{count} {config.name()} ({seconds:.1f} s)")


def _worker_run(job) -> int | None:
    """One run of a sweep in a worker process: its number, or None if it did not end
    stored (it failed: recorded; or another worker holds it)."""
    number, count, config, experiment, kwargs = job
    start = time.perf_counter()
    try:
        run_or_load(config, experiment, **kwargs)
    except Exception:  # noqa: BLE001  (recorded in failed.json; the sweep runs it again)
        return None
    _log_run(experiment, number, count, config, time.perf_counter() - start)
    return number
