"""Progress bars that CI and logs can turn off ($SYNFLOW_QUIET)."""

from __future__ import annotations

import os


def quiet() -> bool:
    """True when $SYNFLOW_QUIET is set to anything but "" or "0" (CI, logs).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_QUIET": "0"}):
    ...     print(quiet())
    False
    """
    return os.environ.get("SYNFLOW_QUIET", "") not in ("", "0")


def progress(iterable=None, **kwargs):
    """A ``tqdm.auto`` progress bar over ``iterable`` (``kwargs`` go to tqdm), disabled
    when $SYNFLOW_QUIET=1 and not left on screen once done.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SYNFLOW_QUIET": "1"}):
    ...     bar = progress(range(3), desc="runs")
    >>> bar.disable, sum(bar)
    (True, 3)
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


PROGRESS_LOG_VARIABLE = "SYNFLOW_PROGRESS_LOG"


def log_line(line: str) -> None:
    """Append ``line`` to the file $SYNFLOW_PROGRESS_LOG names; nothing when it is unset
    (``tools/run_notebooks.py`` shows these lines while a notebook runs headless).

    >>> import os, tempfile
    >>> from unittest import mock
    >>> log = os.path.join(tempfile.mkdtemp(), "progress.log")
    >>> with mock.patch.dict(os.environ, {PROGRESS_LOG_VARIABLE: log}):
    ...     log_line("fig6: run 1/2 done")
    >>> print(open(log).read(), end="")
    fig6: run 1/2 done
    """
    log = os.environ.get(PROGRESS_LOG_VARIABLE)
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(line + "\n")
