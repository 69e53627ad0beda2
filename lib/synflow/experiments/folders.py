"""A run's folder in the results store: where it is, and the failure record it may hold.

``<results>/<experiment>/<readable name>-<short hash of the config>/`` (``<results>``:
:func:`synflow.utils.paths.results_dir`, $SYNFLOW_RESULTS) holds the run's ``run.json``
(:mod:`synflow.experiments.results`), and, after the run raised, ``failed.json``: the
error, its traceback, host, job, log and how many attempts failed. Running runs there is
:mod:`synflow.experiments.store`'s job.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from ..core.files import atomic_write
from ..utils.paths import results_dir
from . import holders
from .runconfig import RunConfig

FAILURE_FILE = "failed.json"


def results_root(results=None) -> Path:
    """``results`` as an absolute path, or the default results folder
    (:func:`synflow.utils.paths.results_dir`). Raises NotADirectoryError naming it when it,
    or the nearest of its parents that exists, is not a folder.

    >>> results_root("/tmp/../tmp/results")
    PosixPath('/tmp/results')
    """
    path = Path(results).expanduser().resolve() if results is not None else results_dir()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise NotADirectoryError(f"the results folder {path} is {'a file, ' if not where else ''}"
                                 f"not a folder{where}; give --results (or SYNFLOW_RESULTS) a "
                                 "folder")
    return path


def check_experiment(experiment: str) -> str:
    """``experiment`` if it is a plain folder name, else ValueError naming it.

    >>> check_experiment("fig 6")
    Traceback (most recent call last):
    ValueError: experiment 'fig 6' must be a plain folder name (letters, digits, _ . + = -)
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*", experiment or ""):
        raise ValueError(
            f"experiment {experiment!r} must be a plain folder name (letters, digits, _ . + = -)"
        )
    return experiment


def run_dir(config: RunConfig, experiment: str, results=None) -> Path:
    """The folder of ``config``'s results in ``experiment`` (named by
    :meth:`RunConfig.name`). Raises ValueError for an experiment that is not a plain
    folder name (:func:`check_experiment`), NotADirectoryError as :func:`results_root`.

    >>> run_dir(RunConfig("mlp", "mnist"), "demo", results="/tmp/results").parent
    PosixPath('/tmp/results/demo')
    """
    return results_root(results) / check_experiment(experiment) / config.name()


def failure(config: RunConfig, experiment: str, results=None) -> dict | None:
    """The run's failure record (config, error, traceback, host, time, log), or None.

    >>> import tempfile
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> failure(config, "demo", results) is None
    True
    >>> _ = record_failure(run_dir(config, "demo", results), config, ValueError("boom"))
    >>> record = failure(config, "demo", results)
    >>> record["error"], record["attempts"]
    ('ValueError: boom', 1)
    """
    path = run_dir(config, experiment, results) / FAILURE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {"error": f"unreadable failure record {path}", "log": None}


def record_failure(folder: Path, config: RunConfig, error: BaseException) -> Path:
    """Write ``<run folder>/failed.json`` for ``error`` (atomically); its path. A second
    failure of the run counts one more attempt.

    >>> import tempfile
    >>> config = RunConfig("mlp", "mnist")
    >>> record_failure(Path(tempfile.mkdtemp()), config, ValueError("boom")).name
    'failed.json'
    """
    text = "".join(traceback.format_exception(error)).rstrip()
    previous = {}
    try:
        previous = json.loads((folder / FAILURE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        pass
    path = folder / FAILURE_FILE
    record = {
        "config": asdict(config), "key": config.key(),
        # the whole message on one line (a DatasetNotFoundError lists the places looked)
        "error": " ".join(f"{type(error).__name__}: {error}".split()) if str(error) else
        type(error).__name__,
        "traceback": text, "host": platform.node(), "pid": os.getpid(),
        "job": holders.job_id(), "log": holders.log_path(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "attempts": int(previous.get("attempts", 0)) + 1,
    }
    return atomic_write(path, lambda file: json.dump(record, file, indent=1), text=True)
