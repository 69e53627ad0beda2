"""synflow.baselines: ERK random pruning; the data-free SynFlow-L2 score; inverted scores."""

from __future__ import annotations

import math

import pytest
import torch

import synflow
from synflow import baselines
from synflow.scores import SCORERS


def vgg(seed=0):
    return synflow.build_model("vgg11", width=0.125, seed=seed)


def test_erk_coefficient_follows_the_formula():
    assert baselines.erk_coefficient((10, 20)) == pytest.approx((10 + 20) / (10 * 20))
    assert baselines.erk_coefficient((8, 4, 3, 3)) == pytest.approx((8 + 4 + 3 + 3) / (8 * 4 * 9))
    with pytest.raises(ValueError, match="rank >= 2"):
        baselines.erk_coefficient((5,))


@pytest.mark.parametrize("compression", [2, 10, 100])
def test_erk_densities_sum_to_the_target_and_follow_the_formula(compression):
    model = vgg()
    masks = synflow.current_masks(model)
    densities = baselines.erk_densities(model, compression)
    total = sum(m.numel() for m in masks.values())
    kept = sum(densities[n] * m.numel() for n, m in masks.items())
    assert kept == pytest.approx(total / compression)
    assert all(0 < d <= 1 for d in densities.values())
    free = [n for n, d in densities.items() if d < 1]
    ratios = [densities[n] / baselines.erk_coefficient(masks[n].shape) for n in free]
    assert max(ratios) == pytest.approx(min(ratios))  # the same eps for every uncapped layer


def test_erk_caps_dense_layers_and_redistributes():
    densities = baselines.erk_densities(vgg(), 2)
    assert densities["features.0.weight"] == 1.0  # the 3-channel first conv is kept whole
    assert any(d < 1 for d in densities.values())


@pytest.mark.parametrize("compression", [10, 100])
def test_random_erk_pruning_keeps_erk_counts_exactly(compression):
    model = vgg()
    expected = baselines.erk_densities(model, compression)
    masks = synflow.prune(model, "random_erk", compression, input_shape=(3, 32, 32), seed=1)
    counts = synflow.count_kept(masks)
    total = sum(n for _, n in counts.values())
    assert sum(k for k, _ in counts.values()) == round(total / compression)
    for name, (kept, size) in counts.items():
        assert abs(kept - expected[name] * size) <= 1.5, name
    other = synflow.prune(vgg(), "random_erk", compression, input_shape=(3, 32, 32), seed=2)
    assert any(not torch.equal(masks[n], other[n]) for n in masks)  # positions are random


def test_random_erk_is_registered():
    assert SCORERS["random_erk"] is baselines.random_erk_scores


def test_synflow_l2_scores_use_squared_weights():
    model = synflow.build_model("mlp", input_shape=(1, 4, 4), width=0.1, seed=0)
    l1 = synflow.compute_scores(model, "synflow", input_shape=(1, 4, 4))
    l2 = synflow.compute_scores(model, "synflow_l2", input_shape=(1, 4, 4))
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in l2.values())
    assert any(not torch.allclose(l1[n], l2[n]) for n in l1)
    # theta^2: every layer's total is R of the squared net (conservation, no biases counted)
    masks = synflow.prune(model, "synflow_l2", 10, iterations=5, input_shape=(1, 4, 4))
    assert synflow.compression_of(masks) == pytest.approx(10, rel=0.01)


@pytest.mark.parametrize("method", ["magnitude", "synflow", "random_erk"])
def test_inverted_scores_give_exact_masks_without_nan(method):
    model = vgg()
    masks = synflow.prune(model, method, 10, invert=True, input_shape=(3, 32, 32))
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert kept == round(total / 10)
    for module in synflow.prunable_layers(model).values():
        assert torch.isfinite(module.weight).all()
    scores = synflow.compute_scores(model, method, input_shape=(3, 32, 32))
    assert all(not torch.isnan(-s).any() for s in scores.values())
    assert not math.isnan(synflow.compression_of(masks))
