"""The VGGs and ResNets of the paper, built from standard torch layers.

Architectures only: :func:`synflow.models.build_model` builds them by name and
initialises them (:mod:`synflow.models.inits`). ``width`` multiplies every hidden channel
count (rounded, at least 1); width 1 is the paper's network.
"""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1 (an int).

    >>> scaled(64, 0.125), scaled(16, 0.01)
    (8, 1)
    """
    return max(1, round(channels * width))


# ----------------------------------------------------------------------- VGGs

VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}


def _vgg_features(config, in_channels, width=1.0, batch_norm=False) -> nn.Sequential:
    """VGG's convolutional part: a 3x3 conv (padding 1) [+ BatchNorm] + ReLU per number
    in ``config``, a 2x2 max-pool per "M"; channel counts scaled by ``width``."""
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        out_channels = scaled(item, width)
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


def _vgg_classifier(in_features, hidden, num_classes) -> nn.Sequential:
    """torchvision's VGG head: Linear, ReLU, Dropout(0.5), Linear, ReLU, Dropout(0.5), Linear."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(hidden, num_classes),
    )


class CifarVGG(nn.Module):
    """The authors' CIFAR VGG: 3x3 convs, four max-pools, global average pool
    and one Linear(512, classes). (The authors pool with AvgPool2d(2), which is
    the same on 32x32 inputs; the adaptive pool also works on 64x64.) Takes float
    images (B, C, H, W), returns logits (B, num_classes).

    >>> model = CifarVGG(11, (3, 32, 32), 10, width=1 / 16)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, depth, input_shape, num_classes, width=1.0, batch_norm=True):
        super().__init__()
        self.features = _vgg_features(VGG_CONFIGS[depth], input_shape[0], width, batch_norm)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(scaled(512, width), num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class TinyImageNetVGG(nn.Module):
    """The authors' Tiny ImageNet VGG (their Models/tinyimagenet_vgg.py): 3x3 convs with a
    max-pool after every stage (five), flatten, then Linear(512 * 4, 1024), ReLU, Dropout,
    Linear(1024, 1024), ReLU, Dropout, Linear(1024, classes) on 64x64 inputs (the first
    Linear reads 512 * (H // 32) * (W // 32) features; 1024 and 512 scaled by ``width``).

    Raises ValueError for an input smaller than 32x32 (nothing left after five pools).

    >>> model = TinyImageNetVGG(11, (3, 32, 32), 200, width=1 / 16)
    >>> model(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 200])
    """

    def __init__(self, depth, input_shape, num_classes, width=1.0, batch_norm=True):
        super().__init__()
        spatial = (input_shape[-2] // 32) * (input_shape[-1] // 32)
        if not spatial:
            raise ValueError(f"the Tiny ImageNet VGG pools five times: input_shape must be at "
                             f"least (C, 32, 32), e.g. (3, 64, 64); got {tuple(input_shape)}")
        self.features = _vgg_features(VGG_CONFIGS[depth] + ["M"], input_shape[0], width,
                                     batch_norm)
        self.classifier = _vgg_classifier(scaled(512, width) * spatial, scaled(1024, width),
                                         num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ------------------------------------------------------------------- ResNets


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a 1x1 conv + BN shortcut when the shape changes.
    Maps (B, in_channels, H, W) to (B, out_channels, H / stride, W / stride).

    >>> BasicBlock(4, 8, stride=2)(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 8, 4, 4])
    """

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
    """A ResNet of basic blocks with a 3x3, stride-1 stem and no max-pool (CIFAR style):
    stage ``i`` has ``blocks_per_stage[i]`` :class:`BasicBlock` of ``stage_channels[i]``
    channels (stride 2 from the second stage), then global average pool and Linear.

    >>> model = ResNet([4, 8], [1, 1], (3, 16, 16), 10)
    >>> model(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """

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
    """He et al.'s CIFAR ResNet-20/32/44/56/110: stages of 16/32/64 channels (scaled by
    ``width``). Raises ValueError for a depth that is not 6n+2.

    >>> model = cifar_resnet(20, (3, 32, 32), 10, width=0.25)
    >>> sum(isinstance(m, nn.Conv2d) for m in model.modules())
    21
    >>> cifar_resnet(21, (3, 32, 32), 10)
    Traceback (most recent call last):
    ValueError: CIFAR ResNet depth must be 6n+2, got 21
    """
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    blocks = (depth - 2) // 6
    channels = [scaled(c, width) for c in (16, 32, 64)]
    return ResNet(channels, [blocks] * 3, input_shape, num_classes)


def resnet(depth, input_shape, num_classes, width=1.0, widen=1):
    """ResNet-18/34 (stages of 64..512 channels) with the CIFAR stem.

    ``widen=2`` gives the real WRN-18-2 (every block twice as wide). Note: the
    network the authors call "WRN-18" ignores its width and *is* ResNet-18.

    >>> model = resnet(18, (3, 32, 32), 10, width=1 / 16, widen=2)
    >>> model.fc.in_features
    64
    """
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]
    channels = [scaled(c * widen, width) for c in (64, 128, 256, 512)]
    return ResNet(channels, blocks, input_shape, num_classes)


# -------------------------------------------------------- ImageNet-shaped VGG


class ImageNetVGG(nn.Module):
    """VGG at ImageNet shapes in torchvision's layout (``torchvision.models.vgg19``):
    ``features`` (3x3 convs [+ BN], five max-pools), ``avgpool`` (AdaptiveAvgPool2d((7, 7))),
    ``classifier`` (:func:`_vgg_classifier`, hidden 4096 scaled by ``width``). At width 1 its
    state_dict keys and shapes are torchvision's. The network of the paper's Figures 2-4, 7.

    >>> model = ImageNetVGG(19, (3, 32, 32), 1000, width=1 / 64)
    >>> model(torch.zeros(1, 3, 32, 32)).shape, model.classifier[0].in_features
    (torch.Size([1, 1000]), 392)
    """

    def __init__(self, depth, input_shape, num_classes, width=1.0, batch_norm=False):
        super().__init__()
        self.features = _vgg_features(VGG_CONFIGS[depth] + ["M"], input_shape[0], width,
                                     batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = _vgg_classifier(scaled(512, width) * 49, scaled(4096, width),
                                         num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
