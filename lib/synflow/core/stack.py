"""Where the library's warnings point: at the first frame outside the synflow package, so
that a warning names the user's line whichever public function, analysis or experiment
issued it, and however deep inside the library (Python 3.12's ``skip_file_prefixes``,
for Python 3.11).
"""

from __future__ import annotations

import importlib
import os
import sys

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep


def outside_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at
    the first frame of the stack outside the synflow package and importlib (an old module
    name imported by the user names the user's ``import``; the bootstrap's frames are not
    counted, as ``warnings.warn`` counts); with no such frame, the outermost one (under
    ``python -m synflow``, the runpy frame that ran it).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("here", stacklevel=outside_stacklevel())
    >>> caught[0].filename.startswith(PACKAGE)  # this doctest's frame is outside
    False
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and _passed_over(frame.f_code.co_filename):
        frame = frame.f_back
        level += not _bootstrap(frame.f_code.co_filename)
    return level


def _passed_over(filename: str) -> bool:
    """A frame of synflow or of the import machinery."""
    return _bootstrap(filename) or os.path.abspath(filename).startswith((PACKAGE, IMPORTLIB))


def _bootstrap(filename: str) -> bool:
    """A frame of importlib's bootstrap, which ``warnings`` passes over and does not count
    (CPython's rule)."""
    return "importlib" in filename and "_bootstrap" in filename
