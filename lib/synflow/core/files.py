"""The one atomic-write helper: every file the library writes (pruned models, training
checkpoints, run results, claims, the decoded-image cache) goes through :func:`atomic_write`.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    """The process's umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO], object], *, text: bool = False,
                 exclusive: bool = False) -> Path:
    """Write ``path`` all or nothing: ``write(handle)`` fills a temporary file in the same
    folder, which is flushed to disk and then renamed over ``path``. Readers see the old
    file or the whole new one; an interrupted or failed write leaves no file behind (the
    temporary one is removed) and ``path`` as it was. The file gets the permissions of
    any new file under the process's umask (e.g. 0644), not the temporary file's 0600, so
    results on a shared filesystem stay readable by the group.

    Args:
        path: the file to write; its folder is created if missing.
        write: called once with the open temporary file (binary, or text in UTF-8 when
            ``text``); e.g. ``lambda f: torch.save(payload, f)``.
        exclusive: never replace an existing ``path`` (the temporary file is hard-linked
            to it, which fails if it exists), so of several writers exactly one succeeds.

    Returns the path. Raises FileExistsError when ``exclusive`` and ``path`` exists, and
    whatever ``write`` or the file system raises (OSError: read-only folder, full disk).

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "run.json"
    >>> atomic_write(target, lambda f: json.dump({"a": 1}, f), text=True).read_text()
    '{"a": 1}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as file:
            write(file)
            file.flush()
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            os.fsync(file.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def remove_leftovers(path: str | os.PathLike) -> int:
    """Delete the temporary files that :func:`atomic_write` calls on ``path`` left behind
    when their process was killed mid-write (SIGKILL, a cancelled Slurm job): the
    ``.{name}.*.tmp`` files beside it. Call it only when no process can be writing
    ``path`` (e.g. under the run's claim, once its result is stored). Returns how many
    were deleted.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half")
    >>> remove_leftovers(folder / "checkpoint.pt"), sorted(folder.iterdir())
    (1, [])
    """
    path = Path(path)
    leftovers = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return len(leftovers)
