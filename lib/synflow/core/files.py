"""The one atomic-write helper: every file the library writes (pruned models, training
checkpoints, run results, claims, the decoded-image cache) goes through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO], object], *, text: bool = False,
                 exclusive: bool = False) -> Path:
    """Write ``path`` all or nothing: ``write(handle)`` fills a temporary file in the same
    folder, which is flushed to disk and then renamed over ``path``. Readers see the old
    file or the whole new one; an interrupted or failed write leaves no file behind (the
    temporary one is removed) and ``path`` as it was.

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
            os.fsync(file.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path
