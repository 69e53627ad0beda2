"""synflow.core.scorers.erk: ERK random pruning; the data-free SynFlow-L2 score; inverted scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import synflow
from synflow.core.scorers import SCORERS
from synflow.core.scorers import erk as baselines
from synflow.experiments.store import RunConfig


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


@pytest.mark.parametrize("compression", [1, 1.0, 1 + 1e-9])
def test_erk_densities_at_compression_one_keep_everything(compression):
    densities = baselines.erk_densities(vgg(), compression)
    assert all(d == pytest.approx(1.0) and d <= 1 for d in densities.values())
    masks = synflow.prune(vgg(), "random_erk", compression, input_shape=(3, 32, 32))
    assert all(bool(m.all()) for m in masks.values())


@pytest.mark.parametrize("compression", [0.5, 0, -1, float("nan"), 10**9])
def test_erk_densities_reject_compressions_outside_the_range(compression):
    with pytest.raises(ValueError, match=r"compression must be in \[1, \d+\]"):
        baselines.erk_densities(vgg(), compression)


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


def erk_counts(masks):
    return {name: kept for name, (kept, _) in synflow.count_kept(masks).items()}


@pytest.mark.parametrize("iterations", [2, 5, 20])
def test_random_erk_in_several_iterations_ends_at_erk_densities(iterations):
    # each step ranks the alive weights only: the pruned ones must not take ranks (a
    # fresh order over every weight moved the survivors towards the smallest layers)
    single = erk_counts(synflow.prune(vgg(), "random_erk", 100, input_shape=(3, 32, 32)))
    iterated = erk_counts(synflow.prune(vgg(), "random_erk", 100, iterations=iterations,
                                        input_shape=(3, 32, 32), seed=3))
    expected = baselines.erk_densities(vgg(), 100)
    sizes = {name: m.numel() for name, m in synflow.current_masks(vgg()).items()}
    assert sum(iterated.values()) == sum(single.values())
    for name, kept in iterated.items():
        assert abs(kept - single[name]) <= 2 and abs(kept - expected[name] * sizes[name]) <= 2, name


def test_random_erk_on_a_pruned_model_keeps_erk_densities():
    model = vgg()
    synflow.prune(model, "random_erk", 2, input_shape=(3, 32, 32), seed=0)
    second = erk_counts(synflow.prune(model, "random_erk", 100, input_shape=(3, 32, 32),
                                      seed=1))
    once = erk_counts(synflow.prune(vgg(), "random_erk", 100, input_shape=(3, 32, 32)))
    assert all(abs(second[name] - once[name]) <= 2 for name in once), (second, once)


def test_random_erk_ranks_the_alive_weights_first_and_uniformly():
    alive = torch.zeros(1000, dtype=torch.bool)
    alive[::3] = True
    weight = torch.ones(20, 50)
    scores = baselines.random_erk_scores(None, None, {"w": weight}, alive={"w": alive.view(20, 50)},
                                         generator=torch.Generator().manual_seed(0))["w"].flatten()
    ranks = -scores * weight.numel() * baselines.erk_coefficient(weight.shape) - 0.5
    ranks = ranks.round().long()
    assert sorted(ranks.tolist()) == list(range(1000))
    assert sorted(ranks[alive].tolist()) == list(range(int(alive.sum())))
    # every weight alive: the plain permutation (the masks of single-step runs unchanged)
    everything = baselines.random_erk_scores(None, None, {"w": weight},
                                             generator=torch.Generator().manual_seed(0))["w"]
    plain = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).double()
    assert torch.equal(everything.flatten(), -(plain + 0.5) / (1000 * baselines.erk_coefficient((20, 50))))


def test_random_erk_compute_scores_ranks_a_pruned_models_alive_weights_first():
    model = vgg()
    masks = synflow.prune(model, "random_erk", 10, input_shape=(3, 32, 32))
    scores = synflow.compute_scores(model, "random_erk", seed=1)  # another order than the mask's
    pruned = [name for name, mask in masks.items() if not mask.all()]
    assert pruned
    for name in pruned:
        assert scores[name][masks[name]].min() > scores[name][~masks[name]].max(), name


def test_random_erk_refuses_local_scope_and_invert():
    with pytest.raises(ValueError, match="method 'random_erk' sets each layer's density through "
                                         "the global ranking, which scope='local', invert=False "
                                         "undoes.*use scope='global'"):
        synflow.prune(vgg(), "random_erk", 10, scope="local")
    for invert in (True, np.bool_(True)):  # checked as the flag it is read as
        with pytest.raises(ValueError, match="scope='global', invert=True undoes.*small layers"):
            synflow.prune(vgg(), "random_erk", 10, invert=invert)
    with pytest.raises(ValueError, match="RunConfig: method 'random_erk' sets each layer's"):
        RunConfig(model="vgg11", dataset="cifar10", pruner="random_erk", compression=10,
                  invert=True)
    with pytest.raises(ValueError, match="RunConfig: method 'random_erk' sets each layer's"):
        RunConfig(model="vgg11", dataset="cifar10", pruner="random_erk",
                                            compression=10, scope="local")
    synflow.prune(vgg(), "random", 10, scope="local")  # uniform per layer is "random"


def test_random_erk_is_registered():
    assert SCORERS["random_erk"] is baselines.random_erk_scores


def test_synflow_l2_scores_match_path_products_of_squared_weights():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 6, bias=False), nn.ReLU(), nn.Linear(6, 4, bias=False), nn.ReLU(),
        nn.Linear(4, 3, bias=False),
    )
    squares = [m.weight.detach().double() ** 2 for m in model if isinstance(m, nn.Linear)]
    # score of W_l[i, j] = (1^T M_L .. M_l+1)_i * M_l[i, j] * (M_l-1 .. M_1 1)_j, M = W o W
    expected = {}
    for depth, name in enumerate(["0.weight", "2.weight", "4.weight"]):
        below = torch.ones(5, dtype=torch.float64)
        for m in squares[:depth]:
            below = m @ below
        above = torch.ones(3, dtype=torch.float64)
        for m in reversed(squares[depth + 1:]):
            above = above @ m
        expected[name] = above[:, None] * squares[depth] * below[None, :]
    scores = synflow.compute_scores(model, "synflow_l2", input_shape=(5,))
    for name, value in expected.items():
        assert torch.allclose(scores[name].double(), value, rtol=1e-5), name
    masks = synflow.prune(model, "synflow_l2", 10, iterations=5, input_shape=(5,))
    assert synflow.compression_of(masks) == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("iterations", [1, 3])
def test_inverted_scores_keep_the_lowest_even_when_they_are_zero(iterations):
    # alive weights scoring exactly 0 are the lowest scores: inversion must keep them
    # first (the authors' 1/score inversion turned them into NaN)
    model = vgg()
    layers = synflow.prunable_layers(model)
    with torch.no_grad():
        for module in layers.values():
            module.weight.view(-1)[::7] = 0.0
    flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
    k = round(flat.numel() / 10)
    order = torch.sort(flat, stable=True).indices[:k]  # lowest first, ties to the lowest index
    expected = torch.zeros(flat.numel(), dtype=torch.bool)
    expected[order] = True
    masks = synflow.prune(model, "magnitude", 10, iterations=iterations, invert=True)
    assert torch.equal(torch.cat([m.flatten() for m in masks.values()]), expected)
    for module in layers.values():
        assert torch.isfinite(module.weight).all()


@pytest.mark.parametrize("method", ["synflow", "magnitude"])
def test_inverted_iterative_pruning_keeps_exact_counts(method):
    model = vgg()
    masks = synflow.prune(model, method, 10, iterations=3, invert=True, input_shape=(3, 32, 32))
    assert sum(int(m.sum()) for m in masks.values()) == round(
        sum(m.numel() for m in masks.values()) / 10)
    assert not math.isnan(synflow.compression_of(masks))
