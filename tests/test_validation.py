"""Range checks: bad values raise a clear error naming the value and what is allowed
(issue 11, items 8 and 10)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import synflow
from synflow.core.schedules import density_after
from synflow.experiments import store


def tiny_cnn():
    return synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)


def scores_of(model):
    return synflow.compute_scores(model, "magnitude")


@pytest.mark.parametrize("density", [-1, 0, 0.0, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_select_refuses_densities_outside_zero_one(density):
    model = tiny_cnn()
    with pytest.raises(ValueError, match=r"density must be .*\(0, 1\].*got"):
        synflow.select(scores_of(model), density)


@pytest.mark.parametrize("density", [1, 1.0, 0.25, np.float64(0.5), 1e-3])  # 1e-9 keeps none: refused
def test_select_accepts_densities_in_zero_one(density):
    model = tiny_cnn()
    masks = synflow.select(scores_of(model), density)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(total * float(density))


@pytest.mark.parametrize("compression", [0.5, 0, -3, float("nan"), float("inf"), True])
def test_density_after_refuses_compressions_below_one(compression):
    with pytest.raises(ValueError, match=r"compression must be a finite number >= 1, got"):
        density_after(1, 10, compression, "exponential")


def test_density_after_checks_its_counts():
    assert density_after(5, 10, 100, "exponential") == pytest.approx(0.1)
    assert density_after(10, 10, 100, "linear") == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"iteration must be an integer in \[0, 10\], got 11"):
        density_after(11, 10, 100, "linear")
    with pytest.raises(ValueError, match="iterations must be a plain integer >= 1, got True"):
        density_after(1, True, 100, "linear")


@pytest.mark.parametrize("iterations", [True, False, 2.0, 0, -1, "3"])
def test_prune_refuses_iterations_that_are_not_a_plain_int(iterations):
    with pytest.raises(ValueError, match=rf"iterations must be .*integer >= 1, got {iterations!r}"):
        synflow.prune(tiny_cnn(), "synflow", 10, iterations=iterations, input_shape=(3, 8, 8))


def test_prune_accepts_numpy_integers_for_iterations():
    masks = synflow.prune(tiny_cnn(), "magnitude", 10, iterations=np.int64(2))
    assert synflow.compression_of(masks) == pytest.approx(10, rel=0.05)


def test_run_config_refuses_a_bool_for_iterations():
    with pytest.raises(ValueError, match="iterations True is not allowed"):
        store.RunConfig("vgg11_bn", "cifar10", pruner="synflow", compression=10, iterations=True)


@pytest.mark.parametrize("method", ["synflow", "synflow_l2"])
@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 3, 8, 8), (5, 8, 8)])
def test_a_wrong_input_shape_names_the_expected_one(method, shape):
    expected = r"inputs of shape .* 3 input channels: input_shape=\(3, H, W\)"
    with pytest.raises(ValueError, match=expected):
        synflow.prune(tiny_cnn(), method, 10, input_shape=shape)


@pytest.mark.parametrize("method", ["synflow", "snip"])
def test_a_channels_last_input_is_named_as_such(method):
    data = [(torch.randn(4, 8, 8, 3), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) looks channels-last.*try \(3, 8, 8\)"):
        synflow.prune(tiny_cnn(), method, 10, data=data)


def test_a_last_dimension_that_is_not_the_channels_is_not_called_channels_last():
    with pytest.raises(ValueError, match=r"inputs of shape \(5, 4, 4\)") as error:
        synflow.prune(tiny_cnn(), "synflow", 10, input_shape=(5, 4, 4))  # 3 channels expected
    assert "channels-last" not in str(error.value)


def test_a_wrong_input_shape_for_an_mlp_names_the_features():
    model = synflow.build_model("mlp", input_shape=(1, 28, 28), width=0.1, seed=0)
    with pytest.raises(ValueError, match=r"\(1, 32, 32\).*784 input features"):
        synflow.prune(model, "synflow", 10, input_shape=(1, 32, 32))


@pytest.mark.parametrize("shape", [(3, 10, 10), (3, 2, 2)])
def test_a_shape_the_first_layer_takes_does_not_blame_its_channels(shape):
    """(3, 10, 10) flattens to 256, not the Linear's 144; (3, 2, 2) is smaller than the
    3x3 kernel: the first layer gets the 3 channels it expects, so they are not blamed."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    with pytest.raises(ValueError, match=rf"{re.escape(str(shape))}.*the first prunable layer, "
                                         r"gets the 3 input channels it expects; the clash is "
                                         r"elsewhere") as error:
        synflow.prune(model, "synflow", 10, input_shape=shape)
    assert "expects 3 input channels" not in str(error.value)


