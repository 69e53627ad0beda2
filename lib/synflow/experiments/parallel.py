"""Runs side by side on one machine: worker processes, one thread each.

A CPU run of the store trains with one thread
(:data:`synflow.training.precision.RUN_THREADS`, so its numbers do not depend on the
caller's thread count); :func:`side_by_side` keeps every CPU busy by running several
in spawned worker processes. Used by :func:`synflow.experiments.store.sweep`.

>>> count_workers(3, "cpu")
3
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

WORKERS_VARIABLE = "SYNFLOW_WORKERS"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it).

    >>> available_cpus() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def count_workers(workers: int | None, device) -> int:
    """``workers``, else $SYNFLOW_WORKERS, else :func:`available_cpus` when the runs
    train on the CPU (``device`` "cpu..."), else 1. Raises ValueError naming a value
    that is not an integer >= 1.

    >>> count_workers(0, "cpu")
    Traceback (most recent call last):
    ValueError: workers 0 is not allowed; give an integer >= 1
    """
    where = "workers"
    if workers is None:
        text = os.environ.get(WORKERS_VARIABLE, "").strip()
        if text:
            where, workers = f"${WORKERS_VARIABLE}", text
            try:
                workers = int(text)
            except ValueError:
                pass
        else:
            workers = available_cpus() if str(device).startswith("cpu") else 1
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ValueError(f"{where} {workers!r} is not allowed; give an integer >= 1")
    return workers


def side_by_side(function: Callable, jobs: Iterable, workers: int) -> list:
    """``[function(job) for job in jobs]``, computed in ``workers`` spawned processes
    (``function`` must be importable, e.g. a module-level function). On an interrupt
    or an error, the calls under way finish and no more start, then it re-raises.

    >>> side_by_side(abs, [], workers=4)  # with jobs, e.g. [-1, -2]: [1, 2] (seconds: spawning)
    []
    """
    jobs = list(jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, min(workers, len(jobs))), mp_context=context) as pool:
        try:
            return list(pool.map(function, jobs))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
