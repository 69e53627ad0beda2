"""The device-independent tests, on the device $SYNFLOW_TEST_DEVICE names (default cpu):
masks, scorers, the pruning loop, a masked training step, checkpoint and resume, the
store's round trip. ``SYNFLOW_TEST_DEVICE=cuda pytest tests/test_on_device.py`` (or
``benchmarks/gpu_check.py``) runs the same tests on a GPU, each compared with the CPU."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from synflow.core import masks as masks_module
from synflow.core.loop import prune
from synflow.core.paths import DisconnectedWarning, input_output_paths, warn_cut
from synflow.core.saving import load_pruned, save_pruned
from synflow.core.scorers import SCORERS
from synflow.core.scoring import compute_scores
from synflow.experiments import execution, store
from synflow.models.registry import build_model
from synflow.training import loop, presets

SHAPE = (3, 16, 16)


def network(seed=0):
    return build_model("vgg11_bn", num_classes=4, input_shape=SHAPE, width=0.125, seed=seed)


def batches(count=2, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *SHAPE, generator=generator),
             torch.randint(0, 4, (size,), generator=generator)) for _ in range(count)]


def on(device, pairs):
    return [(x.to(device), y.to(device)) for x, y in pairs]


def test_masks_live_on_the_device_and_survive_a_file(device, tmp_path):
    model = network().to(device)
    masks = prune(model, "magnitude", 10)
    assert {mask.device.type for mask in masks.values()} == {device.type}
    for name, module in masks_module.prunable_layers(model).items():
        assert torch.count_nonzero(module.weight[~masks[name]]) == 0
    save_pruned(model, tmp_path / "pruned.pt")
    loaded = load_pruned(network().to(device), tmp_path / "pruned.pt")
    again = masks_module.current_masks(loaded)
    assert all(torch.equal(again[name], masks[name]) for name in masks)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


@pytest.mark.parametrize("method", sorted(SCORERS))
def test_scores_on_the_device_are_the_cpus(device, method):
    cpu = network()
    prune(cpu, "magnitude", 2)  # scores of a masked model
    there = copy.deepcopy(cpu).to(device)
    data = batches()
    expected = compute_scores(cpu, method, data=data, input_shape=SHAPE, seed=3)
    got = compute_scores(there, method, data=on(device, data), input_shape=SHAPE, seed=3)
    for name, scores in expected.items():
        assert got[name].device.type == device.type
        tolerance = 1e-9 if scores.dtype == torch.float64 else 1e-4
        torch.testing.assert_close(got[name].cpu(), scores, rtol=tolerance, atol=tolerance * 1e-3)


@pytest.mark.parametrize(("method", "iterations"), [("synflow", 5), ("magnitude", 1)])
def test_the_pruning_loop_on_the_device_gives_the_cpus_masks(device, method, iterations):
    expected = prune(network(), method, 100, iterations=iterations, input_shape=SHAPE)
    got = prune(network().to(device), method, 100, iterations=iterations, input_shape=SHAPE)
    assert all(torch.equal(got[name].cpu(), expected[name]) for name in expected)


def test_snip_masks_on_the_device_agree_with_the_cpus(device):
    data = batches()
    expected = prune(network(), "snip", 10, data=data)
    got = prune(network().to(device), "snip", 10, data=on(device, data))
    same = sum(int((got[n].cpu() == expected[n]).sum()) for n in expected)
    total = sum(mask.numel() for mask in expected.values())
    assert same >= 0.999 * total  # float32 sums in another order may swap near-ties


def test_paths_and_the_disconnection_warning_on_the_device_are_the_cpus(device):
    masks = masks_module.current_masks(network())  # dense
    masks["features.4.weight"][1:] = False  # output channel 0 alone goes on
    masks["features.8.weight"][:, :1] = False  # and nothing reads it: no path
    counts = [input_output_paths(network().to(where), {k: m.to(where) for k, m in masks.items()},
                                 SHAPE) for where in ("cpu", device)]
    assert counts[0] == 0 and counts[1] == counts[0]
    linked = prune(network(), "magnitude", 10)
    counts = [input_output_paths(network().to(where), {k: m.to(where) for k, m in linked.items()},
                                 SHAPE) for where in ("cpu", device)]
    assert counts[0] > 0 and counts[1] == pytest.approx(counts[0], rel=1e-12)
    net = network().to(device)
    layers = masks_module.prunable_layers(net)
    with pytest.warns(DisconnectedWarning, match="cut every input-output path"):
        warn_cut(net, layers, {k: m.to(device) for k, m in masks.items()}, SHAPE)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_masked_training_step_keeps_pruned_weights_zero(device, precision):
    model = network().to(device)
    masks = prune(model, "magnitude", 10)
    before = {n: m.weight.detach().clone() for n, m in masks_module.prunable_layers(model).items()}
    config = presets.TrainConfig(1, 0.1, (), 0.1, 5e-4, precision=precision)
    result = loop.train(model, (on(device, batches()), on(device, batches(1))), config,
                        device=device)
    assert result["history"][0]["train_loss"] > 0
    for name, module in masks_module.prunable_layers(model).items():
        assert module.weight_orig.device.type == device.type
        assert torch.count_nonzero(module.weight[~masks[name]]) == 0
        assert not torch.equal(module.weight[masks[name]], before[name][masks[name]])


BASE = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=3,
                       batch_size=12, lr=0.05)


def numbers(result):
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    metrics = {k: v for k, v in result.metrics.items() if "seconds" not in k}
    return metrics, history


def test_a_run_interrupted_after_a_checkpoint_resumes_to_the_same_numbers(env, device):
    config = dataclasses.replace(BASE, cycles=1)  # IMP: a checkpoint in each training
    whole = execution.execute(config, device=device)
    checkpoint = env / "checkpoint.pt"

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    with pytest.raises(Stop):
        execution.execute(config, device=device, checkpoint=checkpoint, on_checkpoint=stop)
    assert checkpoint.is_file()
    resumed = execution.execute(config, device=device, checkpoint=checkpoint)
    assert resumed.environment["resumed_from_stage"] == 1
    if device.type == "cpu":
        assert numbers(resumed) == numbers(whole)  # bit-identical on the CPU
    else:  # cuDNN picks its kernels per run: close, and the same masks
        assert resumed.layers == whole.layers
        assert resumed.metrics["final_top1"] == pytest.approx(whole.metrics["final_top1"], abs=20)


def test_the_store_round_trip_on_the_device(env, device):
    result = store.run_or_load(BASE, "exp", device=device)
    assert result.environment["device"] == str(device)
    loaded = store.run_or_load(BASE, "exp", device=device)  # loaded, not rerun
    assert loaded.environment == result.environment and loaded.config == result.config
    assert numbers(loaded) == numbers(result)
    assert store.frame("exp")["best_top1"].tolist() == [result.metrics["best_top1"]]
