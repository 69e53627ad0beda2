"""Training precision (float32 / bfloat16 autocast) and what a run's numbers depend on:
its precision (part of its identity), never the caller's thread count or worker count."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from synflow.core import masks as masks_module
from synflow.core.loop import prune
from synflow.experiments import execution, parallel, store
from synflow.experiments.results import RunResult
from synflow.experiments.runconfig import RunConfig, config_from_dict
from synflow.models.registry import build_model
from synflow.training import loop, precision, presets
from synflow.utils import progress
from test_data import write_image_folder

# ------------------------------------------------------------ resolving "auto"


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU has the given flags, and "auto" is not forced."""
    monkeypatch.delenv(precision.VARIABLE, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def set_flags(*names):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))
        monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")

    return set_flags


def test_auto_is_bfloat16_only_on_cpus_with_native_bf16(flags):
    flags("avx2", "avx512f")
    assert precision.resolve("auto") == "float32"
    assert RunConfig("mlp", "mnist").train_precision == "float32"
    flags("avx512f", "avx512_bf16")
    assert precision.resolve("auto") == "bfloat16"
    assert precision.resolve("auto", "cpu") == "bfloat16"
    assert RunConfig("mlp", "mnist").train_precision == "bfloat16"
    flags("amx_bf16")
    assert precision.native_bf16()


def test_the_variable_forces_what_auto_means(flags, monkeypatch):
    flags("avx512_bf16")
    monkeypatch.setenv(precision.VARIABLE, "float32")
    assert precision.resolve("auto") == "float32"
    assert precision.resolve("bfloat16") == "bfloat16"  # an explicit value wins
    monkeypatch.setenv(precision.VARIABLE, "half")
    with pytest.raises(ValueError, match=r"SYNFLOW_TRAIN_PRECISION.*'half'.*float32, bfloat16"):
        precision.resolve("auto")


def test_bad_precisions_are_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'fp16'.*float32, bfloat16, auto"):
        presets.TrainConfig(1, 0.1, (), 0.1, 0.0, precision="fp16")
    with pytest.raises(ValueError, match=r"train_precision 'fp16'.*float32, bfloat16 or auto"):
        RunConfig("mlp", "mnist", train_precision="fp16")


# ------------------------------------------------------------ identity


def test_precision_is_part_of_the_identity_and_float32_keeps_todays_names():
    fp32 = RunConfig("vgg16_bn", "cifar10", pruner="synflow", compression=100, iterations=100,
                     train_precision="float32")
    bf16 = dataclasses.replace(fp32, train_precision="bfloat16")
    assert fp32.name() == "vgg16_bn-w1-cifar10-synflow-c100-s0-fcb3b4874f"  # as before
    assert bf16.name() == "vgg16_bn-w1-cifar10-synflow-c100-bf16-s0-837796b6a4"
    assert bf16.training().precision == "bfloat16"
    assert fp32.training().precision == "float32"


def test_a_stored_config_keeps_its_precision_and_never_stores_auto(flags):
    flags("avx512_bf16")  # here "auto" means bfloat16
    made = RunConfig("mlp", "mnist")
    stored = dataclasses.asdict(made)
    assert stored["train_precision"] == "bfloat16"
    assert config_from_dict(stored) == made
    # a config stored before the field existed was trained in float32 and reads so
    old = {k: v for k, v in stored.items() if k != "train_precision"}
    assert config_from_dict(old).train_precision == "float32"
    assert config_from_dict(old) != made


# ------------------------------------------------------------ the training step


def conv_model(seed=0):
    model = build_model("vgg11_bn", num_classes=4, input_shape=(3, 16, 16), width=0.125,
                        seed=seed)
    prune(model, "magnitude", 10, input_shape=(3, 16, 16))
    return model


def batches(count=3, size=8):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(size, 3, 16, 16, generator=generator),
             torch.randint(0, 4, (size,), generator=generator)) for _ in range(count)]


def test_bfloat16_training_keeps_pruned_weights_zero_and_state_in_float32(monkeypatch):
    losses = []
    cross_entropy = loop.F.cross_entropy

    def recorded(logits, *args, **kwargs):
        losses.append(logits.dtype)
        return cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(loop.F, "cross_entropy", recorded)
    model = conv_model()
    pruned = {name: ~mask for name, mask in masks_module.current_masks(model).items()}
    config = presets.TrainConfig(2, 0.1, (), 0.1, 5e-4, precision="bfloat16")
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    result = loop.train(model, (batches(), batches(1)), config, device="cpu")
    assert torch.bfloat16 in seen  # the convolutions ran in bf16
    assert set(losses) == {torch.float32}  # the loss did not
    assert all(math_ok(row["train_loss"]) for row in result["history"])
    for name, module in masks_module.prunable_layers(model).items():
        assert module.weight_orig.dtype == torch.float32
        assert torch.count_nonzero(module.weight[pruned[name]]) == 0
        assert torch.count_nonzero(module.weight_orig[pruned[name]]) == 0
        assert module.weight_orig.is_contiguous(memory_format=torch.channels_last) or \
            module.weight_orig.dim() != 4
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean.dtype == module.weight.dtype == torch.float32


