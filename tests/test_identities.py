"""Run identities pinned as literals (as open_lth's lottery/test/test_desc.py pins its runs).

A run's folder name and hash come from its RunConfig; a stored run is found again only
while they stay the same. These literals were written by the code before the package was
split into layers (commit 6ac611a): any change to a name, a hash, or a training notebook's
planned runs at any profile fails here. The stored runs under tests/fixtures/stored_runs/
were written by that code too, and must still load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from synflow.experiments import launch, profiles, store, sweeps
from synflow.experiments.results import RunResult

R = store.RunConfig
FIXTURES = Path(__file__).parent / "fixtures" / "stored_runs"

NAMES = {
    'dense': (R(model='vgg16_bn', dataset='cifar10', pruner='dense', compression=1.0, width=1.0, iterations=1, schedule='exponential', scope='global', invert=False, seed=0, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='as_found', cycles=0, rewind=True, test_subset=None, record_layers=False, bn_mode='eval', init='authors'), 'vgg16_bn-w1-cifar10-dense-s0-f16a1797f5'),
    'synflow': (R(model='vgg16_bn', dataset='cifar10', pruner='synflow', compression=100.0, width=0.125, iterations=100, schedule='exponential', scope='global', invert=False, seed=0, subset=250, prune_per_class=10, preset=None, epochs=10, lr=0.05, batch_size=64, mask='as_found', cycles=0, rewind=True, test_subset=100, record_layers=False, bn_mode='eval', init='authors'), 'vgg16_bn-w0.125-cifar10-synflow-c100-s0-5043ca180f'),
    'snip_bn_train': (R(model='vgg11_bn', dataset='cifar10', pruner='snip', compression=10.0, width=1.0, iterations=1, schedule='exponential', scope='global', invert=False, seed=2, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='as_found', cycles=0, rewind=True, test_subset=None, record_layers=False, bn_mode='train', init='authors'), 'vgg11_bn-w1-cifar10-snip-c10-bntrain-s2-e09b39c628'),
    'imp': (R(model='vgg11_bn', dataset='cifar10', pruner='magnitude', compression=100.0, width=0.125, iterations=1, schedule='exponential', scope='global', invert=False, seed=0, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='as_found', cycles=3, rewind=False, test_subset=None, record_layers=False, bn_mode='eval', init='authors'), 'vgg11_bn-w0.125-cifar10-magnitude-c100-imp3norewind-s0-c1800d4559'),
    'shuffled': (R(model='resnet20', dataset='cifar100', pruner='grasp', compression=31.622776601683793, width=1.0, iterations=1, schedule='exponential', scope='global', invert=False, seed=1, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='shuffled', cycles=0, rewind=True, test_subset=None, record_layers=False, bn_mode='eval', init='authors'), 'resnet20-w1-cifar100-grasp-c31.62-shuffled-s1-cc00dffd0f'),
    'reinit_init': (R(model='mlp', dataset='mnist', pruner='random', compression=1000.0, width=1.0, iterations=1, schedule='linear', scope='local', invert=True, seed=0, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='reinit', cycles=0, rewind=True, test_subset=None, record_layers=False, bn_mode='eval', init='kaiming_fan_in'), 'mlp-w1-mnist-random-c1000-reinit-init_kaiming_fan_in-s0-4e495e1fed'),
    'preset': (R(model='vgg11', dataset='cifar10', pruner='dense', compression=1.0, width=1.0, iterations=1, schedule='exponential', scope='global', invert=False, seed=0, subset=None, prune_per_class=10, preset='toy', epochs=None, lr=None, batch_size=None, mask='as_found', cycles=0, rewind=True, test_subset=None, record_layers=True, bn_mode='eval', init='authors'), 'vgg11-w1-cifar10-dense-s0-cf3aad41e8'),
    'tiny': (R(model='vgg16_bn_tiny', dataset='tinyimagenet', pruner='synflow_l2', compression=10.0, width=1.0, iterations=100, schedule='exponential', scope='global', invert=False, seed=0, subset=None, prune_per_class=10, preset=None, epochs=None, lr=None, batch_size=None, mask='as_found', cycles=0, rewind=True, test_subset=None, record_layers=False, bn_mode='eval', init='authors'), 'vgg16_bn_tiny-w1-tinyimagenet-synflow_l2-c10-s0-dcf7849c7f'),
}
PLANS = {
    ('04_accuracy_vs_compression', 'smoke'): (6, '8ace91613b9cb1b3'),
    ('04_accuracy_vs_compression', 'laptop'): (78, '648ec1a9ea24da40'),
    ('04_accuracy_vs_compression', 'paper'): (2376, '421b3d43f052847a'),
    ('05_iterative_magnitude_pruning', 'smoke'): (9, '76f45895dba038a3'),
    ('05_iterative_magnitude_pruning', 'laptop'): (16, '7b67146b8727d467'),
    ('05_iterative_magnitude_pruning', 'paper'): (67, '18ab4b1196d67a8b'),
    ('06_sanity_checks', 'smoke'): (24, 'fb329b83a2d00f90'),
    ('06_sanity_checks', 'laptop'): (94, '9f5c5afba82de4a7'),
    ('06_sanity_checks', 'paper'): (219, '10de71e5e57c13d8'),
}

# Since the training precision became part of a run's identity (issue 18), every
# notebook's runs train in what "auto" means on the machine that plans them: float32 (the
# names above, unchanged: LATER_FIELDS leaves train_precision "float32" out of the hash),
# or bfloat16 with a CUDA GPU or a CPU with native bf16, where every planned run gets a
# "-bf16" name and a new hash -- pinned here. The tests run with "auto" forced to
# float32 (tests/conftest.py), so the pins above hold on every machine.
PLANS_BF16 = {
    ('04_accuracy_vs_compression', 'smoke'): (6, '5c6db5c4e980fac6'),
    ('04_accuracy_vs_compression', 'laptop'): (78, 'fab75d240b222b35'),
    ('04_accuracy_vs_compression', 'paper'): (2376, '3157cba869367e57'),
    ('05_iterative_magnitude_pruning', 'smoke'): (9, '330d3fb18bd44f1a'),
    ('05_iterative_magnitude_pruning', 'laptop'): (16, 'a7c77e4415d36062'),
    ('05_iterative_magnitude_pruning', 'paper'): (67, '694e109fb1d946fe'),
    ('06_sanity_checks', 'smoke'): (24, '6adc076f4faf6e05'),
    ('06_sanity_checks', 'laptop'): (94, 'bf01f3a886961b5b'),
    ('06_sanity_checks', 'paper'): (219, '91eda89b957f64af'),
}
BF16_NAME = (R(model='vgg16_bn', dataset='cifar10', pruner='synflow', compression=100.0, width=0.125, iterations=100, schedule='exponential', scope='global', invert=False, seed=0, subset=250, prune_per_class=10, preset=None, epochs=10, lr=0.05, batch_size=64, mask='as_found', cycles=0, rewind=True, test_subset=100, record_layers=False, bn_mode='eval', init='authors', train_precision='bfloat16'), 'vgg16_bn-w0.125-cifar10-synflow-c100-bf16-s0-8e77c33088')


@pytest.mark.parametrize("label", sorted(NAMES))
def test_run_names_and_hashes_are_pinned(label):
    config, name = NAMES[label]
    assert config.name() == name
    assert config.key() == name.rsplit("-", 1)[1]


@pytest.mark.parametrize("label", sorted(NAMES))
def test_numpy_numbers_give_the_same_run_identity(label):
    # a config written with numpy numbers (e.g. from np.arange or a DataFrame row) is the
    # same run as with plain ones: same fields, same name and hash as the pinned literal
    import dataclasses

    import numpy as np

    config, name = NAMES[label]
    numbers = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool):
            numbers[field.name] = np.bool_(value)
        elif isinstance(value, int):
            numbers[field.name] = np.int64(value)
        elif isinstance(value, float):
            numbers[field.name] = np.float64(value)
    assert len(numbers) >= 8
    made = R(**{**dataclasses.asdict(config), **numbers})
    assert made == config and made.name() == name and made.key() == name.rsplit("-", 1)[1]
    assert all(type(getattr(made, key)) is type(getattr(config, key)) for key in numbers)


@pytest.mark.parametrize(("notebook", "profile"), sorted(PLANS))
def test_every_training_notebooks_planned_runs_are_pinned(notebook, profile):
    runs = launch.planned_runs([notebook], profile)
    names = sorted(f"{experiment}/{config.name()}" for experiment, config in runs)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    assert (len(runs), digest) == PLANS[(notebook, profile)]


def test_the_pins_cover_every_training_notebook_and_profile():
    assert set(PLANS) == {(n, p) for n in sweeps.BUILDERS for p in profiles.PROFILES}
    assert set(PLANS_BF16) == set(PLANS)


def test_float32_is_what_the_pins_above_were_made_with():
    for config, name in NAMES.values():
        assert config.train_precision == "float32"
        assert store.RunConfig(**{**config.__dict__, "train_precision": "float32"}).name() == name


def test_a_bfloat16_run_name_is_pinned():
    config, name = BF16_NAME
    assert config.name() == name


@pytest.mark.parametrize(("notebook", "profile"), sorted(PLANS_BF16))
def test_every_training_notebooks_planned_runs_in_bfloat16_are_pinned(notebook, profile,
                                                                      monkeypatch):
    monkeypatch.setenv("SYNFLOW_TRAIN_PRECISION", "bfloat16")  # "auto" on a bf16 machine
    runs = launch.planned_runs([notebook], profile)
    names = sorted(f"{experiment}/{config.name()}" for experiment, config in runs)
    assert all("-bf16-" in name for name in names)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    assert (len(runs), digest) == PLANS_BF16[(notebook, profile)]


STORED = sorted(p.parent.name for p in FIXTURES.glob("*/run.json"))


@pytest.mark.parametrize("folder", STORED)
def test_runs_stored_by_earlier_code_still_load(folder, tmp_path):
    # the folder as the earlier code wrote it, in an experiment of a fresh results store
    experiment = tmp_path / "results" / "fixture" / folder
    experiment.mkdir(parents=True)
    (experiment / "run.json").write_bytes((FIXTURES / folder / "run.json").read_bytes())
    loaded = RunResult.read(experiment / "run.json")
    config = loaded.config
    assert config.name() == folder
    # found by its config and not moved aside: the store would not run it again
    assert store.stored_result(config, "fixture", tmp_path / "results") == loaded
    assert (experiment / "run.json").is_file()


def test_there_are_stored_fixtures():
    assert len(STORED) >= 2
