"""The runs each training notebook trains: one definition, used by the notebook and the launcher.

    params = profile_params("04_accuracy_vs_compression", "paper")   # yaml over the defaults
    runs = configs("04_accuracy_vs_compression", params)              # list[RunConfig]

A notebook calls :func:`groups` with its own variables (``globals()``) and trains
exactly the configs it returns, so ``python -m synflow launch`` (which calls
:func:`configs` with :func:`profile_params`) and the notebook cannot disagree on
what a sweep is (``tests/test_sweeps.py`` checks it for every notebook and profile).
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Callable
from pathlib import Path

import yaml

from . import figures
from .paths import REPO_ROOT
from .store import RunConfig

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOKS_DIR / "params"
PROFILES = ("smoke", "laptop", "paper")
DATASET = "cifar10"  # notebooks 05 and 06
# notebook 06: the mask variants of the sanity checks (Frankle et al., ICLR 2021)
SANITY_VARIANTS = {"as found": {}, "shuffled": {"mask": "shuffled"}, "reinit": {"mask": "reinit"},
                   "inverted": {"invert": True}}


def _accuracy(*, datasets, models, methods, log10_compressions, seeds, synflow_iterations,
              subset, epochs, batch_size, lr, prune_per_class, test_subset, fig1_dataset,
              fig1_model, fig1_width, fig1_log10_compressions):
    """04: Figure 6 on every (dataset, model), plus Figure 1's extra compressions."""
    training = {
        "subset": subset or None, "epochs": epochs or None, "batch_size": batch_size or None,
        "lr": lr or None, "prune_per_class": prune_per_class, "test_subset": test_subset or None,
    }
    runs = [
        config
        for dataset in datasets
        for config in figures.sweep_configs(
            models, dataset, log10_compressions, methods, seeds,
            synflow_iterations=synflow_iterations, **training,
        )
    ]
    fig1 = figures.sweep_configs(
        {fig1_model: fig1_width}, fig1_dataset, fig1_log10_compressions or log10_compressions,
        methods, seeds, synflow_iterations=synflow_iterations, **training,
    )
    runs += [config for config in fig1 if config not in set(runs)]
    return {"accuracy": runs}


def _imp(*, model_name, width, subset, test_subset, epochs, compressions, cycles_list, seeds,
         fig5b_model, fig5b_width, fig5b_epochs, fig5b_lr):
    """05: dense, magnitude at init and IMP (with and without rewinding); Figure 5b's run."""
    common = {"width": width, "subset": subset, "test_subset": test_subset, "epochs": epochs}
    return {
        "dense": [RunConfig(model_name, DATASET, seed=s, **common) for s in seeds],
        "init": [
            RunConfig(model_name, DATASET, pruner="magnitude", compression=c, seed=s, **common)
            for c in compressions for s in seeds
        ],
        "imp": [
            RunConfig(model_name, DATASET, pruner="magnitude", compression=c, cycles=k,
                      rewind=r, seed=s, **common)
            for c in compressions for k in cycles_list for r in (True, False) for s in seeds
        ],
        "fig5b": [
            RunConfig(fig5b_model, DATASET, width=fig5b_width, subset=subset,
                      test_subset=test_subset, epochs=fig5b_epochs, lr=fig5b_lr,
                      record_layers=True, seed=seeds[0])
        ],
    }


def _sanity(*, model_name, width, subset, test_subset, epochs, per_class, compressions,
            methods, synflow_iterations, iterative_iterations, seeds, bn_mode_methods):
    """06: dense; mask variants; single-shot vs iterative; data-free baselines; SNIP/GraSP
    scored with BatchNorm in train mode (``bn_mode_methods``; their eval-mode runs are the
    "as found" ones) (keyed dicts)."""
    common = {"width": width, "subset": subset, "test_subset": test_subset, "epochs": epochs,
              "prune_per_class": per_class}

    def run(pruner, compression, seed, **changes):
        changes.setdefault(
            "iterations", synflow_iterations if pruner in ("synflow", "synflow_l2") else 1)
        return RunConfig(model_name, DATASET, pruner=pruner, compression=compression,
                         seed=seed, **common, **changes)

    return {
        "dense": [RunConfig(model_name, DATASET, seed=s, **common) for s in seeds],
        "sanity": {
            (method, c, s, variant): run(method, c, s, **changes)
            for method in methods for c in compressions for s in seeds
            for variant, changes in SANITY_VARIANTS.items()
        },
        "iterative": {
            (method, c, s, n): run(method, c, s, iterations=n)
            for method in ("snip", "grasp", "synflow") for c in compressions for s in seeds
            for n in (1, iterative_iterations if method != "synflow" else synflow_iterations)
        },
        "free": {
            (method, c, s): run(method, c, s)
            for method in ("random", "random_erk", "synflow_l2", "synflow")
            for c in compressions for s in seeds
        },
        "bn_train": {
            (method, c, s): run(method, c, s, bn_mode="train")
            for method in bn_mode_methods for c in compressions for s in seeds
        },
    }


