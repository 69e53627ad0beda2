"""Who holds a claim (:mod:`synflow.experiments.claims`) and whether it is still alive.

This worker's identity as a claim records it (its Slurm job, :func:`job_id`; its log,
:func:`log_path`), how long a claim may go without a heartbeat
(:func:`stale_after_default`), whether a holder may be taken over (:func:`is_stale`:
no heartbeat for that long, or its worker known to be gone) and its last heartbeat in
words (:func:`heartbeat`, flagging clock skew). See the claims module for the clocks.

>>> is_stale({"age": 601.0}, stale_after=600), heartbeat({"age": 12.3})
(True, '12 s ago')
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

STALE_AFTER = 600.0  # seconds without a heartbeat after which a claim is taken over
STALE_VARIABLE = "SYNFLOW_CLAIM_STALE_S"


def stale_after_default() -> float:
    """$SYNFLOW_CLAIM_STALE_S if set (seconds > 0), else 600. Raises ValueError naming
    a value that is not a number of seconds > 0.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {STALE_VARIABLE: "60"}):
    ...     stale_after_default()
    60.0
    """
    value = os.environ.get(STALE_VARIABLE)
    if not value:
        return STALE_AFTER
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{STALE_VARIABLE}={value!r} is not allowed; give seconds > 0")
    return seconds


def job_id() -> str | None:
    """The Slurm job (and array task) this process runs in, or None.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3"}):
    ...     job_id()
    '7_3'
    """
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


def log_path() -> str | None:
    """Where this worker's output goes, if a scheduler says so (submitit, Slurm), else None.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SLURM_STDOUT": "/logs/7_3.out"}):
    ...     log_path()
    '/logs/7_3.out'
    """
    if os.environ.get("SUBMITIT_EXECUTOR") and os.environ.get("SUBMITIT_FOLDER"):
        import submitit

        try:
            return str(submitit.JobEnvironment().paths.stdout)
        except (KeyError, RuntimeError, ValueError):  # not inside a submitit job after all
            pass
    return os.environ.get("SLURM_STDOUT") or None


SKEW_TOLERANCE = 2.0  # seconds a heartbeat may lie in the future before it is called skew


# squeue states of a job that will not run again (it may linger a while after it ended)
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}


def _holder_gone(holder: dict) -> bool:
    """Whether the claim's worker is known to be dead: its Slurm job has ended (per
    ``squeue``), or it ran on this host (no job) and its process no longer exists."""
    job = holder.get("job")
    if job:
        if not shutil.which("squeue"):
            return False
        try:
            answer = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"],
                                    check=False, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if answer.returncode != 0:
            return "invalid job id" in answer.stderr.lower()
        return set(answer.stdout.split()) <= ENDED
    if holder.get("host") == platform.node() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def is_stale(holder: dict | None, stale_after: float) -> bool:
    """Whether a claim (``holder``: :func:`synflow.experiments.claims.read_claim`'s dict,
    ``age`` in seconds) may be taken over: no heartbeat for ``stale_after`` seconds, a
    heartbeat more than ``stale_after`` in the future (clock skew: see
    :mod:`synflow.experiments.claims`), its worker is gone (:func:`_holder_gone`), or it is
    this Slurm task's own claim from before a requeue. None (released) is not stale.

    >>> is_stale({"age": 5.0}, 600), is_stale({"age": -3600.0}, 600), is_stale(None, 600)
    (False, True, False)
    """
    if holder is None:  # released: claim it by creating it, not by taking it over
        return False
    mine = job_id() is not None and holder.get("job") == job_id()  # a requeued task
    return abs(holder["age"]) > stale_after or mine or _holder_gone(holder)


def heartbeat(holder: dict) -> str:
    """The claim's last heartbeat in words: "12 s ago", or "3598 s in the future (clock
    skew ...)" for one more than ``SKEW_TOLERANCE`` ahead of this machine's clock.

    >>> heartbeat({"age": 12.3}), heartbeat({"age": -1.0})
    ('12 s ago', '0 s ago')
    >>> heartbeat({"age": -3598.0})
    "3598 s in the future (clock skew: this machine's clock is behind the claim writer's or the file server's)"
    """
    age = holder.get("age", float("nan"))
    if age < -SKEW_TOLERANCE:
        return (f"{-age:.0f} s in the future (clock skew: this machine's clock is behind the "
                "claim writer's or the file server's)")
    return f"{max(age, 0.0):.0f} s ago"
