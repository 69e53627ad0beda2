"""Every method on float16, bfloat16 and float64 models, past float64's range, and on
nn.DataParallel wrappers (issue 11, items 4, 5 and 7)."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

import synflow
from synflow.core.scorers.synflow import SynFlowOverflowError
from synflow.models.inits import kaiming_fan_in as init_weights
from synflow.models.registry import mlp

METHODS = ["random", "magnitude", "snip", "grasp", "synflow", "synflow_l2"]
SHAPE = (3, 8, 8)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )


def data():
    inputs = torch.randn(12, *SHAPE, generator=torch.Generator().manual_seed(1))
    return [(inputs, torch.arange(12) % 3)]


def prune(model, method, **kwargs):
    return synflow.prune(
        model, method, 5, iterations=2, data=data(), input_shape=SHAPE, seed=3, **kwargs
    )


def kept(masks):
    return sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_method_prunes_models_of_any_float_dtype(method, dtype):
    # the float32 reference holds the same values (float16/bfloat16 ones are rounded first)
    reference_model = small_net().to(dtype).float() if dtype != torch.float64 else small_net()
    reference = prune(reference_model, method)
    model = small_net().to(dtype)
    masks = prune(model, method)
    assert kept(masks) == kept(reference)  # exactly round(N / compression)
    assert not synflow.empty_layers(masks)
    for name, module in synflow.prunable_layers(model).items():
        assert module.weight.dtype == dtype and module.weight_mask.dtype == dtype
        assert torch.all(module.weight[~masks[name]] == 0)
    if dtype == torch.float64 and method in {"snip", "grasp"}:
        # gradients in float64 differ from float32's in the last bits: near-ties may swap
        agree = sum(int((masks[k] == reference[k]).sum()) for k in masks)
        assert agree >= 0.99 * sum(m.numel() for m in masks.values())
    else:  # low precision scores in float32, on the same values: the very same mask
        assert all(torch.equal(masks[k], reference[k]) for k in masks), method


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_scores_of_low_precision_models_are_finite_and_in_float32(dtype):
    for method in ["snip", "grasp"]:
        scores = synflow.compute_scores(small_net().to(dtype), method, data=data())
        assert all(s.dtype == torch.float32 and torch.isfinite(s).all() for s in scores.values())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_many_equal_scores_do_not_overflow_the_finite_check(dtype):
    # 65,536 scores of 1.0 sum to more than float16 can hold (65,504)
    layer = nn.Linear(256, 256, bias=False).to(dtype)
    nn.init.ones_(layer.weight)
    masks = synflow.prune(layer, "magnitude", 2)
    assert int(masks["weight"].sum()) == 256 * 256 // 2
    assert masks["weight"].flatten()[: 256 * 128].all()  # ties go to the lowest indices


def test_nan_and_inf_scores_are_counted_in_the_error():
    from synflow.core.selection import check_finite_scores

    values = torch.ones(10, dtype=torch.float16)
    check_finite_scores({"w": values * 60000})  # finite values whose float16 sum overflows: fine
    values[2], values[5] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="1 NaN, 1 inf"):
        check_finite_scores({"w": values})


def test_synflow_beyond_float64_names_the_overflow():
    model = init_weights(mlp((1, 10, 10), 10, depth=400))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(SynFlowOverflowError, match=r"R_SF .* is inf in float64 .* 400 prunable"):
        synflow.prune(model, "synflow", 10, input_shape=(1, 10, 10))
    with pytest.raises(OverflowError, match="overflows float64"):
        synflow.compute_scores(model, "synflow", input_shape=(1, 10, 10))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    shallow = init_weights(mlp((1, 10, 10), 10, depth=200))  # R_SF ~ 1e210: fine in float64
    assert kept(synflow.prune(shallow, "synflow", 10, input_shape=(1, 10, 10))) > 0


@pytest.mark.parametrize("method", METHODS)
def test_data_parallel_models_are_pruned_through_their_module(method):
    reference = prune(small_net(), method)
    wrapped = nn.DataParallel(small_net())
    masks = prune(wrapped, method)
    assert masks.keys() == reference.keys()  # names of the wrapped module, no "module."
    assert all(torch.equal(masks[k], reference[k]) for k in masks)
    scores = synflow.compute_scores(wrapped, method, data=data(), input_shape=SHAPE)
    assert scores.keys() == reference.keys()
    assert synflow.current_masks(wrapped).keys() == reference.keys()
    out = wrapped(torch.randn(2, *SHAPE))  # the wrapper runs the masked module
    assert out.shape == (2, 3)
    for name, module in synflow.prunable_layers(wrapped.module).items():
        assert torch.all(module.weight[~masks[name]] == 0)


def test_mask_helpers_unwrap_data_parallel(tmp_path):
    wrapped = nn.DataParallel(small_net())
    masks = prune(wrapped, "magnitude")
    synflow.apply_masks(wrapped, synflow.core.masks.shuffle_masks(masks))
    assert synflow.unwrap(wrapped) is wrapped.module
    path = synflow.save_pruned(wrapped, tmp_path / "m.pt")
    fresh = small_net(seed=5)
    synflow.load_pruned(fresh, path)
    assert synflow.current_masks(fresh).keys() == masks.keys()
    # a state dict saved from the wrapper itself ("module." keys) loads too
    other = nn.DataParallel(small_net(seed=6))
    synflow.load_pruned_state_dict(other, wrapped.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(
        synflow.current_masks(other).values(), synflow.current_masks(wrapped).values()))
    synflow.remove_masks(wrapped)
    assert "module.0.weight" in dict(wrapped.named_parameters())


def test_nan_scores_are_refused_naming_their_key():
    scores = {"a.weight": torch.ones(2, 3), "b.weight": torch.ones(4),
              "c.weight": torch.tensor([1.0, float("inf"), -float("inf"), float("nan")])}
    scores["b.weight"][1] = float("nan")
    with pytest.raises(ValueError, match=re.escape(
            "b.weight (1 NaN, 0 inf of 4 scores), c.weight (1 NaN, 2 inf of 4 scores)")):
        synflow.select(scores, 0.5)
    # float16 scores whose sum overflows are finite: accepted
    synflow.select({"w": torch.full((8,), 60000.0, dtype=torch.float16)}, 0.5)


def test_a_scorer_function_returning_nan_is_refused_naming_the_layer():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = copy.deepcopy(model.state_dict())

    def scorer(model, layers, weights, **_):
        scores = {name: w.abs() for name, w in weights.items()}
        scores["2.weight"] = scores["2.weight"].clone().fill_(float("nan"))
        return scores

    with pytest.raises(ValueError, match=re.escape("2.weight (8 NaN, 0 inf of 8 scores)")):
        synflow.prune(model, scorer, 2)
    assert list(model.state_dict()) == list(before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
