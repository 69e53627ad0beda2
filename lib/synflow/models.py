"""The networks of the paper, built from standard torch layers.

Every model is created through :func:`build_model`, which looks its name up in
``MODELS`` (a plain dict), so a typo gives an error listing the valid names.
All models use Kaiming-normal init for Conv2d/Linear weights, zero biases and
unit BatchNorm scales, as in the paper. ``width`` multiplies every hidden
channel count, for small CPU-scale variants (width=1 is the paper's net).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

# --------------------------------------------------------------------- helpers


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _flat_size(input_shape: Sequence[int]) -> int:
    return int(math.prod(input_shape))


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal weights, zero biases, BatchNorm scale 1 and shift 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


# ------------------------------------------------------------ the toy networks


def mlp(input_shape, num_classes, width=1.0, depth=6, hidden=100, batch_norm=False):
    """The authors' fully connected toy net: ``depth`` Linear layers, ReLU between."""
    size = _scaled(hidden, width)
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
    """The authors' convolutional toy net: ``depth - 1`` 3x3 convs, global pool, Linear."""
    size = _scaled(channels, width)
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


# ------------------------------------------------------------------ CIFAR VGG

VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class CifarVGG(nn.Module):
    """The authors' CIFAR VGG: 3x3 convs, four max-pools, global average pool
    and one Linear(512, classes). (The authors pool with AvgPool2d(2), which is
    the same on 32x32 inputs; the adaptive pool also works on 64x64.)"""

    def __init__(self, depth, input_shape, num_classes, width=1.0, batch_norm=True):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = input_shape[0]
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out_channels = _scaled(item, width)
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ------------------------------------------------------------------- ResNets


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of basic blocks with a 3x3, stride-1 stem and no max-pool (CIFAR style)."""

    def __init__(self, stage_channels, blocks_per_stage, input_shape, num_classes):
        super().__init__()
        stem = stage_channels[0]
        self.conv1 = nn.Conv2d(input_shape[0], stem, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_channels = stem
        for index, (channels, blocks) in enumerate(zip(stage_channels, blocks_per_stage)):
            stride = 1 if index == 0 else 2
            stage = []
            for block in range(blocks):
                stage.append(BasicBlock(in_channels, channels, stride if block == 0 else 1))
                in_channels = channels
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        out = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


def cifar_resnet(depth, input_shape, num_classes, width=1.0):
    """He et al.'s CIFAR ResNet-20/32/44/56/110: stages of 16/32/64 channels."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    blocks = (depth - 2) // 6
    channels = [_scaled(c, width) for c in (16, 32, 64)]
    return ResNet(channels, [blocks] * 3, input_shape, num_classes)


def resnet(depth, input_shape, num_classes, width=1.0, widen=1):
    """ResNet-18/34 (stages of 64..512 channels) with the CIFAR stem.

    ``widen=2`` gives the real WRN-18-2 (every block twice as wide). Note: the
    network the authors call "WRN-18" ignores its width and *is* ResNet-18.
    """
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]
    channels = [_scaled(c * widen, width) for c in (64, 128, 256, 512)]
    return ResNet(channels, blocks, input_shape, num_classes)


# -------------------------------------------------------- ImageNet-shaped VGG


def imagenet_vgg19(input_shape, num_classes, width=1.0, batch_norm=False):
    """VGG-19 with ImageNet shapes (torchvision's layout: 7x7 pool, three Linear
    layers of 4096), the network of the paper's Figures 2-4."""
    features: list[nn.Module] = []
    in_channels = input_shape[0]
    for item in VGG_CONFIGS[19] + ["M"]:
        if item == "M":
            features.append(nn.MaxPool2d(2))
            continue
        out_channels = _scaled(item, width)
        features.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        if batch_norm:
            features.append(nn.BatchNorm2d(out_channels))
        features.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    hidden = _scaled(4096, width)
    return nn.Sequential(
        nn.Sequential(*features),
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(in_channels * 49, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


# ------------------------------------------------------------------ registry


def _vgg(depth, batch_norm):
    def build(input_shape, num_classes, width=1.0):
        return CifarVGG(depth, input_shape, num_classes, width, batch_norm)

    build.__doc__ = f"CIFAR VGG-{depth}{' with BatchNorm' if batch_norm else ''}."
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


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "conv": conv,
    **{f"vgg{d}": _vgg(d, False) for d in VGG_CONFIGS},
    **{f"vgg{d}_bn": _vgg(d, True) for d in VGG_CONFIGS},
    **{f"resnet{d}": _cifar_resnet(d) for d in (20, 32, 44, 56, 110)},
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
    "wrn18_2": _resnet(18, widen=2),
    "vgg19_imagenet": imagenet_vgg19,
    "vgg19_bn_imagenet": lambda input_shape, num_classes, width=1.0: imagenet_vgg19(
        input_shape, num_classes, width, batch_norm=True
    ),
}


def sample_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` (one sample's shape, no batch dimension) as a tuple of ints.

    Raises:
        ValueError: naming the value, unless it is a non-empty sequence of positive
            integers (bools refused).
    """
    shape = tuple(input_shape)
    if not shape or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"input_shape must be one sample's shape: positive integers without the batch "
            f"dimension, channels first, e.g. (3, 32, 32); got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_input_shape(name: str, input_shape: Sequence[int]) -> None:
    """Refuse an ``input_shape`` the model ``name`` cannot be built for.

    Every model takes one sample's shape without the batch dimension, channels first:
    (C, H, W) for the convolutional nets, any shape for "mlp" (it is flattened). A
    channels-last shape such as (32, 32, 3) would silently build a 32-channel first
    layer, so a first dimension larger than the last when the last is 1, 3 or 4 (the
    usual channel counts) is refused.

    Raises:
        ValueError: naming the value and the expected (C, H, W) form.
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
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    width: float = 1.0,
    seed: int | None = None,
) -> nn.Module:
    """Build a freshly initialised model from ``MODELS`` (the paper's Section 7 and
    Appendix networks: the authors' ``mlp``/``conv`` toys, CIFAR VGG-11/16/19 with or
    without BatchNorm, CIFAR ResNet-20/32/56/110, ResNet-18, WRN-18-2, VGG-19 at
    ImageNet shape).

    Args:
        name: a key of ``MODELS``.
        num_classes: size of the output layer (logits, float32, shape (B, num_classes)).
        input_shape: one sample's shape, channels first, (C, H, W) (e.g. (3, 32, 32) for
            CIFAR, (1, 28, 28) for MNIST); the MLPs flatten it.
        width: multiplies every hidden channel count (rounded, at least 1); 1 is the
            paper's net, e.g. 0.125 for the laptop profile.
        seed: fixes the initial weights (the global RNG is left untouched); None draws
            them from the global RNG.

    Returns an ``nn.Module`` in float32 on the CPU, in training mode, initialised
    as in the paper: Kaiming-normal Conv/Linear weights, zero biases, BatchNorm
    (with running statistics, momentum 0.1) scale 1 and shift 0. Nothing is pruned.

    Raises ValueError for an unknown name or a width that is not > 0.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    check_input_shape(name, input_shape)
    input_shape = tuple(int(d) for d in input_shape)
    if seed is None:
        return init_weights(MODELS[name](tuple(input_shape), num_classes, width=width))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return init_weights(MODELS[name](tuple(input_shape), num_classes, width=width))
