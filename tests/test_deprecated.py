"""The names of synflow 0.1 keep working for one release, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest
import torch

import synflow
from synflow import _deprecated


def fresh(name: str):
    """Import ``name`` as a first import would (the stand-in module warns once, on import)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(_deprecated.MODULES))
def test_every_old_module_imports_with_a_warning_naming_its_new_home(old):
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*{_deprecated.MODULES[old][0]}"):
        module = fresh(old)
    assert isinstance(module, _deprecated.OldModule)
    assert dir(module)  # every public name of its new modules


@pytest.mark.parametrize(("old", "name", "new"), [
    ("synflow.masks", "shuffle_masks", "synflow.core.masks"),
    ("synflow.masks", "reinitialize_kept", "synflow.models.inits"),
    ("synflow.pruning", "schedule_densities", "synflow.core.schedules"),
    ("synflow.scores", "SCORERS", "synflow.core.scorers"),
    ("synflow.store", "RunConfig", "synflow.experiments.runconfig"),
    ("synflow.store", "run_or_load", "synflow.experiments.store"),
    ("synflow.figures", "accuracy_table", "synflow.analysis.tables"),
    ("synflow.paths", "paper_reference", "synflow.analysis.reference"),
    ("synflow.train", "TrainConfig", "synflow.training.presets"),
])
def test_an_old_name_is_the_new_object(old, name, new):
    with pytest.warns(DeprecationWarning):
        module = fresh(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match=r"no attribute 'nothing'.*moved to"):
        module.nothing  # noqa: B018


@pytest.mark.parametrize("name", sorted(_deprecated.ATTRIBUTES))
def test_old_top_level_names_warn_and_work(name):
    module, _, attr = _deprecated.ATTRIBUTES[name].partition(":")
    with pytest.warns(DeprecationWarning, match=rf"synflow.{name} is deprecated.*{module}.{attr}"):
        value = getattr(synflow, name)
    assert value is getattr(importlib.import_module(module), attr)


def test_every_deprecation_names_the_users_line():
    """An old top-level name, an old module imported, an old call: each warning names
    this file (the DeprecationWarning filter shows it there;
    at synflow's own line Python's default filters hid it)."""
    sys.modules.pop("synflow.masks", None)
    sys.modules.pop("synflow.scores", None)
    model = synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        synflow.shuffle_masks  # noqa: B018
        importlib.import_module("synflow.masks")
        synflow.scores(model, "synflow", input_shape=(3, 8, 8))
    caught = [w for w in caught if w.category is DeprecationWarning]
    assert len(caught) >= 3 and {w.filename for w in caught} == {__file__}, \
        [(w.filename, str(w.message)[:40]) for w in caught]


def test_calling_synflow_scores_still_works_with_a_deprecation_warning():
    model = synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)
    with pytest.warns(DeprecationWarning, match=r"synflow.compute_scores"):
        old = synflow.scores(model, "synflow", input_shape=(3, 8, 8))
    new = synflow.compute_scores(model, "synflow", input_shape=(3, 8, 8))
    assert all(torch.equal(old[n], new[n]) for n in new)


def test_the_public_api_is_small_and_warns_about_nothing():
    assert len(synflow.__all__) <= 22
    code = ("import warnings; warnings.simplefilter('error'); import synflow, synflow.analysis, "
            "synflow.experiments.cli; print(len(synflow.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="has no attribute 'plotter'"):
        synflow.plotter  # noqa: B018
