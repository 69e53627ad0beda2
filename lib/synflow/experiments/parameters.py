"""The training notebooks' parameters: each one's type and range, checked before any run.

A training notebook's runs (:mod:`synflow.experiments.sweeps`) are built from its
parameters, set by its parameters cell, a profile (``profiles/*.yaml``) or ``--set
KEY=VALUE`` of ``python -m synflow launch|status``. :func:`check_parameters` refuses a
value of the wrong type or out of range, naming the parameter, the value and what is
allowed, before anything is submitted or stored. 0 never means "the default": the
paper's (or the preset's) value, or the full set, is ``None`` (``null`` in YAML).
:func:`check_runs` then refuses what only the runs tell: a dataset that is neither
known nor on disk, a compression the model cannot reach; :func:`status_command` writes
the ``status`` command line that selects the same runs (the overrides included).

>>> from synflow.experiments.parameters import check_parameters
>>> check_parameters("05_iterative_magnitude_pruning", {"epochs": 0})
Traceback (most recent call last):
ValueError: 05_iterative_magnitude_pruning: epochs=0 is not allowed; give null (None: ...) or ...
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable

import yaml

from ..core.scorers import BN_MODE_METHODS, SCORERS
from ..models.registry import MODELS
from .runconfig import is_integer, is_real


def _integer(low: int, none: str = ""):
    """An integer >= ``low``; with ``none``, also None (meaning ``none``)."""
    def check(value):
        return (bool(none) and value is None) or (is_integer(value) and value >= low)

    return check, (f"null (None: {none}) or " if none else "") + f"an integer >= {low}"


def _real(low: float, inclusive: bool, none: str = ""):
    def check(value):
        return (bool(none) and value is None) or (
            is_real(value) and math.isfinite(value) and (value >= low if inclusive else value > low))

    return check, (f"null (None: {none}) or " if none else "") + (
        f"a finite number {'>=' if inclusive else '>'} {low:g}")


def _choice(allowed, what: str):
    allowed = sorted(allowed)
    return (lambda value: isinstance(value, str) and value in allowed,
            f"{what}, one of: {', '.join(allowed)}")


def _name(what: str):
    return lambda value: isinstance(value, str) and bool(value), f"{what} (a non-empty string)"


def _list(rule, *, empty: bool = False):
    """A list (``empty``: possibly empty) whose every item satisfies ``rule``."""
    check, item = rule

    def check_list(value):
        return isinstance(value, list) and (empty or bool(value)) and all(map(check, value))

    return check_list, f"a{'' if empty else ' non-empty'} list, each item {item}"


def _models():
    model, width = _choice(MODELS, "a model name"), _real(0, False)

    def check(value):
        return isinstance(value, dict) and bool(value) and all(
            model[0](k) and width[0](v) for k, v in value.items())

    return check, f"a non-empty mapping {{model: width}}, each model {model[1]}, each width {width[1]}"


_EXPERIMENT = (lambda value: isinstance(value, str)
               and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*", value) is not None,
               "a plain folder name (letters, digits, _ . + = -)")
_MODEL = _choice(MODELS, "a model name")
_WIDTH = _real(0, False)
_SEEDS = _list(_integer(0))
_SUBSET = _integer(1, "the full training set")
_TEST_SUBSET = _integer(1, "the full test set")
_EPOCHS = _integer(1, "the preset's epochs")
_LR = _real(0, False, "the preset's learning rate")

# every parameter a training notebook's runs depend on: (check, what is allowed)
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "experiment": _EXPERIMENT,
    # 04
    "datasets": _list(_name("a dataset name")),
    "models": _models(),
    "methods": _list(_choice(SCORERS, "a pruner")),
    "log10_compressions": _list(_real(0, True)),
    "seeds": _SEEDS,
    "synflow_iterations": _integer(1),
    "subset": _SUBSET,
    "epochs": _EPOCHS,
    "batch_size": _integer(1, "the preset's batch size"),
    "lr": _LR,
    "prune_per_class": _integer(1),
    "test_subset": _TEST_SUBSET,
    "fig1_dataset": _name("a dataset name"),
    "fig1_model": _MODEL,
    "fig1_width": _WIDTH,
    "fig1_log10_compressions": _list(_real(0, True), empty=True),
    # 05 and 06
    "model_name": _MODEL,
    "width": _WIDTH,
    "compressions": _list(_real(1, True)),
    "cycles_list": _list(_integer(1)),
    "fig5b_model": _MODEL,
    "fig5b_width": _WIDTH,
    "fig5b_epochs": _EPOCHS,
    "fig5b_lr": _LR,
    "per_class": _integer(1),
    "iterative_iterations": _integer(1),
    "bn_mode_methods": _list(_choice(BN_MODE_METHODS, "a pruner scored with BatchNorm"),
                             empty=True),
}
# the parameters that name datasets, and those that set the compressions trained
DATASET_PARAMETERS = ("datasets", "fig1_dataset")
COMPRESSION_PARAMETERS = ("log10_compressions", "fig1_log10_compressions", "compressions")


def check_parameters(notebook: str, params: dict) -> None:
    """Raise ValueError naming the first parameter of ``params`` (``{name: value}`` of
    ``notebook``) whose value has the wrong type or is out of range (``RULES``), with
    what is allowed. Numpy numbers count as numbers; a bool is not a number.

    >>> check_parameters("05_iterative_magnitude_pruning", {"epochs": 2, "seeds": [0, 1]})
    >>> check_parameters("05_iterative_magnitude_pruning", {"seeds": [True]})
    Traceback (most recent call last):
    ValueError: 05_iterative_magnitude_pruning: seeds=[True] is not allowed; give a non-empty list, each item an integer >= 0
    """
    for name, value in params.items():
        if name not in RULES:
            raise ValueError(f"{notebook}: {name} is not a parameter synflow knows how to "
                             f"check; known: {', '.join(RULES)}")
        check, allowed = RULES[name]
        if not check(value):
            raise ValueError(f"{notebook}: {name}={value!r} is not allowed; give {allowed}")


def check_runs(notebook: str, params: dict, runs) -> None:
    """Refuse, naming the parameter, what makes every run of a dataset or compression
    fail: a dataset neither in ``synflow.data.DATASETS`` nor an image-folder dataset
    under the data root (``$SYNFLOW_DATA``), and a compression above a model's count of
    prunable weights (it would leave no weight). ``runs``: the notebook's RunConfigs.

    >>> from synflow.experiments.runconfig import RunConfig
    >>> run = RunConfig("mlp", "mnist", pruner="synflow", compression=1e9)
    >>> check_runs("demo", {"compressions": [1e9]}, [run])
    Traceback (most recent call last):
    ValueError: demo: compression 1e+09 of mlp-...-c1e+09-... keeps N / compression < 1 weight: mlp (width 1) on mnist has 119400 prunable weights, so compression must be at most 119400; lower compressions
    """
    from ..data.datasets import DATASETS, DatasetNotFoundError, locate
    from .runnable import prunable_weights

    for name in (n for n in DATASET_PARAMETERS if n in params):
        values = params[name] if isinstance(params[name], list) else [params[name]]
        for dataset in values:
            if dataset not in DATASETS:
                try:
                    locate(dataset, download=False)
                except DatasetNotFoundError as error:
                    raise ValueError(f"{notebook}: {name} names the dataset {dataset!r}: "
                                     f"{error}") from None
    for run in runs:
        if run.dataset not in DATASETS:
            continue  # its size is known only once its images are read
        total = prunable_weights(run.model, run.width, run.dataset)  # cached per model
        if run.compression > total:
            names = " / ".join(n for n in COMPRESSION_PARAMETERS if n in params)
            raise ValueError(
                f"{notebook}: compression {run.compression:g} of {run.name()} keeps "
                "N / compression < 1 weight: "
                f"{run.model} (width {run.width:g}) on {run.dataset} has {total} "
                f"prunable weights, so compression must be at most {total}; "
                f"lower {names}")


def status_command(notebooks, profile: str, results, overrides: dict,
                   stale_after: float | None = None) -> str:
    """The ``python -m synflow status`` command line for these runs: the same notebooks,
    profile, results folder, ``--set`` overrides (values in YAML, shell-quoted) and
    ``--stale-after``, after ``$SYNFLOW_TRAIN_PRECISION`` where it is set (it decides
    which runs are planned).

    >>> line = status_command(["06_sanity_checks"], "smoke", "/r", {"seeds": [0], "subset": None})
    >>> line[line.index("python"):]  # after SYNFLOW_TRAIN_PRECISION=... where it is set
    "python -m synflow status 06_sanity_checks --profile smoke --results /r --set 'seeds=[0]' --set subset=null"
    """
    from ..training.precision import VARIABLE

    sets = [f"--set {shlex.quote(f'{key}=' + _yaml(value))}" for key, value in overrides.items()]
    given = os.environ.get(VARIABLE)
    return " ".join([*([f"{VARIABLE}={shlex.quote(given)}"] if given else []),
                     "python -m synflow status", *notebooks, "--profile", profile, "--results",
                     shlex.quote(str(results)), *sets,
                     *([f"--stale-after {stale_after:g}"] if stale_after is not None else [])])


def _yaml(value) -> str:
    """``value`` as one line of YAML (what ``--set`` parses back to it)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).removesuffix(
        "\n...\n").strip()
