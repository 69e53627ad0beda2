"""synflow.experiments.sweeps: a training notebook trains exactly the runs the launcher submits.

For every training notebook and every profile, the notebook's own cells (the
parameters cell, the profile's values as papermill injects them, then the cells
up to and including the one that builds ``planned``) are executed without
training, and their runs are compared with ``sweeps.configs`` at
``sweeps.profile_params``. A static check makes sure every call that trains in
the notebook (``store.sweep`` / ``store.run_or_load``) takes its runs from
``planned`` and that no notebook builds a RunConfig itself.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from synflow.experiments import profiles, store, sweeps

TRAINING = sorted(sweeps.BUILDERS)
CASES = [(notebook, profile) for notebook in TRAINING for profile in profiles.PROFILES]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def code_cells(notebook):
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def notebook_runs(notebook, profile):
    """Run the notebook's cells up to the one defining ``planned`` (nothing trains:
    every training call fails the test); its ``planned`` groups."""
    cells = code_cells(notebook)
    namespace = {}
    section = profiles.section(notebook, profile)
    for cell in cells:
        tags = cell["metadata"].get("tags", [])
        if "injected-parameters" in tags:
            continue
        source = "".join(cell["source"])
        if "planned = " in source:  # only the lines up to the plan: later ones would train
            lines = source.splitlines()
            last = max(i for i, line in enumerate(lines) if line.startswith("planned = "))
            source = "\n".join(lines[: last + 1])
        exec(compile(source, f"{notebook} cell", "exec"), namespace)  # noqa: S102  (the notebook's own cells)
        if "parameters" in tags:
            namespace.update(section or {})  # what papermill injects after this cell
        if "planned" in namespace:
            return namespace["planned"]
    raise AssertionError(f"{notebook} never defines `planned`")


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the config cells must not train")

    monkeypatch.setattr(store, "run_or_load", fail)
    monkeypatch.setattr(store, "sweep", fail)


@pytest.mark.parametrize(("notebook", "profile"), CASES)
def test_notebook_runs_equal_the_library_runs(notebook, profile, no_training, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    planned = notebook_runs(notebook, profile)
    params = sweeps.profile_params(notebook, profile)
    assert planned == sweeps.groups(notebook, params)
    flat = []
    for group in planned.values():
        flat += list(group.values() if isinstance(group, dict) else group)
    assert set(flat) == set(sweeps.configs(notebook, params))
    assert len(sweeps.configs(notebook, params)) == len(set(flat))
    assert all(isinstance(run, store.RunConfig) for run in flat)


@pytest.mark.parametrize("notebook", TRAINING)
def test_every_training_call_of_a_notebook_takes_the_planned_runs(notebook):
    calls = 0
    for cell in code_cells(notebook):
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("sweep", "run_or_load", "sweep_configs", "RunConfig")):
                assert node.func.attr in ("sweep", "run_or_load"), (
                    f"{notebook} builds runs itself: {ast.unparse(node)[:80]}")
                calls += 1
                names = {n.id for n in ast.walk(node.args[0]) if isinstance(n, ast.Name)}
                assert names == {"planned"}, (
                    f"{notebook} trains runs not taken from `planned`: {ast.unparse(node)[:80]}")
            if isinstance(node, ast.Name) and node.id == "RunConfig":
                raise AssertionError(f"{notebook} builds a RunConfig itself")
    assert calls >= 1


def test_profile_params_are_the_profiles_section_with_the_overrides():
    params = sweeps.profile_params("05_iterative_magnitude_pruning", "smoke")
    assert params == profiles.section("05_iterative_magnitude_pruning", "smoke")
    assert params["epochs"] == 1 and params["experiment"] == "05_imp_smoke"
    changed = sweeps.profile_params("05_iterative_magnitude_pruning", "smoke", {"epochs": 3})
    assert changed == {**params, "epochs": 3}
    with pytest.raises(ValueError, match=r"parameters \['data_root'\] are not allowed for "
                       r"05_iterative_magnitude_pruning's training runs.*take: .*epochs"):
        sweeps.profile_params("05_iterative_magnitude_pruning", "smoke", {"data_root": "/x"})


@pytest.mark.parametrize(("notebook", "profile"), CASES)
def test_every_training_section_sets_every_parameter_its_runs_depend_on(notebook, profile):
    # the package alone defines the runs: no default is read from the notebook
    assert set(sweeps.parameter_names(notebook)) <= set(profiles.section(notebook, profile))


def test_a_section_without_a_parameter_is_refused(monkeypatch):
    section = profiles.section("05_iterative_magnitude_pruning", "smoke")
    del section["seeds"]
    monkeypatch.setattr(sweeps, "section", lambda notebook, profile: dict(section))
    with pytest.raises(ValueError, match=r"smoke.yaml lacks \['seeds'\] for 05"):
        sweeps.profile_params("05_iterative_magnitude_pruning", "smoke")


def test_paper_profile_of_04_is_the_papers_grid():
    params = sweeps.profile_params("04_accuracy_vs_compression", "paper")
    runs = sweeps.configs("04_accuracy_vs_compression", params)
    assert len(runs) == len(set(runs)) > 2000
    assert {run.dataset for run in runs} >= {"cifar10", "cifar100"}
    # each dataset's networks as in the authors' Figure 6: their Tiny ImageNet VGGs
    models = {dataset: {run.model for run in runs if run.dataset == dataset}
              for dataset in ("cifar10", "cifar100", "tinyimagenet")}
    assert models["cifar10"] == models["cifar100"] == {"vgg11_bn", "vgg16_bn", "resnet18",
                                                       "wrn18_2"}
    assert models["tinyimagenet"] == {"vgg11_bn_tiny", "vgg16_bn_tiny", "resnet18", "wrn18_2"}


def test_bad_names_are_reported():
    with pytest.raises(ValueError, match=r"'02_layer_collapse' trains no runs.*04_accuracy"):
        sweeps.configs("02_layer_collapse", {})
    with pytest.raises(ValueError, match=r"profile 'huge'.*smoke, laptop, paper"):
        sweeps.profile_params("04_accuracy_vs_compression", "huge")
    with pytest.raises(ValueError, match=r"parameters \['seeds'\]"):
        params = sweeps.profile_params("05_iterative_magnitude_pruning", "smoke")
        del params["seeds"]
        sweeps.configs("05_iterative_magnitude_pruning", params)
