"""The pruning loop's SynFlow path (synflow.core.synflow_loop: scores and ranks the alive
weights only) keeps exactly the masks of a straightforward full ranking: every weight
scored by compute_scores on the masked model, the pruned ones excluded, a stable sort
(ties to the lowest position), the masks installed after every step.
"""

import itertools
import warnings

import pytest
import torch
from torch import nn

import synflow
from synflow.core.schedules import schedule_densities


def full_ranking(model, method, densities, *, input_shape, precision, scope, invert):
    """The loop written out plainly, one full ranking of every weight per step."""
    layers = synflow.prunable_layers(model)
    for density in densities:
        scores = synflow.compute_scores(model, method, input_shape=input_shape,
                                        precision=precision)
        alive = synflow.current_masks(model)
        groups = [list(layers)] if scope == "global" else [[name] for name in layers]
        new = {}
        for names in groups:
            flat = torch.cat([scores[n].flatten().double() for n in names])
            if invert:
                flat = -flat
            keep = torch.cat([alive[n].flatten() for n in names])
            size = flat.numel()
            target = round(size * density) if scope == "global" else max(1, round(size * density))
            flat[~keep] = -torch.inf
            order = torch.sort(-flat, stable=True).indices  # best first, ties by position
            chosen = torch.zeros(size, dtype=torch.bool)
            chosen[order[:min(target, int(keep.sum()))]] = True
            for n, part in zip(names, chosen.split([alive[n].numel() for n in names])):
                new[n] = part.view(alive[n].shape)
        synflow.apply_masks(model, new)
    return synflow.current_masks(model)


def tied_mlp():
    """Many exact ties: equal weights in every layer (every path scores the same)."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Linear(8, 3))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.5)
                m.bias.zero_()
        model[2].weight[:, :4] = 0.25  # two tie classes in the middle layer
    return model, (6,)


def small_vgg():
    return synflow.build_model("vgg11_bn", width=1 / 16, seed=1), (3, 32, 32)


def small_resnet():
    return synflow.build_model("resnet20", width=0.25, seed=0), (3, 8, 8)


@pytest.mark.parametrize("build", [tied_mlp, small_vgg, small_resnet])
@pytest.mark.parametrize("compression,iterations", [(3, 1), (10, 4), (50, 12)])
def test_synflow_masks_equal_a_full_ranking(build, compression, iterations):
    densities = schedule_densities(compression, iterations, "exponential")
    cases = [("synflow", "float64", "global", False), ("synflow", "float32", "global", False),
             ("synflow", "float64", "local", False), ("synflow", "float64", "global", True),
             ("synflow_l2", "float64", "global", False)]
    for method, precision, scope, invert in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, shape = build()
            ours = synflow.prune_through(model, method, densities, input_shape=shape,
                                         precision=precision, scope=scope, invert=invert)
            model, shape = build()
            plain = full_ranking(model, method, densities, input_shape=shape,
                                 precision=precision, scope=scope, invert=invert)
        assert list(ours) == list(plain)
        for name in plain:
            assert torch.equal(ours[name], plain[name]), (method, precision, scope, invert, name)


def test_synflow_path_continues_from_existing_masks_and_reports_each_step():
    model, shape = small_vgg()
    synflow.prune(model, "magnitude", 2)
    steps = []
    masks = synflow.prune(model, "synflow", 20, iterations=3, input_shape=shape,
                          callback=steps.append)
    plain_model, _ = small_vgg()
    synflow.prune(plain_model, "magnitude", 2)
    plain = full_ranking(plain_model, "synflow", schedule_densities(20, 3, "exponential"),
                         input_shape=shape, precision="float64", scope="global", invert=False)
    assert all(torch.equal(masks[k], plain[k]) for k in plain)
    assert [s.iteration for s in steps] == [1, 2, 3]
    for before, after in itertools.pairwise(steps):
        assert all(torch.equal(before.after[k], after.before[k]) for k in masks)
    last = steps[-1]
    assert all(torch.equal(last.after[k], masks[k]) for k in masks)
    # the recorded scores are every weight's, pruned ones scoring 0
    assert all(bool((last.scores[k][~last.before[k]] == 0).all()) for k in masks)
    assert all(last.scores[k].dtype == torch.float64 for k in masks)
