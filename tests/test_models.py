import re

import pytest
import torch

import synflow

# (model, prunable weights, prunable layers) for CIFAR-10, from paper/NOTES.md
PAPER_COUNTS = [
    ("vgg16_bn", 14_715_584, 14),
    ("vgg11_bn", 9_222_848, 9),
    ("vgg19_bn", 20_024_000, 17),
    ("resnet18", 11_164_352, 21),
    ("resnet20", 270_896, 22),
]


def prunable_count(model):
    layers = synflow.prunable_layers(model)
    return sum(m.weight.numel() for m in layers.values()), len(layers)


@pytest.mark.parametrize("name, weights, layers", PAPER_COUNTS)
def test_prunable_counts_match_the_paper(name, weights, layers):
    assert prunable_count(synflow.build_model(name)) == (weights, layers)


def test_wrn18_2_is_really_twice_as_wide_unlike_the_authors_wrn18():
    resnet18, _ = prunable_count(synflow.build_model("resnet18"))
    wide, layers = prunable_count(synflow.build_model("wrn18_2"))
    assert layers == 21
    # conv weights scale with width^2; the classifier only with width
    assert 3.9 * resnet18 < wide < 4.0 * resnet18


@pytest.mark.parametrize("name", sorted(synflow.MODELS))
def test_every_model_builds_and_runs_at_small_width(name):
    shape = (3, 64, 64) if name.endswith(("_imagenet", "_tiny")) else (3, 32, 32)
    model = synflow.build_model(name, num_classes=7, input_shape=shape, width=0.125, seed=0)
    model.eval()
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "wrn18_2"])
def test_tiny_imagenet_shape_works(name):
    model = synflow.build_model(name, num_classes=200, input_shape=(3, 64, 64), width=0.125)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 200)


def test_mnist_shaped_mlp():
    model = synflow.build_model("mlp", input_shape=(1, 28, 28))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_seed_fixes_the_initial_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = synflow.build_model("vgg11_bn", width=0.25, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = synflow.build_model("vgg11_bn", width=0.25, seed=7)
    c = synflow.build_model("vgg11_bn", width=0.25, seed=8)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_kaiming_normal_init():
    model = synflow.build_model("vgg16_bn", seed=0)
    conv = model.features[14]  # 128 -> 256 channels, fan_in = 128 * 9
    std = conv.weight.std().item()
    assert abs(std - (2 / (128 * 9)) ** 0.5) / std < 0.02
    assert torch.count_nonzero(conv.bias) == 0


def test_width_multiplier_scales_channels():
    model = synflow.build_model("vgg16_bn", width=0.25)
    assert model.features[0].out_channels == 16
    assert model.classifier.in_features == 128


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'vgg17'.*vgg16_bn"):
        synflow.build_model("vgg17")


@pytest.mark.parametrize("width", [0, -1.0, "1", True, float("inf"), float("nan"), None])
def test_bad_width(width):
    with pytest.raises(ValueError, match=rf"width must be a finite number > 0, got {width!r}"):
        synflow.build_model("vgg16", width=width)


@pytest.mark.parametrize("name, dataset", [("vgg19_imagenet", "imagenet"),
                                           ("vgg16_bn_tiny", "tinyimagenet"),
                                           ("vgg16_bn", "cifar10"), ("resnet18", "cifar10")])
def test_build_model_defaults_to_the_shape_and_classes_of_the_nets_dataset(name, dataset):
    """An ImageNet VGG-19 built without arguments has ImageNet's 1000 classes, not
    CIFAR-10's 10 (a silent 10-way head was the old default for every net)."""
    from synflow.data.imagenet import IMAGENET

    info = IMAGENET if dataset == "imagenet" else synflow.data.DATASETS[dataset]
    assert synflow.models.default_data(name) == (info.input_shape, info.num_classes)
    model = synflow.build_model(name, width=1 / 16, seed=0).eval()
    assert model(torch.zeros(1, *info.input_shape)).shape == (1, info.num_classes)


@pytest.mark.parametrize("name", ["nope", "VGG19_IMAGENET", None])
def test_default_data_of_an_unknown_model_is_an_error(name):
    with pytest.raises(ValueError, match=re.escape(f"unknown model {name!r}; choose one of: ")):
        synflow.models.default_data(name)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10", [10]])
def test_num_classes_must_be_a_whole_number(bad):
    message = re.escape(f"num_classes must be a whole number >= 1, got {bad!r}")
    with pytest.raises(ValueError, match=message):
        synflow.build_model("mlp", num_classes=bad)
