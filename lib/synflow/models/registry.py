"""The networks of the paper, built from standard torch layers.

Every model is created through :func:`build_model`, which looks its name up in
``MODELS`` (a plain dict), so a typo gives an error listing the valid names, and
initialises it with its family's init from ``MODEL_INITS`` (a plain dict of
:data:`synflow.models.inits.INITS` keys: the authors' init for that network, paper/NOTES.md
"How the authors initialised each network"). ``width`` multiplies every hidden
channel count, for small CPU-scale variants (width=1 is the paper's net).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..core.checks import sample_shape
from .inits import AUTHORS, INITS, check_init
from .networks import (
    VGG_CONFIGS,
    CifarVGG,
    ImageNetVGG,
    TinyImageNetVGG,
    cifar_resnet,
    resnet,
    scaled,
)

# --------------------------------------------------------------------- helpers


def _flat_size(input_shape: Sequence[int]) -> int:
    return int(math.prod(input_shape))


# ------------------------------------------------------------ the toy networks


def mlp(input_shape, num_classes, width=1.0, depth=6, hidden=100, batch_norm=False):
    """The authors' fully connected toy net: ``depth`` Linear layers, ReLU between (the
    input flattened; ``hidden`` units scaled by ``width``).

    >>> [m.out_features for m in mlp((1, 8, 8), 10, width=0.1) if isinstance(m, nn.Linear)]
    [10, 10, 10, 10, 10, 10]
    """
    size = scaled(hidden, width)
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = _flat_size(input_shape)
    for _ in range(depth - 1):
        layers.append(nn.Linear(fan_in, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        fan_in = size
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def conv(input_shape, num_classes, width=1.0, depth=4, channels=32, batch_norm=False):
    """A small convolutional net: ``depth - 1`` 3x3 convs, global average pool, Linear
    (not the authors' ``Models/mlp.py`` ``conv``, which flattens the whole feature map
    into its Linear layer; no notebook uses either).

    >>> model = conv((3, 8, 8), 10, width=0.25)
    >>> model(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 10])
    """
    size = scaled(channels, width)
    layers: list[nn.Module] = []
    in_channels = input_shape[0]
    for _ in range(depth - 1):
        layers.append(nn.Conv2d(in_channels, size, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(size))
        layers.append(nn.ReLU())
        in_channels = size
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
    return nn.Sequential(*layers)


# ------------------------------------------------------------------ registry


def _vgg(cls, depth, batch_norm):
    def build(input_shape, num_classes, width=1.0):
        return cls(depth, input_shape, num_classes, width, batch_norm)

    build.__doc__ = f"{cls.__name__}-{depth}{' with BatchNorm' if batch_norm else ''}."
    return build


def _cifar_resnet(depth):
    def build(input_shape, num_classes, width=1.0):
        return cifar_resnet(depth, input_shape, num_classes, width)

    build.__doc__ = f"CIFAR ResNet-{depth} (16/32/64 channels)."
    return build


def _resnet(depth, widen=1):
    def build(input_shape, num_classes, width=1.0):
        return resnet(depth, input_shape, num_classes, width, widen)

    build.__doc__ = f"ResNet-{depth}{f' widened {widen}x' if widen > 1 else ''}, CIFAR stem."
    return build


CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)
BN_SUFFIXES = {"": False, "_bn": True}
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "conv": conv,
    **{f"vgg{d}{s}": _vgg(CifarVGG, d, bn) for s, bn in BN_SUFFIXES.items() for d in VGG_CONFIGS},
    **{f"resnet{d}": _cifar_resnet(d) for d in CIFAR_RESNET_DEPTHS},
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
    "wrn18_2": _resnet(18, widen=2),
    **{f"vgg19{s}_imagenet": _vgg(ImageNetVGG, 19, bn) for s, bn in BN_SUFFIXES.items()},
    **{f"vgg{d}{s}_tiny": _vgg(TinyImageNetVGG, d, bn)
       for s, bn in BN_SUFFIXES.items() for d in VGG_CONFIGS},
}

# every model's family init, a key of synflow.models.inits.INITS (paper/NOTES.md, "How the
# authors initialised each network", from their Models/*.py)
MODEL_INITS: dict[str, str] = {
    "mlp": "pytorch_default",  # their mlp.py: no explicit init
    "conv": "pytorch_default",
    # their lottery_vgg.py / lottery_resnet.py
    **{f"vgg{d}{s}": "kaiming_fan_in" for s in BN_SUFFIXES for d in VGG_CONFIGS},
    **{f"resnet{d}": "kaiming_fan_in" for d in CIFAR_RESNET_DEPTHS},
    # their tinyimagenet_resnet.py (CIFAR and Tiny ImageNet)
    **dict.fromkeys(("resnet18", "resnet34", "wrn18_2"), "resnet_fan_out"),
    # their imagenet_vgg.py (torchvision's) and tinyimagenet_vgg.py
    **{f"vgg19{s}_imagenet": "vgg_fan_out" for s in BN_SUFFIXES},
    **{f"vgg{d}{s}_tiny": "vgg_fan_out" for s in BN_SUFFIXES for d in VGG_CONFIGS},
}


# what build_model builds a net for when not told: the shape and class count of the
# dataset the net is made for (ImageNet's, Tiny ImageNet's, else CIFAR-10's)
DEFAULT_DATA: dict[str, tuple[tuple[int, int, int], int]] = {
    "_imagenet": ((3, 224, 224), 1000),
    "_tiny": ((3, 64, 64), 200),
    "": ((3, 32, 32), 10),
}


def default_data(name: str) -> tuple[tuple[int, int, int], int]:
    """``(input_shape, num_classes)`` that :func:`build_model` gives the model ``name``
    unless told: ImageNet's for the ``*_imagenet`` nets, Tiny ImageNet's for the
    ``*_tiny`` ones, CIFAR-10's for every other (``DEFAULT_DATA``).

    Raises ValueError naming an unknown model and the known ones.

    >>> default_data("vgg19_imagenet"), default_data("vgg16_bn_tiny"), default_data("resnet18")
    (((3, 224, 224), 1000), ((3, 64, 64), 200), ((3, 32, 32), 10))
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return next(data for suffix, data in DEFAULT_DATA.items() if name.endswith(suffix))


