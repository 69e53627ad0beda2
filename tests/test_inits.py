"""Every network initialised as in the authors' runs (synflow.models.inits, models.MODEL_INITS).

The expected init of each family is written out here from paper/NOTES.md ("How the
authors initialised each network"), independently of the library's table, and every
layer's weights are checked against its formula within sampling error.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import synflow
from synflow import models

SIGMAS = 5  # sampling tolerance: a correct init fails a check with probability ~ 6e-7


def expected_family(name: str) -> str:
    """The init the paper notes give each model (by name, not from the library)."""
    if name in ("mlp", "conv"):
        return "pytorch_default"  # their mlp.py: no explicit init
    if name.endswith(("_imagenet", "_tiny")):
        return "vgg_fan_out"  # their imagenet_vgg.py, tinyimagenet_vgg.py
    if name in ("resnet18", "resnet34", "wrn18_2"):
        return "resnet_fan_out"  # their tinyimagenet_resnet.py
    assert name.startswith(("vgg", "resnet")), name
    return "kaiming_fan_in"  # their lottery_vgg.py, lottery_resnet.py


def input_shape(name: str) -> tuple[int, int, int]:
    return (3, 64, 64) if name.endswith(("_imagenet", "_tiny")) else (3, 32, 32)


def fans(module: nn.Module) -> tuple[int, int]:
    weight = module.weight
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def assert_normal(tensor: torch.Tensor, std: float, what: str) -> None:
    """Mean 0 and standard deviation ``std`` within SIGMAS standard errors."""
    values, n = tensor.detach().double().flatten(), tensor.numel()
    mean, sample_std = values.mean().item(), values.std().item()
    assert abs(mean) < SIGMAS * std / math.sqrt(n), f"{what}: mean {mean} (std {std}, n {n})"
    assert abs(sample_std - std) < SIGMAS * std / math.sqrt(2 * (n - 1)), (
        f"{what}: std {sample_std}, expected {std} (n {n})")


def assert_pytorch_default(module: nn.Module, what: str) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and the bias (reset_parameters):
    bounded, and the weight's std bound/sqrt(3) within sampling error."""
    fan_in, _ = fans(module)
    bound = 1 / math.sqrt(fan_in)
    for tensor in (module.weight, module.bias):
        if tensor is not None:
            assert tensor.abs().max().item() <= bound, f"{what}: |value| > 1/sqrt(fan_in)"
    values = module.weight.detach().double().flatten()
    std = bound / math.sqrt(3)
    assert abs(values.std().item() - std) < SIGMAS * std / math.sqrt(values.numel()), what
    if module.bias is not None:
        assert torch.count_nonzero(module.bias) > 0, f"{what}: bias re-initialised to 0"


def assert_batch_norms_one_zero(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name


def assert_zero_bias(module: nn.Module, what: str) -> None:
    if module.bias is not None:
        assert torch.count_nonzero(module.bias) == 0, f"{what}: bias not 0"


def check(model: nn.Module, family: str) -> None:
    """Every Conv2d / Linear layer of ``model`` against ``family``'s formulas."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    for name, module in layers:
        fan_in, fan_out = fans(module)
        conv = isinstance(module, nn.Conv2d)
        if family == "kaiming_fan_in":
            assert_normal(module.weight, math.sqrt(2 / fan_in), name)
            assert_zero_bias(module, name)
        elif family == "resnet_fan_out" and conv:
            assert_normal(module.weight, math.sqrt(2 / fan_out), name)
        elif family == "vgg_fan_out":
            assert_normal(module.weight, math.sqrt(2 / fan_out) if conv else 0.01, name)
            assert_zero_bias(module, name)
        else:  # pytorch_default, and resnet_fan_out's Linear
            assert family in ("pytorch_default", "resnet_fan_out"), family
            assert_pytorch_default(module, name)
    assert_batch_norms_one_zero(model)


@pytest.mark.parametrize("name", sorted(synflow.MODELS))
def test_every_model_gets_its_familys_init_layer_by_layer(name):
    assert models.MODEL_INITS[name] == expected_family(name)
    model = synflow.build_model(name, input_shape=input_shape(name), width=0.25, seed=0)
    check(model, expected_family(name))


@pytest.mark.parametrize("name, width", [("vgg19_imagenet", 0.5), ("vgg16_bn_tiny", 1.0),
                                         ("resnet18", 1.0), ("vgg16_bn", 1.0), ("mlp", 1.0)])
def test_inits_at_the_papers_widths(name, width):
    model = synflow.build_model(name, num_classes=200, input_shape=input_shape(name),
                                width=width, seed=1)
    check(model, expected_family(name))


@pytest.mark.parametrize("init", list(synflow.models.inits.INITS))
@pytest.mark.parametrize("name", ["vgg11_bn", "resnet18", "vgg19_bn_imagenet", "conv"])
def test_an_init_can_be_forced_on_any_model(name, init):
    model = synflow.build_model(name, input_shape=input_shape(name), width=0.25, seed=2,
                                init=init)
    check(model, init)


def old_init_weights(model):
    """This project's single init before the per-family ones (main at 27f975b), verbatim."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


@pytest.mark.parametrize("name", ["mlp", "vgg11_bn", "resnet20", "resnet18", "vgg19_imagenet"])
def test_kaiming_fan_in_is_the_old_init_bit_for_bit(name):
    shape = input_shape(name)
    new = synflow.build_model(name, input_shape=shape, num_classes=10, width=0.25, seed=3,
                              init="kaiming_fan_in")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        old = old_init_weights(synflow.MODELS[name](shape, 10, width=0.25))
    old_state = old.state_dict()
    for key, value in new.state_dict().items():
        assert torch.equal(value, old_state[key]), key
    if expected_family(name) == "kaiming_fan_in":  # the CIFAR lottery nets did not change
        authors = synflow.build_model(name, input_shape=shape, num_classes=10, width=0.25, seed=3)
        assert all(torch.equal(a, b) for a, b in zip(authors.state_dict().values(),
                                                     old_state.values()))


@pytest.mark.parametrize("name", ["mlp", "vgg16_bn", "resnet18", "vgg19_imagenet",
                                  "vgg11_bn_tiny"])
def test_seed_fixes_every_familys_weights(name):
    shape = input_shape(name)
    torch.manual_seed(11)
    expected_next = torch.rand(1)
    torch.manual_seed(11)
    a = synflow.build_model(name, input_shape=shape, width=0.25, seed=5)
    assert torch.equal(torch.rand(1), expected_next)  # the global RNG is left alone
    b = synflow.build_model(name, input_shape=shape, width=0.25, seed=5)
    c = synflow.build_model(name, input_shape=shape, width=0.25, seed=6)
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), key
    weights = [k for k in a.state_dict() if k.endswith("weight") and a.state_dict()[k].dim() > 1]
    assert all(not torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in weights)


