"""The runs each training notebook trains: one definition, used by the notebook and the launcher.

    params = profile_params("04_accuracy_vs_compression", "paper")   # the profile's section
    runs = configs("04_accuracy_vs_compression", params)              # list[RunConfig]

A notebook calls :func:`groups` with its own variables (``globals()``) and trains
exactly the configs it returns, so ``python -m synflow launch`` (which calls
:func:`configs` with :func:`profile_params`) and the notebook cannot disagree on
what a sweep is (``tests/test_sweeps.py`` checks it for every notebook and profile).
Everything needed ships in the package: the builders here and the profiles
(:mod:`synflow.experiments.profiles`), each training notebook's section complete.

>>> from synflow.experiments.sweeps import configs, profile_params
>>> len(configs("04_accuracy_vs_compression", profile_params("04_accuracy_vs_compression", "smoke")))
6
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

from ..core.scorers import ITERATIVE_METHODS
from .parameters import check_parameters
from .profiles import profile_path, section
from .runconfig import DENSE, RunConfig

DATASET = "cifar10"  # notebooks 05 and 06
# notebook 06: the mask variants of the sanity checks (Frankle et al., ICLR 2021)
SANITY_VARIANTS = {"as found": {}, "shuffled": {"mask": "shuffled"}, "reinit": {"mask": "reinit"},
                   "inverted": {"invert": True}}


def _accuracy(*, datasets, models, methods, log10_compressions, seeds, synflow_iterations,
              subset, epochs, batch_size, lr, prune_per_class, test_subset, fig1_dataset,
              fig1_model, fig1_width, fig1_log10_compressions):
    """04: Figure 6 on every (dataset, model), plus Figure 1's runs: ``fig1_model`` on
    ``fig1_dataset`` at ``fig1_log10_compressions`` (empty: ``log10_compressions``), the
    ones not already planned."""
    training = {"subset": subset, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "prune_per_class": prune_per_class, "test_subset": test_subset}
    runs = [
        config
        for dataset in datasets
        for config in sweep_configs(
            models, dataset, log10_compressions, methods, seeds,
            synflow_iterations=synflow_iterations, **training,
        )
    ]
    fig1 = sweep_configs(
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
            "iterations", synflow_iterations if pruner in ITERATIVE_METHODS else 1)
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
    parameter, a value of the wrong type or out of range
    (:func:`synflow.experiments.parameters.check_parameters`; ``None`` is "the paper's
    value / the full set", 0 is never a default), or an unknown notebook.

    >>> notebook = "05_iterative_magnitude_pruning"
    >>> sorted(groups(notebook, profile_params(notebook, "smoke")))
    ['dense', 'fig5b', 'imp', 'init']
    """
    builder = _builder(notebook)
    names = list(inspect.signature(builder).parameters)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"parameters {missing} of {notebook} are missing; it needs: {names}")
    chosen = {name: params[name] for name in names}
    check_parameters(notebook.removesuffix(".ipynb"), chosen)
    try:
        return builder(**chosen)
    except ValueError as error:  # a combination no single rule refuses
        raise ValueError(f"{notebook.removesuffix('.ipynb')}: these parameters make an "
                         f"invalid run: {error}") from None


def configs(notebook: str, params: dict) -> list[RunConfig]:
    """Every run ``notebook`` trains at ``params``, each once, in the notebook's order
    (RunConfigs). Raises ValueError as :func:`groups` does.

    >>> notebook = "05_iterative_magnitude_pruning"
    >>> len(configs(notebook, profile_params(notebook, "smoke")))
    9
    """
    runs: dict[RunConfig, None] = {}
    for group in groups(notebook, params).values():
        runs.update(dict.fromkeys(group.values() if isinstance(group, dict) else group))
    return list(runs)


def experiment(notebook: str, params: dict) -> str:
    """The results-store folder the notebook writes (its ``experiment`` parameter).
    Raises ValueError for a notebook that trains no runs or a name that is not a plain
    folder name.

    >>> experiment("04_accuracy_vs_compression", {"experiment": "fig6"})
    'fig6'
    """
    _builder(notebook)
    check_parameters(notebook.removesuffix(".ipynb"), {"experiment": params["experiment"]})
    return params["experiment"]


