"""synflow.training: presets, the optimizer, determinism, masks through training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import synflow
from synflow import data
from synflow.training import loop as train_loop
from synflow.training import presets
from test_data import SHARED, write_image_folder


@pytest.fixture
def blobs(tmp_path, monkeypatch):
    """A tiny grayscale image-folder dataset (3 classes, 1x8x8) as the data root."""
    monkeypatch.setenv("SYNFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SYNFLOW_QUIET", "1")
    write_image_folder(tmp_path / "data" / "blobs", ["a", "b", "c"], shape=(1, 8, 8), train=16,
                       test=6)
    return tmp_path / "data"


def tiny_model(seed=0, name="mlp"):
    return synflow.build_model(name, num_classes=3, input_shape=(1, 8, 8), width=0.2, seed=seed)


# ------------------------------------------------------------------- presets


def test_presets_follow_the_paper_table():
    vgg = presets.preset("vgg16_bn", "cifar100")
    assert (vgg.epochs, vgg.lr, vgg.milestones, vgg.gamma, vgg.weight_decay) == (
        160, 0.1, (60, 120), 0.1, 1e-4)
    resnet = presets.preset("resnet18", "cifar10")
    assert (resnet.lr, resnet.milestones, resnet.gamma, resnet.weight_decay) == (
        0.01, (60, 120), 0.2, 5e-4)
    assert presets.preset("wrn18_2", "cifar10") == resnet
    tiny = presets.preset("vgg11_bn", "tinyimagenet")
    assert (tiny.epochs, tiny.lr, tiny.milestones, tiny.gamma, tiny.weight_decay) == (
        100, 0.01, (30, 60, 80), 0.2, 1e-4)
    assert (vgg.momentum, vgg.nesterov, vgg.batch_size) == (0.9, True, 128)


def test_preset_overrides_scale_the_milestones():
    short = presets.preset("vgg16_bn", "cifar10", epochs=16, lr=0.05, subset=100)
    assert (short.epochs, short.lr, short.milestones, short.subset) == (16, 0.05, (6, 12), 100)
    fixed = presets.preset("vgg16_bn", "cifar10", epochs=16, milestones=(3,))
    assert fixed.milestones == (3,)
    assert presets.preset("vgg16_bn", "cifar10", epochs=None) == presets.PRESETS["vgg-cifar"]


def test_bad_presets_and_configs_name_the_bad_value():
    with pytest.raises(ValueError, match=r"unknown training preset 'fast'.*vgg-cifar"):
        presets.preset("vgg16_bn", "cifar10", name="fast")
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['epoch'\]"):
        presets.preset("vgg16_bn", "cifar10", epoch=3)
    with pytest.raises(ValueError, match="unknown model 'vgg17'"):
        presets.preset("vgg17", "cifar10")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        dataclasses.replace(presets.PRESETS["toy"], epochs=0)


def test_each_parameter_once_in_the_optimizer():
    model = synflow.build_model("resnet20", width=0.25, seed=0)
    synflow.prune(model, "magnitude", 10)
    optimizer, scheduler = train_loop.optimizer_for(model, presets.preset("resnet20", "cifar10"))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(model.parameters()))
    group = optimizer.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    assert scheduler.milestones == {60: 1, 120: 1} and scheduler.gamma == 0.2


# ------------------------------------------------------------------ training


def test_training_is_deterministic_for_a_seed(blobs):
    config = presets.preset("mlp", "blobs", epochs=2, batch_size=8, lr=0.05)

    def run(seed):
        model = tiny_model(seed=seed, name="conv")
        metrics = train_loop.train(model, "blobs", config, device="cpu", seed=seed, root=blobs)
        return metrics, model.state_dict()

    first, weights = run(0)
    second, weights_again = run(0)
    assert [r["train_loss"] for r in first["history"]] == [
        r["train_loss"] for r in second["history"]]
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)
    third, _ = run(1)
    assert third["history"][0]["train_loss"] != first["history"][0]["train_loss"]


def test_metrics_record_every_epoch_and_both_accuracies(blobs):
    config = presets.preset("mlp", "blobs", epochs=4, batch_size=8, lr=0.05)
    metrics = train_loop.train(tiny_model(), "blobs", config, device="cpu", root=blobs)
    history = metrics["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for row in history:
        assert set(row) >= {"train_loss", "test_loss", "top1", "top5", "lr"}
        assert 0 <= row["top1"] <= row["top5"] <= 100
    assert history[-1]["top5"] == 100  # 3 classes: top-5 always hits
    best = max(history, key=lambda row: row["top1"])
    assert metrics["best_top1"] == best["top1"] and metrics["best_epoch"] == best["epoch"]
    assert metrics["final_top1"] == history[-1]["top1"]
    assert metrics["final_test_loss"] == history[-1]["test_loss"]


def test_learning_rate_drops_at_the_milestones(blobs):
    config = presets.TrainConfig(epochs=4, lr=0.1, milestones=(1, 3), gamma=0.5, weight_decay=0,
                               batch_size=16)
    metrics = train_loop.train(tiny_model(), "blobs", config, device="cpu", root=blobs)
    assert [row["lr"] for row in metrics["history"]] == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_pruned_weights_stay_exactly_zero(blobs):
    model = tiny_model(name="conv")
    masks = synflow.prune(model, "magnitude", 5)
    before = {name: synflow.core.masks.effective_weight(m).clone()
              for name, m in synflow.prunable_layers(model).items()}
    config = presets.preset("conv", "blobs", epochs=2, batch_size=8, lr=0.1)
    train_loop.train(model, "blobs", config, device="cpu", root=blobs)
    for name, module in synflow.prunable_layers(model).items():
        pruned = ~masks[name]
        assert pruned.any()
        assert torch.count_nonzero(module.weight_orig[pruned]) == 0
        assert torch.count_nonzero(synflow.core.masks.effective_weight(module)[pruned]) == 0
        kept = synflow.core.masks.effective_weight(module)[masks[name]]
        assert not torch.equal(kept, before[name][masks[name]])  # the kept ones did train


def test_a_checkpoint_kept_in_memory_resumes_to_the_uninterrupted_run(blobs):
    # the states on_checkpoint gets are copies: the optimizer's later steps (its momentum
    # buffers) and the scheduler's must not change one a caller keeps
    config = presets.TrainConfig(epochs=3, lr=0.1, milestones=(2,), gamma=0.1,
                                 weight_decay=5e-4, batch_size=8)
    states = []
    model = tiny_model(name="conv")
    synflow.prune(model, "magnitude", 4)
    uninterrupted = train_loop.train(model, "blobs", config, device="cpu", root=blobs,
                                     on_checkpoint=states.append)
    assert [len(s["history"]) for s in states] == [1, 2]
    first = states[0]
    assert first["optimizer"]["state"] and first["scheduler"]["last_epoch"] == 1
    again = tiny_model(name="conv")
    synflow.prune(again, "magnitude", 4)
    resumed = train_loop.train(again, "blobs", config, device="cpu", root=blobs, resume=first)
    assert resumed["history"][1:] == [
        {**row, "seconds": r["seconds"]} for row, r in zip(uninterrupted["history"][1:],
                                                          resumed["history"][1:])]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))
    third = tiny_model(name="conv")  # the kept state, resumed once, is unchanged: again
    synflow.prune(third, "magnitude", 4)
    twice = train_loop.train(third, "blobs", config, device="cpu", root=blobs, resume=first)
    assert [row["train_loss"] for row in twice["history"]] == [
        row["train_loss"] for row in resumed["history"]]


def test_train_accepts_explicit_batches(blobs):
    info = data.dataset_info("blobs", root=blobs)
    split = data.load("blobs", "train", root=blobs)
    batches = data.Batches(split, info, batch_size=12, shuffle=True)
    config = presets.preset("mlp", "blobs", epochs=1)
    metrics = train_loop.train(tiny_model(), (batches, batches), config, device="cpu")
    assert len(metrics["history"]) == 1


@pytest.mark.skipif(
    not (SHARED / "MNIST").is_dir(), reason=f"no MNIST copy in {SHARED} (set SYNFLOW_DATA)"
)
def test_short_training_lowers_the_loss_on_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNFLOW_QUIET", "1")
    # Kaiming fan-in: with PyTorch's default init this 6-layer MLP barely moves in 3 epochs
    model = synflow.build_model("mlp", num_classes=10, input_shape=(1, 28, 28), width=0.5, seed=0,
                                init="kaiming_fan_in")
    config = presets.preset("mlp", "mnist", epochs=3, lr=0.05, subset=60, batch_size=60)
    train_batches, test_batches = data.loaders(
        "mnist", root=SHARED, train_per_class=config.subset, batch_size=config.batch_size
    )
    initial = train_loop.evaluate(model, test_batches, torch.device("cpu"))
    metrics = train_loop.train(model, (train_batches, test_batches), config, device="cpu")
    history = metrics["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert metrics["final_test_loss"] < 0.5 * initial["test_loss"]
    assert metrics["final_top1"] > 70 > initial["top1"]