def test_unknown_init_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="init 'kaiming'.*'authors'.*kaiming_fan_in"):
        synflow.build_model("vgg11_bn", init="kaiming")
    with pytest.raises(ValueError, match="init None is not allowed"):
        synflow.build_model("vgg11_bn", init=None)


# ------------------------------------------------------------------ layouts


@pytest.mark.parametrize("batch_norm", [False, True])
def test_imagenet_vgg19_has_torchvisions_state_dict(batch_norm):
    torchvision = pytest.importorskip("torchvision")
    suffix = "_bn" if batch_norm else ""
    with torch.device("meta"):  # shapes only: no memory, no time
        ours = synflow.build_model(f"vgg19{suffix}_imagenet", num_classes=1000,
                                   input_shape=(3, 224, 224))
        theirs = getattr(torchvision.models, f"vgg19{suffix}")(weights=None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [type(m) for m in ours.classifier] == [type(m) for m in theirs.classifier]
    assert ours.avgpool.output_size == (7, 7)


def test_imagenet_vgg19_width_scales_the_hidden_layers_too():
    model = synflow.build_model("vgg19_imagenet", num_classes=5, input_shape=(3, 64, 64),
                                width=0.125)
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [512, 512, 5]
    assert model.classifier[0].in_features == 64 * 49
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_tiny_imagenet_vgg_is_the_authors_layout():
    model = synflow.build_model("vgg16_bn_tiny", num_classes=200, input_shape=(3, 64, 64))
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5
    head = [type(m) for m in model.classifier]
    assert head == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    shapes = [tuple(m.weight.shape) for m in model.classifier if isinstance(m, nn.Linear)]
    assert shapes == [(1024, 512 * 4), (1024, 1024), (200, 1024)]
    # prunable: VGG-16's 13 convs (the CIFAR VGG-16 count of paper/NOTES.md less its
    # Linear(512, 10)) and the three Linear layers
    layers = synflow.prunable_layers(model)
    convs = 14_715_584 - 512 * 10
    assert len(layers) == 16
    assert sum(m.weight.numel() for m in layers.values()) == convs + 2048 * 1024 + 1024 * 1024 + 1024 * 200
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 200)


def test_tiny_imagenet_vgg_refuses_inputs_too_small_for_five_pools():
    with pytest.raises(ValueError, match=r"at least \(C, 32, 32\).*\(3, 16, 16\)"):
        synflow.build_model("vgg11_tiny", input_shape=(3, 16, 16))


@pytest.mark.parametrize("built, init", [("pytorch_default", "kaiming_fan_in"),
                                         ("pytorch_default", "vgg_fan_out"),
                                         ("pytorch_default", "resnet_fan_out"),
                                         ("vgg_fan_out", "pytorch_default")])
def test_reinitialize_kept_redraws_from_the_named_inits_law(built, init):
    """Frankle et al.'s "reinit" check: every kept weight redrawn from ``init``'s law
    (whatever the model was built with), biases and BatchNorm left as they were."""
    model = synflow.build_model("vgg11_bn", width=0.25, seed=4, init=built)
    synflow.apply_masks(model, {n: torch.ones_like(m.weight, dtype=torch.bool)
                                for n, m in synflow.prunable_layers(model).items()})
    before = {n: m.weight.detach().clone() for n, m in synflow.prunable_layers(model).items()}
    others = {n: p.detach().clone() for n, p in model.named_parameters()
              if not n.endswith("weight_orig")}
    synflow.models.reinitialize_kept(model, seed=5, init=init)
    after = {n: m.weight.detach().clone() for n, m in synflow.prunable_layers(model).items()}
    assert all(not torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(p, dict(model.named_parameters())[n]) for n, p in others.items())
    if init in ("kaiming_fan_in", "vgg_fan_out"):  # laws with zero biases: only weights redrawn
        with torch.no_grad():
            for module in synflow.prunable_layers(model).values():
                module.bias.zero_()
    if init == "pytorch_default":  # vgg_fan_out built zero biases; the law's bias check needs them
        for name, module in synflow.prunable_layers(model).items():
            fan_in, _ = fans(module)
            bound = 1 / math.sqrt(fan_in)
            assert module.weight.abs().max() <= bound, name
            std = bound / math.sqrt(3)
            assert abs(module.weight.double().std().item() - std) < SIGMAS * std / math.sqrt(
                module.weight.numel()), name
    else:
        check(model, init)


def test_reinitialize_kept_refuses_an_unknown_init():
    model = synflow.build_model("mlp", seed=0)
    with pytest.raises(ValueError, match="'authors' is not allowed; choose one of: kaiming_fan_in"):
        synflow.models.reinitialize_kept(model, init="authors")
