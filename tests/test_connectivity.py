"""What ``prune`` says about the paths its masks leave (synflow.core.paths.warn_cut): a
DisconnectedWarning when they cut every input-output path without emptying a layer (a
mask that disconnects the net is meaningless, and single-shot magnitude, SNIP and random
reach one on CIFAR VGG-16 within the paper's range of compressions with every layer still
holding weights), and whether paths remain when layers are empty."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import synflow
from synflow.core.paths import DisconnectedWarning, input_output_paths, paths_remain, warn_cut
from synflow.core.scorers.inputs import InputShapeError

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
    assert [category for category, _ in caught] == [DisconnectedWarning]
    assert caught[0][1].startswith("the masks cut every input-output path without emptying")
    assert "input shape (3,)" in caught[0][1]
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
    assert "and no input-output path is left" in caught[0][1]


def test_the_shape_comes_from_float_data_and_integer_data_is_not_guessed_at():
    net = mlp(CUT)
    layers = synflow.prunable_layers(net)
    cut = {name: layer.weight == 1.0 for name, layer in layers.items()}
    floats = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    _, caught = caught_warnings(lambda: warn_cut(net, layers, cut, None, floats))
    assert len(caught) == 1
    indices = [(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))]
    _, caught = caught_warnings(lambda: warn_cut(net, layers, cut, None, indices))
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
    masks, caught = caught_warnings(lambda: synflow.prune(build(), "magnitude", 2,
                                                          input_shape=(3,)))
    assert caught == [] and synflow.compression_of(masks) == 2


class Residual(nn.Module):
    """stem -> x + branch(x) -> head, all bias-free Linear layers of width 2."""

    def __init__(self):
        super().__init__()
        self.stem, self.head = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
        self.branch = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(),
                                    nn.Linear(2, 2, bias=False))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.head(x + self.branch(x))


def test_with_a_layer_empty_the_collapse_warning_says_whether_paths_remain():
    net = Residual()
    layers = synflow.prunable_layers(net)
    masks = {name: torch.ones_like(layer.weight, dtype=torch.bool)
             for name, layer in layers.items()}
    masks["branch.0.weight"][:] = False  # the skip bypasses the empty layer
    _, caught = caught_warnings(lambda: warn_cut(net, layers, masks, (2,)))
    assert len(caught) == 1 and "yet input-output paths remain" in caught[0][1]
    masks["head.weight"][:, :] = torch.tensor([[True, False]])
    masks["stem.weight"][:] = torch.tensor([[False, False], [True, True]])  # feeds unit 1
    _, caught = caught_warnings(lambda: warn_cut(net, layers, masks, (2,)))
    assert len(caught) == 1 and "and no input-output path is left" in caught[0][1]
    assert caught[0][0] is synflow.LayerCollapseWarning


class Gain(nn.Module):
    """Multiplies by a learned gain (not a bias: the pass takes its absolute value)."""

    def __init__(self, gain):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(gain, dtype=torch.float64))

    def forward(self, x):
        return x * self.gain


def test_a_count_past_float64s_range_neither_hides_a_cut_nor_turns_to_nan():
    net = nn.Sequential(nn.Linear(3, 4, bias=False), Gain(1e200), nn.ReLU(),
                        nn.Linear(4, 3, bias=False), Gain(1e200), nn.ReLU(),
                        nn.Linear(3, 2, bias=False))
    layers = synflow.prunable_layers(net)
    dense = {name: torch.ones_like(layer.weight) for name, layer in layers.items()}
    assert input_output_paths(net, dense, (3,)) == float("inf")
    cut = {name: mask.clone() for name, mask in dense.items()}
    cut["3.weight"][1:] = 0  # only unit 0 goes on, with a count past 1e308
    cut["6.weight"][:] = torch.tensor([[0, 1, 0], [0, 0, 0]])  # and nothing reads it
    assert input_output_paths(net, cut, (3,)) == 0  # not inf * 0 = NaN
    _, caught = caught_warnings(lambda: warn_cut(net, layers, cut, (3,)))
    assert [category for category, _ in caught] == [DisconnectedWarning]


def test_a_given_input_shape_the_model_cannot_take_is_an_error_and_changes_nothing():
    net = mlp(CUT)
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    with pytest.raises(InputShapeError, match=r"inputs of shape \(4,\)"):
        synflow.prune(net, "magnitude", 10, input_shape=(4,))
    after = net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


class Noisy(nn.Module):
    """A forward that draws random numbers and returns a tuple."""

    def __init__(self):
        super().__init__()
        self.body = mlp(CUT)

    def forward(self, x):
        return self.body(x + 0 * torch.rand(x.shape, dtype=x.dtype)), "extra"


def test_the_check_keeps_the_random_state_and_reads_tuples():
    torch.manual_seed(0)
    _, caught = caught_warnings(lambda: synflow.prune(Noisy(), "magnitude", 10,
                                                          input_shape=(3,)))
    drawn = torch.rand(1)
    torch.manual_seed(0)
    Noisy()
    assert torch.equal(drawn, torch.rand(1))
    assert [category for category, _ in caught] == [DisconnectedWarning]


def sigmoid_net(width):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.Sigmoid(), nn.Linear(width, width),
                         nn.Sigmoid(), nn.Linear(width, 2))


def test_sigmoids_and_thresholds_are_not_judged():
    # sigmoid(0) = 0.5 feeds every unit on the all-zeros pass; rescaled below 1, the gap
    # between the passes falls under float64's precision in a deep net, unscaled a unit
    # summing a hundred of them rounds to 1.0: either looks disconnected when it is not
    torch.manual_seed(0)
    deep = nn.Sequential(*[module for _ in range(40)
                           for module in (nn.Linear(16, 16, bias=False), nn.Sigmoid())])
    with torch.no_grad():
        for layer in deep[::2]:
            layer.weight.normal_(0, 3)
    shrink = nn.Sequential(nn.Linear(3, 4), nn.Softshrink(0.9), nn.Linear(4, 2))  # zeroes < 0.9
    for net, shape in ((sigmoid_net(200), (3,)), (deep, (16,)), (shrink, (3,))):
        masks, caught = caught_warnings(lambda net=net, shape=shape: synflow.prune(
            net, "magnitude", 1.5, input_shape=shape))
        assert caught == [] and not synflow.empty_layers(masks)
    with pytest.raises(ValueError, match="Sigmoid"):
        input_output_paths(sigmoid_net(4), input_shape=(3,))


def test_samples_of_one_number_are_not_judged_and_snip_still_prunes():
    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(1, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x.unsqueeze(1))))

    data = [(torch.randn(16), torch.randint(0, 2, (16,)))]
    masks = synflow.prune(Scalar(), "snip", 4, data=data)
    assert sum(int(mask.sum()) for mask in masks.values()) == 6  # round(24 / 4)


def test_a_torch_pruned_batchnorm_weight_is_read_as_its_mask():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    torch.nn.utils.prune.custom_from_mask(net[1], "weight", torch.tensor([1.0, 0, 0, 0]))
    layers = synflow.prunable_layers(net)
    masks = {name: torch.ones_like(layer.weight, dtype=torch.bool)
             for name, layer in layers.items()}
    assert input_output_paths(net, masks, (3, 6, 6)) > 0
    masks["3.weight"][:, 0] = False  # nothing reads the one channel BatchNorm lets through
    assert input_output_paths(net, masks, (3, 6, 6)) == 0
    _, caught = caught_warnings(lambda: warn_cut(net, layers, masks, (3, 6, 6)))
    assert [category for category, _ in caught] == [DisconnectedWarning]


def test_the_check_leaves_pythons_once_per_location_record_alone():
    def warn_once_then_prune():
        for _ in range(2):
            warnings.warn("shown once", UserWarning)  # one location: "default" shows it once
            synflow.prune(mlp(LINKED), "magnitude", 10, input_shape=(3,))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warn_once_then_prune()
    assert [str(w.message) for w in caught] == ["shown once"]


def test_paths_remain_answers_as_the_warning_decides_and_none_where_it_does_not_judge():
    linked, cut = mlp(LINKED), mlp(CUT)
    synflow.prune(linked, "magnitude", 10, input_shape=(3,))
    with pytest.warns(DisconnectedWarning):
        synflow.prune(cut, "magnitude", 10, input_shape=(3,))
    assert paths_remain(linked, input_shape=(3,)) is True  # the installed masks
    assert paths_remain(cut, input_shape=(3,)) is False
    assert paths_remain(mlp(CUT), synflow.current_masks(cut), (3,)) is False  # given masks
    shrink = nn.Sequential(nn.Linear(3, 4), nn.Softshrink(0.9), nn.Linear(4, 2))
    assert paths_remain(shrink, input_shape=(3,)) is None
    assert paths_remain(sigmoid_net(4), input_shape=(3,)) is None
    with pytest.raises(KeyError, match="no mask for the prunable weight"):
        paths_remain(mlp(CUT), {"0.weight": torch.ones(4, 3)}, (3,))
    with pytest.raises(InputShapeError):
        paths_remain(mlp(CUT), None, (5,))


def test_paths_remain_raises_when_the_passes_run_out_of_memory(monkeypatch):
    from synflow.core import paths

    def no_memory(*args):
        raise MemoryError

    monkeypatch.setattr(paths, "_connected", no_memory)  # not "undecided": an error
    with pytest.raises(MemoryError):
        paths_remain(mlp(CUT), None, (3,))