# notebook stem -> the function building its runs from its parameters
BUILDERS: dict[str, Callable[..., dict]] = {
    "04_accuracy_vs_compression": _accuracy,
    "05_iterative_magnitude_pruning": _imp,
    "06_sanity_checks": _sanity,
}


def _builder(notebook: str) -> Callable[..., dict]:
    notebook = notebook.removesuffix(".ipynb")
    if notebook not in BUILDERS:
        raise ValueError(
            f"notebook {notebook!r} trains no runs; the training notebooks are: "
            f"{', '.join(BUILDERS)}"
        )
    return BUILDERS[notebook]


def groups(notebook: str, params: dict) -> dict[str, list[RunConfig] | dict]:
    """The notebook's runs, in named groups (a list, or a dict keyed as the notebook uses it).

    ``params`` maps the notebook's parameter names to values (the notebook passes
    ``globals()``; other keys are ignored). Raises ValueError naming a missing
    parameter or an unknown notebook.
    """
    builder = _builder(notebook)
    names = list(inspect.signature(builder).parameters)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"parameters {missing} of {notebook} are missing; it needs: {names}")
    return builder(**{name: params[name] for name in names})


def configs(notebook: str, params: dict) -> list[RunConfig]:
    """Every run ``notebook`` trains at ``params``, each once, in the notebook's order."""
    runs: dict[RunConfig, None] = {}
    for group in groups(notebook, params).values():
        runs.update(dict.fromkeys(group.values() if isinstance(group, dict) else group))
    return list(runs)


def experiment(notebook: str, params: dict) -> str:
    """The results-store folder the notebook writes (its ``experiment`` parameter)."""
    _builder(notebook)
    return params["experiment"]


def notebook_defaults(notebook: str) -> dict:
    """The ``name: type = literal`` defaults of the notebook's cell tagged ``parameters``."""
    path = NOTEBOOKS_DIR / f"{notebook.removesuffix('.ipynb')}.ipynb"
    if not path.is_file():
        known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(f"no notebook {path}; notebooks: {', '.join(known)}")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path} needs exactly one cell tagged 'parameters', has {len(tagged)}")
    defaults = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            defaults[target.id] = ast.literal_eval(node.value)
    return defaults


def profile_params(notebook: str, profile: str, overrides: dict | None = None) -> dict:
    """The notebook's parameters at ``profile``: its section of
    ``notebooks/params/<profile>.yaml`` over its parameters cell's defaults (what
    papermill gives the notebook), then ``overrides`` (e.g. ``{"epochs": 3}``: a smaller
    or longer grid for a test or a trial on a cluster). Raises ValueError for an unknown
    profile or key."""
    path = PARAMS_DIR / f"{profile}.yaml"
    if profile not in PROFILES or not path.is_file():
        raise ValueError(f"profile {profile!r} is not allowed; choose one of: {', '.join(PROFILES)}")
    notebook = notebook.removesuffix(".ipynb")
    defaults = notebook_defaults(notebook)
    section = (yaml.safe_load(path.read_text()) or {}).get(notebook) or {}
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise ValueError(f"{path} sets {unknown} for {notebook}, which it does not declare")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"parameters {unknown} are not allowed for {notebook}; "
                         f"it declares: {', '.join(defaults)}")
    return {**defaults, **section, **overrides}


def notebook_path(notebook: str) -> Path:
    return NOTEBOOKS_DIR / f"{notebook.removesuffix('.ipynb')}.ipynb"