def math_ok(value):
    return math.isfinite(value) and abs(value) < 1e3


def test_float32_training_runs_no_bf16_and_stays_nchw():
    model = conv_model()
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append(out))
    config = presets.TrainConfig(1, 0.1, (), 0.1, 5e-4, precision="float32")
    loop.train(model, (batches(1), batches(1)), config, device="cpu")
    assert {out.dtype for out in seen} == {torch.float32}
    assert all(out.is_contiguous() for out in seen)


def test_the_precisions_compute_differently_but_alike():
    # one batch: the epoch's loss is the initial model's, before any update
    losses = {}
    for name in precision.PRECISIONS:
        config = presets.TrainConfig(1, 0.05, (), 0.1, 5e-4, precision=name)
        result = loop.train(conv_model(), (batches(1), batches(1)), config, device="cpu")
        losses[name] = result["history"][0]["train_loss"]
    fp32, bf16 = losses["float32"], losses["bfloat16"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.02 * abs(fp32)


# ------------------------------------------------- threads and workers of the caller


@pytest.fixture
def rgb(env):
    """A 4-class RGB 32x32 image folder "rgb" beside "blobs"; a conv run on it whose
    float sums depend on the thread count unless the run pins it."""
    write_image_folder(env / "data" / "rgb", ["a", "b", "c", "d"], shape=(3, 32, 32),
                       train=16, test=4)
    return RunConfig("vgg11_bn", "rgb", pruner="magnitude", compression=4, width=0.25,
                     epochs=2, batch_size=16, lr=0.05, train_precision="float32")


def numbers(result: RunResult):
    """What a run measured, without its times."""
    metrics = {k: v for k, v in result.metrics.items() if "seconds" not in k}
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    return metrics, history


def test_a_run_trained_the_notebooks_way_does_not_depend_on_the_callers_threads(rgb):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = store.sweep([rgb], "one_thread")[0]
        torch.set_num_threads(2)
        two = store.sweep([rgb], "two_threads")[0]
        assert torch.get_num_threads() == 2  # the caller's count is restored
    finally:
        torch.set_num_threads(before)
    assert numbers(one) == numbers(two)


def test_runs_side_by_side_in_workers_equal_runs_in_this_process(rgb, env, monkeypatch):
    runs = [rgb, dataclasses.replace(rgb, seed=1)]
    log = env / "runs.log"
    monkeypatch.setenv(progress.PROGRESS_LOG_VARIABLE, str(log))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        here = store.sweep(runs, "here", workers=1)
    finally:
        torch.set_num_threads(before)

    def not_here(*args, **kwargs):
        raise AssertionError("a run of the side-by-side sweep ran in this process")

    monkeypatch.setattr(execution, "execute", not_here)  # the spawned workers don't see it
    side = store.sweep(runs, "side", workers=2)
    assert [numbers(r) for r in side] == [numbers(r) for r in here]
    lines = sorted(line.split(" (")[0] for line in log.read_text().splitlines())
    assert lines == sorted(f"{exp}: run {i}/2 {run.name()}" for exp in ("here", "side")
                           for i, run in enumerate(runs, start=1))


def test_worker_counts_are_checked(monkeypatch):
    monkeypatch.delenv(parallel.WORKERS_VARIABLE, raising=False)
    assert parallel.count_workers(None, "cuda") == 1
    assert parallel.count_workers(None, "cpu") == parallel.available_cpus()
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "3")
    assert parallel.count_workers(None, "cpu") == 3
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "two")
    with pytest.raises(ValueError, match=r"\$SYNFLOW_WORKERS 'two'.*integer >= 1"):
        parallel.count_workers(None, "cpu")
    with pytest.raises(ValueError, match=r"workers 0 .*integer >= 1"):
        parallel.count_workers(0, "cpu")


def test_a_stored_config_with_unknown_keys_warns_naming_them_at_the_callers_line():
    """A config written by a later version: its unknown keys are named (and left out of
    the run's identity), in a warning at the caller's line."""
    stored = {"model": "mlp", "dataset": "mnist", "future_option": 3}
    with pytest.warns(UserWarning, match=r"run.json has keys that RunConfig does not know: "
                                         r"\['future_option'\]") as caught:
        config = config_from_dict(stored, "run.json")
    assert config == config_from_dict({"model": "mlp", "dataset": "mnist"})
    assert {w.filename for w in caught} == {__file__}
