"""``--set KEY=VALUE`` of ``python -m synflow launch/status``: profile parameter overrides."""

import argparse

import pytest

from synflow.experiments import sweeps
from synflow.experiments.cli import main, parameter

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
    with pytest.raises(ValueError, match=r"\['epoch'\] are not allowed .* take: .*epochs"):
        sweeps.profile_params(NOTEBOOK, "smoke", {"epoch": 4})


def test_set_values_are_yaml():
    assert parameter("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parameter("lr=0.05") == ("lr", 0.05)
    assert parameter("compressions=[1e9, 2.5E-1, -1e+3]") == ("compressions", [1e9, 0.25, -1000.0])
    assert parameter("epochs=null") == ("epochs", None) and parameter("x=1e") == ("x", "1e")
    for bad in ("epochs", "=3", "seeds=[0"):
        with pytest.raises(argparse.ArgumentTypeError, match="not allowed|not YAML"):
            parameter(bad)


# ------------------------------------------- every value checked before anything runs

BAD_VALUES = [
    ("epochs=0", "epochs=0 is not allowed; give null (None: the preset's epochs) or an integer"),
    ("epochs=abc", "epochs='abc' is not allowed"),
    ("epochs=-1", "epochs=-1 is not allowed"),
    ("subset=0", "subset=0 is not allowed; give null (None: the full training set)"),
    ("lr=0", "lr=0 is not allowed; give null (None: the preset's learning rate)"),
    ("batch_size=2.5", "batch_size=2.5 is not allowed"),
    ("test_subset=0", "test_subset=0 is not allowed; give null (None: the full test set)"),
    ("seeds=0", "seeds=0 is not allowed; give a non-empty list, each item an integer >= 0"),
    ("seeds=[true]", "seeds=[True] is not allowed"),
    ("methods=[snipp]", "methods=['snipp'] is not allowed; give a non-empty list, each item a pruner"),
    ("models={vgg17: 1}", "models={'vgg17': 1} is not allowed"),
    ("models={mlp: 0}", "models={'mlp': 0} is not allowed"),
    ("log10_compressions=[-1]", "log10_compressions=[-1] is not allowed"),
    ("experiment=../x", "experiment='../x' is not allowed; give a plain folder name"),
    ("log10_compressions=[9]", "compression 1e+09 of mlp-w0.1-cifar10-random-c1e+09-s0-"),
    ("datasets=[cifar1000]", "datasets names the dataset 'cifar1000': unknown dataset"),
]


@pytest.mark.parametrize("command", ["status", "launch"])
@pytest.mark.parametrize(("setting", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_a_bad_value_is_refused_by_name_before_anything_is_submitted(command, setting, message,
                                                                     env, capsys):
    # the real notebook's plan (not a stand-in): nothing may be trained, stored or submitted
    code = main([command, "04_accuracy_vs_compression", "--profile", "smoke", "--set", setting])
    captured = capsys.readouterr()
    assert code == 2, captured.out
    assert captured.err.startswith("synflow ") and message in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert not (env / "results").exists()  # no run folder, claim, failure record or log


@pytest.mark.parametrize(("notebook", "setting", "message"), [
    (NOTEBOOK, "compressions=[0.5]", "compressions=[0.5] is not allowed"),
    (NOTEBOOK, "cycles_list=[0]", "cycles_list=[0] is not allowed"),
    (NOTEBOOK, "fig5b_lr=0", "fig5b_lr=0 is not allowed"),
    (NOTEBOOK, "model_name=vgg17", "model_name='vgg17' is not allowed"),
    ("06_sanity_checks", "bn_mode_methods=[magnitude]", "bn_mode_methods=['magnitude'] is not"),
    ("06_sanity_checks", "per_class=0", "per_class=0 is not allowed"),
    ("06_sanity_checks", "compressions=[1e9]", "compression 1e+09 of vgg11_bn-w0.125-cifar10-"),
])
def test_every_training_notebooks_values_are_checked(notebook, setting, message, env, capsys):
    assert main(["status", notebook, "--profile", "smoke", "--set", setting]) == 2
    assert message in capsys.readouterr().err


def test_null_means_the_papers_value_and_numpy_numbers_are_numbers():
    import numpy as np

    params = sweeps.profile_params("04_accuracy_vs_compression", "smoke", {
        "epochs": None, "subset": None, "lr": None, "batch_size": None, "test_subset": None})
    runs = sweeps.configs("04_accuracy_vs_compression", params)
    assert {(r.epochs, r.subset, r.lr, r.batch_size, r.test_subset) for r in runs} == {
        (None,) * 5}
    assert runs[0].training().epochs == 10 and runs[0].training().subset is None  # the preset
    numpy = sweeps.profile_params("04_accuracy_vs_compression", "smoke", {
        "seeds": [np.int64(0)], "epochs": np.int32(1), "lr": np.float64(0.05),
        "log10_compressions": [np.int64(0), np.float64(1.0)]})
    plain = sweeps.profile_params("04_accuracy_vs_compression", "smoke")
    assert [r.name() for r in sweeps.configs("04_accuracy_vs_compression", numpy)] == [
        r.name() for r in sweeps.configs("04_accuracy_vs_compression", plain)]


def test_the_profiles_use_null_not_0_for_the_papers_values():
    paper = sweeps.profile_params("04_accuracy_vs_compression", "paper")
    assert all(paper[name] is None for name in ("subset", "epochs", "batch_size", "lr",
                                                  "test_subset"))


def test_a_run_no_single_rule_refuses_is_still_named_by_notebook(monkeypatch):
    from synflow.experiments import parameters

    monkeypatch.setitem(parameters.RULES, "bn_mode_methods", (lambda value: True, "anything"))
    params = sweeps.profile_params("06_sanity_checks", "smoke", {"bn_mode_methods": ["random"]})
    with pytest.raises(ValueError, match=r"^06_sanity_checks: these parameters make an invalid "
                       r"run: bn_mode 'train' is for the pruners grasp, snip, not 'random'"):
        sweeps.configs("06_sanity_checks", params)


def test_every_parameter_of_every_training_notebook_has_a_rule():
    from synflow.experiments import parameters

    for notebook in sweeps.BUILDERS:
        assert set(sweeps.parameter_names(notebook)) <= set(parameters.RULES), notebook