def test_wrong_data_for_snip_names_the_expected_shape():
    data = [(torch.randn(4, 8, 8, 3), torch.zeros(4, dtype=torch.long))]  # channels last
    with pytest.raises(ValueError, match=r"\(8, 8, 3\).*3 input channels"):
        synflow.prune(tiny_cnn(), "snip", 10, data=data)


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_an_input_shape_other_than_the_datas_is_refused(method):
    data = [(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))]
    model = tiny_cnn()
    with pytest.raises(ValueError, match=rf"input_shape \(3, 32, 32\) does not match the "
                                         rf"data's inputs \(3, 8, 8\): {method} takes"):
        synflow.prune(model, method, 10, data=data, input_shape=(3, 32, 32))
    assert not synflow.current_masks(model)["0.weight"].logical_not().any()  # left as it was
    synflow.prune(model, method, 10, data=data, input_shape=(3, 8, 8))  # the same: fine


@pytest.mark.parametrize("shape", [(0, 8, 8), (3, -8, 8), (3.0, 8, 8), (), (True, 8, 8)])
def test_input_shape_must_be_positive_integers(shape):
    with pytest.raises(ValueError, match="input_shape must be one sample's shape.*got"):
        synflow.prune(tiny_cnn(), "synflow", 10, input_shape=shape)


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1), (64, 64, 4)])
def test_build_model_refuses_channels_last(shape):
    with pytest.raises(ValueError, match=r"looks channels-last .*\(C, H, W\)"):
        synflow.build_model("vgg11_bn", input_shape=shape, width=0.125)


@pytest.mark.parametrize("shape", [(32, 32), (1, 3, 32, 32), (0, 32, 32), (3, 32.0, 32)])
def test_build_model_refuses_shapes_that_are_not_c_h_w(shape):
    with pytest.raises(ValueError, match=r"input_shape .*\(3, 32, 32\).*got"):
        synflow.build_model("resnet20", input_shape=shape, width=0.25)


def test_build_model_accepts_valid_shapes():
    assert synflow.build_model("vgg11_bn", input_shape=(1, 28, 28), width=0.125)
    assert synflow.build_model("mlp", input_shape=(28, 28, 1), width=0.1)  # flattened anyway
    model = synflow.build_model("conv", input_shape=np.array([3, 8, 8]), width=0.25)
    assert isinstance(model[0], nn.Conv2d) and model[0].in_channels == 3


# ------------------------- one rule for numbers in every argument (issue 19, item 19)

NUMBERS = [np.float64(10), np.int64(10), np.float32(10), torch.tensor(10.0), torch.tensor(10),
           np.array(10.0)]


def random_masks(**kwargs):
    return synflow.prune(tiny_cnn(), "random", **{"compression": 10, **kwargs})


@pytest.mark.parametrize("number", NUMBERS, ids=repr)
def test_numpy_numbers_and_0d_tensors_are_the_number_they_hold(number):
    reference = random_masks(compression=10, iterations=3, seed=1)
    masks = random_masks(compression=number, iterations=3, seed=1)
    assert all(torch.equal(masks[k], reference[k]) for k in reference)
    scores = scores_of(tiny_cnn())
    expected = synflow.select(scores, 0.25)
    assert all(torch.equal(m, expected[k]) for k, m in synflow.select(scores, number / 40).items())
    assert density_after(1, 2, number, "exponential") == density_after(1, 2, 10, "exponential")


