"""Theorems 1-2 of the paper as explicit float64 sums over SynFlow's scores.

For a ReLU net with zero (or absent) biases and eval-mode BatchNorm at init,
every hidden unit's incoming total score equals its outgoing total score, and
every layer (a cut between input and output) carries the same total, R_SF.
"""

import pytest
import torch
from torch import nn

import synflow
from synflow.core.scorers.synflow import synflow_pass

RELATIVE = 1e-10


def float64_synflow(model, input_shape):
    layers = synflow.prunable_layers(model)
    weights = {name: synflow.core.masks.effective_weight(m) for name, m in layers.items()}
    R, scores = synflow_pass(model, layers, weights, input_shape, torch.float64)
    return float(R), list(scores.values())


def unit_totals(score, incoming):
    """Per unit (output row / output channel, or input column / input channel)."""
    dims = [d for d in range(score.dim()) if d != (0 if incoming else 1)]
    return score.sum(dim=dims)


def assert_conserved(R, scores):
    for layer, score in enumerate(scores):
        assert abs(float(score.sum()) - R) <= RELATIVE * R, f"layer {layer} total != R"
    for layer in range(len(scores) - 1):
        incoming = unit_totals(scores[layer], incoming=True)
        outgoing = unit_totals(scores[layer + 1], incoming=False)
        assert incoming.shape == outgoing.shape
        assert torch.all((incoming - outgoing).abs() <= RELATIVE * R), f"units of layer {layer}"


def test_bias_free_mlp_conserves_synflow_per_unit_and_per_layer():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(20, 30, bias=False),
        nn.ReLU(),
        nn.Linear(30, 25, bias=False),
        nn.ReLU(),
        nn.Linear(25, 5, bias=False),
    )
    R, scores = float64_synflow(model, (20,))
    assert_conserved(R, scores)


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn", "vgg16_bn"])
def test_vgg_at_init_conserves_synflow_per_channel_and_per_layer(name):
    model = synflow.build_model(name, width=0.25, seed=0)
    R, scores = float64_synflow(model, (3, 32, 32))
    assert len(scores) == {"vgg11": 9, "vgg11_bn": 9, "vgg16_bn": 14}[name]
    assert_conserved(R, scores)


def test_conservation_holds_after_pruning_too():
    model = synflow.build_model("vgg11_bn", width=0.25, seed=0)
    synflow.prune(model, "synflow", 100, iterations=10, input_shape=(3, 32, 32))
    R, scores = float64_synflow(model, (3, 32, 32))
    assert_conserved(R, scores)


def test_the_check_detects_a_non_conserving_net():
    """Negative control: tanh is not homogeneous, so the same sums must differ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30, bias=False), nn.Tanh(), nn.Linear(30, 5, bias=False))
    R, scores = float64_synflow(model, (20,))
    with pytest.raises(AssertionError):
        assert_conserved(R, scores)
