"""Claim files: at most one worker executes a run, on one machine or on many.

A worker claims a run by creating ``<run folder>/claim.json`` with
``O_CREAT | O_EXCL`` (atomic, also on NFS v3+), holding its host, pid, Slurm/submitit
job id and a random token. A heartbeat thread touches the file every
``stale_after / 6`` seconds while the run works. A claim whose file was not touched
for ``stale_after`` seconds (its worker died: killed, preempted, node lost), or whose
worker is known to be gone (its Slurm job ended per ``squeue``, or its process on this
host no longer exists), is taken over: under a short lock file (itself created with O_EXCL) the staleness is checked
again and a new claim is renamed over the old one, so of two workers that find the
same stale claim exactly one wins. A requeued Slurm task (same job id) may take
back its own claim at once. Judging a holder is :mod:`synflow.experiments.holders`'s job.

Clocks. A claim's age is "now" minus its file's mtime. A worker deciding whether to take
a claim over reads "now" from the file system itself (:func:`fs_now`: the mtime of a
file it creates beside the claim), so on a shared file system that stamps times itself
(NFS) a live claim is never taken over because the nodes' clocks differ. Where the
writers' clocks stamp the files (a local disk; Lustre), a dead worker's clock may have
been ahead: a heartbeat more than ``stale_after`` in the future counts as stale (no live
heartbeat explains it), so whatever the clocks, a dead worker's claim blocks its run for
at most ``2 * stale_after`` in all. ``status`` (read only, this machine's clock) flags a
heartbeat in the future as clock skew.

    claim = claim_run(folder, stale_after=600)   # a Claim, or None if someone works on it
    with claim:                                  # heartbeat on; released at the end
        ...
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from ..core.files import atomic_write
from .holders import is_stale, job_id, log_path, stale_after_default

CLAIM_FILE = "claim.json"


class ClaimLost(RuntimeError):
    """This worker's claim was taken over by another one (its heartbeat stalled).

    >>> claim = claim_run(Path(tempfile.mkdtemp()))
    >>> claim.path.unlink()  # as when another worker takes the run over
    >>> claim.check()
    Traceback (most recent call last):
    synflow.experiments.claims.ClaimLost: the claim .../claim.json was taken over by another worker
    """


def fs_now(folder: Path) -> float:
    """The file system's clock at ``folder``: the mtime of a file created there (and
    removed at once); this machine's clock where nothing can be created there. Seconds
    since the epoch, as ``time.time()``.

    >>> abs(fs_now(Path(tempfile.mkdtemp())) - time.time()) < 60  # a local disk
    True
    """
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".clock-")
    except OSError:
        return time.time()
    try:
        return os.fstat(handle).st_mtime
    finally:
        os.close(handle)
        Path(name).unlink(missing_ok=True)


def read_claim(path: Path, now: float | None = None) -> dict | None:
    """The claim's content plus ``age`` (seconds from its last heartbeat to ``now``,
    default this machine's clock; negative: a heartbeat in the future), or None when
    there is no claim file.

    >>> folder = Path(tempfile.mkdtemp())
    >>> read_claim(folder / CLAIM_FILE) is None
    True
    >>> with claim_run(folder):
    ...     sorted(read_claim(folder / CLAIM_FILE))
    ['age', 'host', 'job', 'log', 'pid', 'since', 'token']
    """
    try:
        with open(path) as handle:
            content = handle.read()
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(content)
    except json.JSONDecodeError:
        holder = {}  # being written right now, or damaged: judged by its age only
    return {**holder, "age": age} if isinstance(holder, dict) else {"age": age}


@dataclass
class Claim:
    """A held claim on a run folder; a context manager that runs the heartbeat (a
    thread touching the file every ``interval`` seconds) and releases the claim at exit.

    >>> folder = Path(tempfile.mkdtemp())
    >>> with claim_run(folder) as claim:
    ...     claim.owned()
    True
    >>> (folder / CLAIM_FILE).exists()
    False
    """

    path: Path
    token: str
    interval: float
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def owned(self) -> bool:
        holder = read_claim(self.path)
        return holder is not None and holder.get("token") == self.token

    def beat(self) -> None:
        """Touch the claim if it is still ours; otherwise mark it lost."""
        if self.owned():
            try:
                os.utime(self.path)
                return
            except FileNotFoundError:
                pass
        self.lost.set()

    def check(self) -> None:
        """Raise ClaimLost if another worker took this run over."""
        self.beat()
        if self.lost.is_set():
            raise ClaimLost(f"the claim {self.path} was taken over by another worker")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True, name="claim-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.owned():
            self.path.unlink(missing_ok=True)


def _claim_content(token: str) -> bytes:
    holder = {"host": platform.node(), "pid": os.getpid(), "job": job_id(), "token": token,
              "log": log_path(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return json.dumps(holder).encode()


def claim_run(folder: Path, *, stale_after: float | None = None) -> Claim | None:
    """Claim the run in ``folder``: a :class:`Claim`, or None when another worker
    holds a fresh claim. ``stale_after`` (seconds, default :func:`stale_after_default`)
    is how long a claim may go without a heartbeat before it is taken over. Raises
    ValueError for ``stale_after`` <= 0.

    >>> folder = Path(tempfile.mkdtemp())
    >>> claim = claim_run(folder, stale_after=600)
    >>> claim_run(folder) is None  # held, heartbeat fresh
    True
    >>> claim.release()
    """
    stale_after = stale_after_default() if stale_after is None else float(stale_after)
    if not stale_after > 0:
        raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLAIM_FILE
    token = secrets.token_hex(8)
    claim = Claim(path, token, interval=min(30.0, stale_after / 6))
    for _ in range(100):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if path.exists():  # else: released just now; try to create it again
                return claim if _take_over(path, token, stale_after) else None
    else:
        return None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(_claim_content(token))
        handle.flush()
        os.fsync(handle.fileno())
    return claim


def _take_over(path: Path, token: str, stale_after: float) -> bool:
    """Replace a stale claim by ours; exactly one of several workers trying succeeds.
    Ages are read on the file system's clock (:func:`fs_now`)."""
    if not is_stale(read_claim(path, fs_now(path.parent)), stale_after):
        return False
    lock = path.with_name(f".{path.name}.takeover")
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:  # a taker that died inside the lock leaves it; it is tiny and short-lived
            if abs(fs_now(path.parent) - os.stat(lock).st_mtime) > stale_after:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    os.close(descriptor)
    try:
        if not is_stale(read_claim(path, fs_now(path.parent)), stale_after):  # someone was faster
            return False
        atomic_write(path, lambda file: file.write(_claim_content(token)))
        return True
    finally:
        lock.unlink(missing_ok=True)
