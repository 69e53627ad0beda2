"""``--set KEY=VALUE`` of ``python -m synflow launch/status``: profile parameter overrides."""

import argparse

import pytest

from synflow.experiments import sweeps
from synflow.experiments.cli import parameter

NOTEBOOK = "05_iterative_magnitude_pruning"


def test_overrides_replace_the_profile_values_and_change_the_runs():
    params = sweeps.profile_params(NOTEBOOK, "smoke", {"epochs": 4, "cycles_list": [3]})
    assert params["epochs"] == 4 and params["cycles_list"] == [3]
    assert sweeps.profile_params(NOTEBOOK, "smoke")["epochs"] == 1  # the profile's own value
    runs = sweeps.configs(NOTEBOOK, params)
    trained = [config for config in runs if not config.record_layers]  # fig5b has its own
    assert trained and all(config.epochs == 4 for config in trained)
    assert {config.cycles for config in runs} == {0, 3}


def test_an_unknown_override_is_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"\['epoch'\] are not allowed .* takes: .*epochs"):
        sweeps.profile_params(NOTEBOOK, "smoke", {"epoch": 4})


def test_set_values_are_yaml():
    assert parameter("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parameter("lr=0.05") == ("lr", 0.05)
    for bad in ("epochs", "=3", "seeds=[0"):
        with pytest.raises(argparse.ArgumentTypeError, match="not allowed|not YAML"):
            parameter(bad)
