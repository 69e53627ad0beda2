"""Where the library's warnings point: at the first frame outside the synflow package, so
that a warning names the user's line whichever public function, analysis or experiment
issued it, and however deep inside the library (Python 3.12's ``skip_file_prefixes``,
for Python 3.11).
"""

from __future__ import annotations

import os
import sys

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def outside_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at
    the first frame of the stack outside the synflow package (the outermost frame when
    every one is inside it, as under ``python -m synflow``).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("here", stacklevel=outside_stacklevel())
    >>> caught[0].filename.startswith(PACKAGE)  # this doctest's frame is outside
    False
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            PACKAGE):
        frame, level = frame.f_back, level + 1
    return level