def _class_count(num_classes) -> int:
    """``num_classes`` as an int, or ValueError unless it is a whole number >= 1."""
    try:
        count = operator.index(num_classes)
    except TypeError:
        count = 0
    if isinstance(num_classes, bool) or count < 1:
        raise ValueError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
    return count


def model_init(name: str, init: str = AUTHORS) -> str:
    """The key of ``synflow.models.inits.INITS`` that ``build_model(name, init=init)`` applies:
    ``MODEL_INITS[name]`` for "authors", else ``init`` itself.

    Raises ValueError naming an unknown model or init and the allowed ones.

    >>> model_init("resnet18"), model_init("vgg16"), model_init("mlp", init="kaiming_fan_in")
    ('resnet_fan_out', 'kaiming_fan_in', 'kaiming_fan_in')
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODEL_INITS[name] if check_init(init) == AUTHORS else init


def check_input_shape(name: str, input_shape: Sequence[int]) -> None:
    """Refuse an ``input_shape`` the model ``name`` cannot be built for.

    Every model takes one sample's shape without the batch dimension, channels first:
    (C, H, W) for the convolutional nets, any shape for "mlp" (it is flattened). A
    channels-last shape such as (32, 32, 3) would silently build a 32-channel first
    layer, so a first dimension larger than the last when the last is 1, 3 or 4 (the
    usual channel counts) is refused.

    Raises:
        ValueError: naming the value and the expected (C, H, W) form.

    >>> check_input_shape("conv", (3, 32, 32))
    >>> check_input_shape("conv", (32, 32, 3))
    Traceback (most recent call last):
    ValueError: input_shape (32, 32, 3) looks channels-last (H, W, C); models take channels
    first, (C, H, W): here (3, 32, 32)
    """
    shape = sample_shape(input_shape)
    if name == "mlp":
        return
    if len(shape) != 3:
        raise ValueError(
            f"{name} takes images: input_shape must be (C, H, W), e.g. (3, 32, 32); got "
            f"{input_shape!r}"
        )
    if shape[-1] in (1, 3, 4) and shape[0] > shape[-1]:
        raise ValueError(
            f"input_shape {input_shape!r} looks channels-last (H, W, C); models take "
            f"channels first, (C, H, W): here {(shape[-1], *shape[:-1])}"
        )


def build_model(
    name: str,
    *,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    width: float = 1.0,
    seed: int | None = None,
    init: str = AUTHORS,
) -> nn.Module:
    """Build a freshly initialised model from ``MODELS`` (the paper's Section 7 and
    Appendix networks: the authors' ``mlp``/``conv`` toys, CIFAR VGG-11/13/16/19 with or
    without BatchNorm, CIFAR ResNet-20/32/44/56/110, ResNet-18/34, WRN-18-2, VGG-19 at
    ImageNet shape in torchvision's layout, the authors' Tiny ImageNet VGGs ``*_tiny``).

    Args:
        name: a key of ``MODELS``.
        num_classes: size of the output layer (logits, float32, shape (B, num_classes));
            default: the model's dataset's (:func:`default_data`: 1000 for the
            ``*_imagenet`` nets, 200 for the ``*_tiny`` ones, 10 for every other).
        input_shape: one sample's shape, channels first, (C, H, W) (e.g. (3, 32, 32) for
            CIFAR, (1, 28, 28) for MNIST); the MLPs flatten it. Default: the model's
            dataset's ((3, 224, 224), (3, 64, 64) or (3, 32, 32), as ``num_classes``).
        width: multiplies every hidden channel count (rounded, at least 1); 1 is the
            paper's net, e.g. 0.125 for the laptop profile.
        seed: fixes the initial weights (the global RNG is left untouched); None draws
            them from the global RNG.
        init: "authors" (default): the model's family init ``MODEL_INITS[name]``, as in
            the authors' runs (paper/NOTES.md, "How the authors initialised each
            network"); or a key of ``synflow.models.inits.INITS`` applied to this model whatever
            its family, e.g. "kaiming_fan_in" (Kaiming-normal fan-in weights, zero
            biases: this project's single init before the per-family ones).

    Returns an ``nn.Module`` in float32 on the CPU, in training mode, initialised by
    ``init`` (see :mod:`synflow.models.inits` for each init's weight distributions), BatchNorm
    with running statistics (momentum 0.1). Nothing is pruned.

    Raises ValueError naming the value and the allowed ones for an unknown name or init,
    a width that is not > 0, a num_classes that is not a whole number >= 1 or a bad
    input_shape.

    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> model(torch.zeros(2, 1, 8, 8)).shape, sum(p.numel() for p in model.parameters())
    (torch.Size([2, 10]), 1200)
    >>> build_model("vgg11", width=0)
    Traceback (most recent call last):
    ValueError: width must be a finite number > 0, got 0
    """
    initialise = INITS[model_init(name, init)]
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not 0 < width < math.inf:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    default_shape, default_classes = default_data(name)
    input_shape = default_shape if input_shape is None else input_shape
    num_classes = default_classes if num_classes is None else num_classes
    num_classes = _class_count(num_classes)
    check_input_shape(name, input_shape)
    input_shape = tuple(int(d) for d in input_shape)
    if seed is None:
        return initialise(MODELS[name](input_shape, num_classes, width=width))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return initialise(MODELS[name](input_shape, num_classes, width=width))