@pytest.mark.parametrize("name, value", [
    ("iterations", np.int64(3)), ("iterations", np.int32(3)), ("iterations", torch.tensor(3)),
    ("seed", np.int64(1)), ("seed", torch.tensor(1)), ("seed", np.uint8(1)),
])
def test_integer_arguments_take_numpy_integers_and_0d_integer_tensors(name, value):
    reference = random_masks(iterations=3, seed=1)
    masks = random_masks(**{"iterations": 3, "seed": 1, name: value})
    assert all(torch.equal(masks[k], reference[k]) for k in reference)


def test_every_other_numeric_argument_takes_them_too():
    data = [(torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(6))]
    reference = synflow.compute_scores(tiny_cnn(), "grasp", data=data, temperature=100)
    scores = synflow.compute_scores(tiny_cnn(), "grasp", data=data, temperature=np.float64(100),
                                    input_shape=None)
    assert all(torch.equal(scores[k], reference[k]) for k in reference)
    masks = synflow.prune_through(tiny_cnn(), "magnitude", [np.float64(0.5), torch.tensor(0.25)])
    expected = synflow.prune_through(tiny_cnn(), "magnitude", [0.5, 0.25])
    assert all(torch.equal(masks[k], expected[k]) for k in expected)
    shape = (np.int64(3), torch.tensor(8), 8)
    masks = synflow.prune(tiny_cnn(), "synflow", 10, input_shape=shape)
    expected = synflow.prune(tiny_cnn(), "synflow", 10, input_shape=(3, 8, 8))
    assert all(torch.equal(masks[k], expected[k]) for k in expected)


REFUSED = ["10", b"10", torch.tensor([10.0]), np.array([10.0]), True, np.bool_(True), 10 + 0j,
           None, torch.tensor(True)]


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_strings_bools_and_tensors_of_other_shapes_are_refused_by_name(value):
    model = tiny_cnn()
    shown = "a tensor of shape" if isinstance(value, torch.Tensor) and value.ndim else (
        "a numpy array of shape" if isinstance(value, np.ndarray) else "")
    for call, name in ((lambda v: synflow.prune(model, "random", v), "compression"),
                       (lambda v: synflow.prune(model, "random", 10, iterations=v), "iterations"),
                       (lambda v: synflow.prune(model, "random", 10, seed=v), "seed"),
                       (lambda v: synflow.select(scores_of(model), v), "density"),
                       (lambda v: synflow.prune_through(model, "random", [v]), "density"),
                       (lambda v: density_after(1, 2, v, "linear"), "compression")):
        with pytest.raises(ValueError, match=rf"{name} must be .*got {shown}"):
            call(value)
    assert all(m.all() for m in synflow.current_masks(model).values())  # nothing was pruned


@pytest.mark.parametrize("value", ["no", 1, 0, None, torch.tensor([True])], ids=repr)
def test_invert_is_a_bool(value):
    with pytest.raises(ValueError, match="invert must be True or False, got"):
        synflow.prune(tiny_cnn(), "magnitude", 10, invert=value)
    scores = scores_of(tiny_cnn())
    with pytest.raises(ValueError, match="invert must be True or False, got"):
        synflow.select(scores, 0.5, invert=value)
    assert synflow.prune(tiny_cnn(), "magnitude", 10, invert=np.bool_(True))


def test_the_conv3d_input_hint_is_torchs_layout():
    model = nn.Sequential(nn.Conv3d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 2, 5, 5, 5))  # materialise the lazy head
    with pytest.raises(ValueError, match=r"expects 2 input channels: input_shape=\(2, D, H, W\)"):
        synflow.prune(model, "synflow", 2, input_shape=(3, 5, 5, 5))