def parameter_names(notebook: str) -> list[str]:
    """The parameters ``notebook``'s runs depend on: its builder's and ``experiment``.
    Raises ValueError naming the training notebooks for any other notebook.

    >>> parameter_names("05_iterative_magnitude_pruning")[:3]
    ['model_name', 'width', 'subset']
    """
    return [*inspect.signature(_builder(notebook)).parameters, "experiment"]


def profile_params(notebook: str, profile: str, overrides: dict | None = None) -> dict:
    """The training notebook's parameters at ``profile`` (its section of the profile,
    :func:`synflow.experiments.profiles.section`), then ``overrides`` (e.g. ``{"epochs":
    3}``: a smaller or longer grid for a test or a trial on a cluster).

    Raises ValueError for an unknown notebook or profile, a section that lacks one of
    :func:`parameter_names`, or an override that is not one of them.

    >>> profile_params("05_iterative_magnitude_pruning", "smoke", {"epochs": 3})["epochs"]
    3
    """
    names = parameter_names(notebook)
    params = section(notebook, profile)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"{profile_path(profile)} lacks {missing} for {notebook}; every "
                         f"training notebook's section sets all of: {', '.join(names)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"parameters {unknown} are not allowed for {notebook}'s training "
                         "runs (its other parameters do not change which runs train); they "
                         f"take: {', '.join(names)}")
    return {**params, **overrides}


# the network a model name stands for on a dataset, as in the authors' runs: on Tiny
# ImageNet their VGGs are Models/tinyimagenet_vgg.py (five pools, a 3-layer 1024-wide
# head), not the CIFAR ones; ResNet-18 / WRN-18 are the same network on every dataset
DATASET_MODELS = {
    "tinyimagenet": {f"vgg{d}{bn}": f"vgg{d}{bn}_tiny" for d in (11, 13, 16, 19)
                     for bn in ("", "_bn")},
}


def dataset_model(model: str, dataset: str) -> str:
    """The model that stands for ``model`` on ``dataset`` (``DATASET_MODELS``; e.g.
    "vgg16_bn" on "tinyimagenet" is "vgg16_bn_tiny"), else ``model`` itself.

    >>> dataset_model("vgg16_bn", "tinyimagenet"), dataset_model("vgg16_bn", "cifar10")
    ('vgg16_bn_tiny', 'vgg16_bn')
    """
    return DATASET_MODELS.get(dataset, {}).get(model, model)


def sweep_configs(
    models: dict[str, float],
    dataset: str,
    log10_compressions: Iterable[float],
    methods: Iterable[str],
    seeds: Iterable[int],
    *,
    synflow_iterations: int = 100,
    **training,
) -> list[RunConfig]:
    """Every run of the sweep, cheapest first within a seed.

    ``models`` maps model name to width; on each dataset a name stands for the authors'
    network there (:func:`dataset_model`: "vgg16_bn" is "vgg16_bn_tiny" on Tiny
    ImageNet, as in their Figure 6). Exponent 0 (compression 1) is one dense
    run per (model, seed), shared by every method; SynFlow prunes in
    ``synflow_iterations`` steps, the other methods in one shot (as in the
    paper). ``training`` holds the other RunConfig fields (``subset``,
    ``epochs``, ``lr``, ``batch_size``, ``prune_per_class``, ``preset``).
    Seed-major order, so an interrupted sweep has whole seeds done. Raises ValueError
    for a negative exponent, and as :class:`RunConfig` does for a bad field.

    >>> runs = sweep_configs({"mlp": 1.0}, "mnist", [0, 2], ["synflow", "snip"], seeds=[0])
    >>> [(run.pruner, run.compression, run.iterations) for run in runs]
    [('dense', 1.0, 1), ('synflow', 100.0, 100), ('snip', 100.0, 1)]
    """
    exponents = sorted(float(e) for e in log10_compressions)
    if any(e < 0 for e in exponents):
        raise ValueError(f"log10 compressions must be >= 0, got {exponents}")
    configs = []
    for seed in seeds:
        for model, width in models.items():
            common = dict(model=dataset_model(model, dataset), dataset=dataset, width=width,
                          seed=seed, **training)
            if 0 in exponents:
                configs.append(RunConfig(pruner=DENSE, **common))
            for exponent in (e for e in exponents if e > 0):
                for method in methods:
                    configs.append(
                        RunConfig(
                            pruner=method,
                            compression=10**exponent,
                            iterations=synflow_iterations if method in ITERATIVE_METHODS else 1,
                            **common,
                        )
                    )
    return configs
