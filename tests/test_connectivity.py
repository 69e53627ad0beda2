"""The warning ``prune`` gives when its masks cut every input-output path without
emptying a layer (synflow.core.paths.warn_disconnected): a mask that disconnects the net
is meaningless, and single-shot magnitude, SNIP and random reach one on CIFAR VGG-16 within
the paper's range of compressions with every layer still holding weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import synflow
from synflow.core.paths import warn_disconnected

CUT = [(0, 0), (0, 1), (0, 0)]  # layer 0 feeds unit 0, layer 1 reads unit 1: no path
LINKED = [(0, 0), (0, 0), (0, 0)]  # unit 0 all the way: one path


def mlp(kept):
    """A bias-free 3-4-3-2 ReLU chain (30 weights) whose three largest weights are
    ``kept[l]`` of layer l, so magnitude at compression 10 keeps exactly those."""
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False),
                        nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        for layer, position in zip(net[::2], kept):
            layer.weight.fill_(0.01)
            layer.weight[position] = 1.0
    return net


def caught_warnings(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [(w.category, str(w.message)) for w in caught]


def test_prune_warns_when_the_masks_cut_every_path_with_no_layer_empty():
    masks, caught = caught_warnings(lambda: synflow.prune(mlp(CUT), "magnitude", 10,
                                                          input_shape=(3,)))
    assert not synflow.empty_layers(masks)
    assert [category for category, _ in caught] == [synflow.LayerCollapseWarning]
    assert caught[0][1].startswith("the masks cut every input-output path without emptying")
    _, caught = caught_warnings(lambda: synflow.prune(mlp(LINKED), "magnitude", 10,
                                                      input_shape=(3,)))
    assert caught == []


def test_as_an_error_the_model_is_left_as_it_was():
    net = mlp(CUT)
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", synflow.LayerCollapseWarning)
        with pytest.raises(synflow.LayerCollapseWarning, match="cut every input-output path"):
            synflow.prune(net, "magnitude", 10, input_shape=(3,))
    after = net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_an_empty_layer_gets_the_collapse_warning_alone():
    net = mlp(LINKED)
    with torch.no_grad():
        net[2].weight.fill_(0.001)  # the smallest layer: magnitude empties it
    _, caught = caught_warnings(lambda: synflow.prune(net, "magnitude", 10, input_shape=(3,)))
    assert len(caught) == 1 and caught[0][1].startswith("the masks prune every weight of 1")


def test_the_shape_comes_from_float_data_and_integer_data_is_not_guessed_at():
    net = mlp(CUT)
    layers = synflow.prunable_layers(net)
    cut = {name: layer.weight == 1.0 for name, layer in layers.items()}
    floats = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    _, caught = caught_warnings(lambda: warn_disconnected(net, layers, cut, None, floats))
    assert len(caught) == 1
    indices = [(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))]
    _, caught = caught_warnings(lambda: warn_disconnected(net, layers, cut, None, indices))
    assert caught == []


class Float32Head(nn.Module):
    """A forward that casts to float32 of its own: the float64 path pass cannot run it."""

    def __init__(self):
        super().__init__()
        self.body = mlp(CUT)

    def forward(self, x):
        return self.body(x.float())


@pytest.mark.parametrize("build", [
    lambda: nn.Sequential(mlp(CUT), nn.LayerNorm(2)),  # any mask would look disconnected
    Float32Head,  # the pass raises
], ids=["layer-norm", "float32-forward"])
def test_where_the_count_means_nothing_prune_is_silent_and_succeeds(build):
    masks, caught = caught_warnings(lambda: synflow.prune(build(), "magnitude", 10,
                                                          input_shape=(3,)))
    assert caught == [] and synflow.compression_of(masks) == 10
