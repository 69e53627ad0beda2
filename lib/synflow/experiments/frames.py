"""The stored runs of an experiment as one pandas DataFrame (one row per run, or per run
and epoch), read from the results store's ``run.json`` files
(:class:`synflow.experiments.results.RunResult`, their one owner). Also reachable as
``synflow.experiments.store.frame``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from ..core.stack import outside_stacklevel
from .folders import check_experiment, results_root
from .results import RESULT_FILE, DamagedResult, RunResult
from .runconfig import RunConfig

if TYPE_CHECKING:
    import pandas as pd


def frame(experiment: str, *, results=None, history: bool = False) -> pd.DataFrame:
    """All stored runs of ``experiment`` as one DataFrame, ready for seaborn.

    One row per run: the config fields (one missing from an old run's config as it was
    meant then, as :func:`synflow.experiments.runconfig.config_from_dict` reads it: e.g.
    init "kaiming_fan_in"), the ``metrics`` (``best_top1``: best-epoch, ``final_top1``:
    final-epoch accuracy), ``key`` and ``path``.
    With ``history=True``, one row per (run, epoch) instead, with the epoch's
    ``train_loss``, ``test_loss``, ``top1``, ``top5`` and learning rate ``epoch_lr``
    (``lr`` stays the run's: a field's name is prefixed ``epoch_`` where it is a config's).
    Config keys unknown to
    RunConfig are reported and kept as columns. A damaged ``run.json`` (see
    :meth:`RunResult.read`), or a copy of another folder's run, is not a done run: it is
    named in a warning and left out.
    Raises FileNotFoundError naming the stored experiments when there is no ``experiment``.

    >>> import tempfile
    >>> from synflow.experiments.folders import run_dir
    >>> config, results = RunConfig("mlp", "mnist"), tempfile.mkdtemp()
    >>> stored = RunResult(config, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [], {})
    >>> _ = stored.write(run_dir(config, "demo", results) / RESULT_FILE)
    >>> frame("demo", results=results)[["model", "pruner", "best_top1"]]
      model pruner  best_top1
    0   mlp  dense          0
    """
    import pandas as pd  # here, not at the top: a worker that only runs runs never needs it

    folder = results_root(results) / check_experiment(experiment)
    if not folder.is_dir():
        root = results_root(results)
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(
            f"no experiment {experiment!r} in {root}; stored experiments: {known or 'none'}"
        )
    rows = []
    for path, result in _readable(folder):
        # missing fields as they were meant (an old run's init: kaiming_fan_in)
        base = {**asdict(result.config), **result.extra_config, "key": result.key,
                "path": str(path.parent)}
        if history:
            # an epoch's value named as a config field (lr) must not overwrite the run's
            rows += [{**base, **{f"epoch_{k}" if k in base else k: v for k, v in epoch.items()}}
                     for epoch in result.history]
        else:
            rows.append({**base, **RunResult.LATER_METRICS, **result.metrics})
    columns = [f.name for f in fields(RunConfig)]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=columns)
    return table


def _readable(folder):
    """``(path, result)`` of every readable ``run.json`` under ``folder``; a damaged one,
    or one holding the same run as another folder's whose name it does not have (a copy:
    its own folder's run is not done, as status and launch see it), is named in a warning
    and left out. (A run stored before a field existed keeps its folder's old name.)"""
    found = []
    for path in sorted(folder.glob(f"*/{RESULT_FILE}")):
        try:
            found.append((path, RunResult.read(path)))
        except DamagedResult as error:
            _leave_out(str(error))
    stored = Counter(result.key for _, result in found)
    for path, result in found:
        if stored[result.key] > 1 and path.parent.name != result.config.name():
            _leave_out(f"{path} holds the run of {result.config.name()}, stored there too")
        else:
            yield path, result


def _leave_out(why: str) -> None:
    warnings.warn(f"{why}; it is left out of the table (`status` reports it as damaged; "
                  "`launch` or run_or_load moves it aside and runs it again)",
                  stacklevel=outside_stacklevel())
