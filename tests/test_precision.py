"""SynFlow's precision: float64 by default (the oracle), float32 only when asked.

The oracle here is independent of synflow.core.scorers.synflow: a float64 deep copy of the
model with every parameter replaced by its absolute value, differentiated by plain
autograd (no functional call, no shared helper).
"""

import copy
import math

import pytest
import torch
from torch import nn

import synflow
from synflow import analysis
from synflow.core.scorers import synflow as pathscores

SHAPE = (3, 16, 16)


def vgg(init: str, seed: int) -> nn.Module:
    """A small CIFAR VGG-16 (with BatchNorm), initialised by us or drawn differently."""
    model = synflow.build_model("vgg16_bn", width=1 / 16, input_shape=SHAPE, seed=seed)
    layers = synflow.prunable_layers(model).values()
    with torch.no_grad():
        if init == "independent":  # same law (Kaiming normal, fan-in), another generator
            generator = torch.Generator().manual_seed(1000 + seed)
            for m in layers:
                m.weight.normal_(0, math.sqrt(2 / m.weight[0].numel()), generator=generator)
        elif init == "default":  # PyTorch's own reset_parameters
            torch.manual_seed(seed)
            for m in layers:
                m.reset_parameters()
    return model


def oracle_scorer(model, layers, weights, *, input_shape, **_):
    """SynFlow in float64 on a deep copy: |params|, eval mode, all-ones input."""
    copy_ = copy.deepcopy(model).double().eval()
    leaves = {}
    with torch.no_grad():
        for p in copy_.parameters():
            p.abs_()
    for name, module in synflow.prunable_layers(copy_).items():
        leaf = weights[name].detach().double().abs().requires_grad_(True)
        del module.weight
        module.weight = leaf
        leaves[name] = leaf
    copy_(torch.ones(1, *input_shape, dtype=torch.float64)).sum().backward()
    return {name: (leaf.grad * leaf).detach() for name, leaf in leaves.items()}


def test_default_scores_are_float64_and_equal_the_oracle():
    model = vgg("ours", 0)
    ours = synflow.compute_scores(model, "synflow", input_shape=SHAPE)
    layers = synflow.prunable_layers(model)
    oracle = oracle_scorer(model, layers, {n: m.weight for n, m in layers.items()},
                           input_shape=SHAPE)
    for name, expected in oracle.items():
        assert ours[name].dtype == torch.float64
        torch.testing.assert_close(ours[name], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("init,seed", [("ours", s) for s in range(4)]
                         + [("independent", s) for s in range(4)]
                         + [("default", s) for s in range(2)])
def test_default_masks_equal_the_float64_oracle_at_half_rho_max(init, seed):
    # rho_max / 2 with 100 iterations: a few dozen weights stay, many of them near-ties
    rho = analysis.max_compression(vgg(init, seed)) / 2
    densities = synflow.core.schedules.schedule_densities(rho, 100, "exponential")
    ours = synflow.prune(vgg(init, seed), "synflow", rho, iterations=100, input_shape=SHAPE)
    oracle = synflow.prune_through(vgg(init, seed), oracle_scorer, densities, input_shape=SHAPE)
    assert all(torch.equal(ours[k], oracle[k]) for k in oracle), (init, seed)


def count_passes(monkeypatch):
    """The dtype of every SynFlow pass (path_gradients: the pass of compute_scores and
    of the pruning loop alike)."""
    dtypes = []
    original = pathscores.path_gradients

    def counting(*args, **kwargs):
        R, grads = original(*args, **kwargs)
        dtypes.append(R.dtype)
        return R, grads

    monkeypatch.setattr(pathscores, "path_gradients", counting)
    return dtypes


def test_float32_is_opt_in_and_falls_back_to_float64_out_of_range(monkeypatch):
    dtypes = count_passes(monkeypatch)
    small = vgg("ours", 0)
    scores = synflow.compute_scores(small, "synflow", input_shape=SHAPE, precision="float32")
    assert dtypes == [torch.float32] and all(s.dtype == torch.float32 for s in scores.values())
    dtypes.clear()
    synflow.prune(vgg("ours", 0), "synflow", 10, iterations=3, input_shape=SHAPE)
    assert dtypes == [torch.float64] * 3
    dtypes.clear()
    synflow.prune(vgg("ours", 0), "synflow_l2", 10, iterations=2, input_shape=SHAPE,
                  precision="float32")
    assert dtypes == [torch.float32] * 2
    # R of ResNet-110 at init overflows float32: the float32 pass is redone in float64
    dtypes.clear()
    deep = synflow.build_model("resnet110", width=0.25, seed=0)
    scores = synflow.compute_scores(deep, "synflow", input_shape=(3, 8, 8), precision="float32")
    assert dtypes == [torch.float32, torch.float64]
    assert all(torch.isfinite(s).all() and s.dtype == torch.float64 for s in scores.values())


def test_synflow_iterations_use_the_precision_asked(monkeypatch):
    dtypes = count_passes(monkeypatch)
    analysis.synflow_iterations(vgg("ours", 0), [0.5, 0.25], SHAPE)
    assert dtypes == [torch.float64] * 2
    dtypes.clear()
    analysis.synflow_iterations(vgg("ours", 0), [0.5, 0.25], SHAPE, precision="float32")
    assert dtypes == [torch.float32] * 2


def test_bad_precision_is_refused_by_name():
    model = vgg("ours", 0)
    with pytest.raises(ValueError, match="precision must be one of 'float64', 'float32'.*'half'"):
        synflow.prune(model, "synflow", 10, input_shape=SHAPE, precision="half")
    with pytest.raises(ValueError, match="precision 'float32' is for the SynFlow passes.*'snip'"):
        synflow.compute_scores(model, "snip", data=[(torch.randn(2, *SHAPE), torch.tensor([0, 1]))],
                               precision="float32")
    with pytest.raises(ValueError, match="precision must be one of"):
        analysis.synflow_iterations(model, [0.5], SHAPE, precision=torch.float32)
    assert not any(synflow.core.masks.is_masked(m) for m in synflow.prunable_layers(model).values())