@pytest.mark.parametrize("method", ["synflow", "synflow_l2", "magnitude", "snip", "random"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_is_refused_by_name_and_the_model_is_left_as_it_was(method, value):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[2].weight[1, 2] = value
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.randn(5, 4), torch.randint(0, 3, (5,)))]
    kind = "1 NaN, 0 inf" if np.isnan(value) else "0 NaN, 1 inf"
    with pytest.raises(ValueError, match=re.escape(f"2.weight ({kind} of 18 values)")):
        synflow.prune(model, method, 2, data=data, input_shape=(4,))
    after = model.state_dict()
    assert list(after) == list(before)  # no mask installed
    for key, tensor in before.items():
        torch.testing.assert_close(after[key], tensor, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(ValueError, match=re.escape(f"2.weight ({kind} of 18 values)")):
        synflow.compute_scores(model, method, data=data, input_shape=(4,))


def test_a_non_finite_weight_under_a_mask_is_refused_too():
    """A NaN at a pruned position: the masked weight computes NaN * 0 = NaN."""
    model = nn.Sequential(nn.Linear(4, 2))
    synflow.apply_masks(model, {"0.weight": torch.tensor([[True, False, True, True]] * 2)})
    with torch.no_grad():
        model[0].weight_orig[0, 1] = float("nan")
    with pytest.raises(ValueError, match=re.escape("0.weight (1 NaN, 0 inf of 8 values)")):
        synflow.prune(model, "magnitude", 2)


@pytest.mark.parametrize("method", ["synflow", "magnitude", "snip", "random"])
def test_a_non_finite_bias_or_batchnorm_parameter_is_refused_by_name(method):
    """Not an overflow (SynFlow said so) nor a silent prune: the parameter is named."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    model.eval()
    with torch.no_grad():
        model[0].bias[2] = float("nan")
        model[1].weight[0] = float("inf")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.randn(5, 3, 8, 8), torch.randint(0, 3, (5,)))]
    with pytest.raises(ValueError, match=re.escape(
            "0.bias (1 NaN, 0 inf of 4 values), 1.weight (0 NaN, 1 inf of 4 values)")):
        synflow.prune(model, method, 2, data=data, input_shape=(3, 8, 8))
    after = model.state_dict()
    assert list(after) == list(before)
    for key, tensor in before.items():
        torch.testing.assert_close(after[key], tensor, rtol=0, atol=0, equal_nan=True)


def test_an_infinite_buffer_is_not_refused():
    """A buffer of -inf (an attention mask) is legitimate: only parameters are checked."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model.register_buffer("mask", torch.full((4,), -float("inf")))
    masks = synflow.prune(model, "magnitude", 2)
    assert sum(int(m.sum()) for m in masks.values()) == 12  # of 24


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_bn_mode_train_on_batches_of_one_names_the_option(method):
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    data = [(torch.randn(1, 8), torch.tensor([0]))]
    with pytest.raises(ValueError, match=r"bn_mode='train' normalises each batch by its own "
                                         r"statistics.*at least 2 samples, or bn_mode='eval'"):
        synflow.prune(model, method, 2, data=data, bn_mode="train")
    assert model.training and not hasattr(model[0], "weight_mask")  # as it was


@pytest.mark.parametrize("method", ["synflow", "snip"])
def test_a_forward_of_two_arguments_is_named(method):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x, y):
            return self.b(self.a(x) + y)

    data = [(torch.randn(3, 4), torch.tensor([0, 1, 0]))]
    with pytest.raises(ValueError, match=r"scoring calls model\(inputs\) with one batch.*takes "
                                         r"other arguments .*missing 1 required positional"):
        synflow.prune(Two(), method, 2, input_shape=(4,) if method == "synflow" else None,
                      data=data if method == "snip" else None)
