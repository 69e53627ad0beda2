"""Batches on the training device: normalisation and batched augmentation of uint8 images."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .datasets import DatasetInfo, Images
from .images import dataset_info, load


def _affine(info: DatasetInfo, device) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``x / 255 - mean) / std == x * scale - shift`` per channel."""
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    return (1 / (255 * std)).to(device), (mean / std).to(device)


def normalize(images: Tensor, info: DatasetInfo, affine=None) -> Tensor:
    """uint8 images -> float32 ``(x / 255 - mean) / std`` per channel, on their device.

    >>> import torch
    >>> from synflow.data import DATASETS
    >>> x = normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), DATASETS["mnist"])
    >>> x.dtype, tuple(x.shape), round(x[0, 0, 0, 0].item(), 4)
    (torch.float32, (1, 1, 2, 2), 2.8215)
    """
    scale, shift = affine if affine is not None else _affine(info, images.device)
    return images.float().mul_(scale).sub_(shift)


def random_crops(count: int, generator: torch.Generator, padding: int = 4):
    """The random numbers of :func:`augment` for ``count`` images: ``(offsets (2, count),
    flips (count,))``, drawn on the CPU so that every device sees the same crops.

    >>> import torch
    >>> offsets, flips = random_crops(3, torch.Generator().manual_seed(0))
    >>> tuple(offsets.shape), tuple(flips.shape), flips.dtype
    ((2, 3), (3,), torch.bool)
    >>> bool(((offsets >= 0) & (offsets <= 8)).all())
    True
    """
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator)
    flips = torch.randint(0, 2, (count,), generator=generator).bool()
    return offsets, flips


def augment(images: Tensor, offsets: Tensor, flips: Tensor, padding: int = 4) -> Tensor:
    """Random crop with zero ``padding`` then horizontal flip, batched.

    ``images`` is a uint8 ``(B, C, H, W)`` batch on any device; ``offsets`` (2, B)
    are the crops' top/left corners in the padded image, ``flips`` (B,) says which
    are mirrored (see :func:`random_crops`). The result is channels-last in memory.

    >>> import torch
    >>> images = torch.arange(9, dtype=torch.uint8).view(1, 1, 3, 3)
    >>> out = augment(images, torch.tensor([[1], [1]]), torch.tensor([True]), padding=1)
    >>> out[0, 0].tolist()
    [[2, 1, 0], [5, 4, 3], [8, 7, 6]]
    >>> out.is_contiguous(memory_format=torch.channels_last)
    True
    """
    batch, _, height, width = images.shape
    device = images.device
    offsets, flips = offsets.to(device), flips.to(device)
    rows = offsets[0, :, None] + torch.arange(height, device=device)
    cols = offsets[1, :, None] + torch.arange(width, device=device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    padded = F.pad(images, (padding, padding, padding, padding))
    index = torch.arange(batch, device=device)[:, None, None]
    out = padded[index, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # an NCHW view with channels-last memory


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class Batches:
    """(inputs float32, targets int64) batches of an in-memory split on ``device``.

    The uint8 images live on ``device``; every epoch (every ``iter()``) reshuffles
    (if ``shuffle``) and augments (if ``augment``: random crop with padding 4 and
    horizontal flip) with random numbers fixed by ``(seed, epoch)``, so a fresh
    ``Batches`` always yields the same sequence, on any device.

    >>> import torch
    >>> from synflow.data import DATASETS, Images
    >>> data = Images(torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.arange(5), tuple("abcde"))
    >>> batches = Batches(data, DATASETS["mnist"], batch_size=2, shuffle=True, seed=0)
    >>> len(batches), [tuple(x.shape) for x, _ in batches]
    (3, [(2, 1, 28, 28), (2, 1, 28, 28), (1, 1, 28, 28)])
    >>> [y.tolist() for _, y in Batches(data, DATASETS["mnist"], batch_size=2, shuffle=True)]
    [[2, 1], [0, 3], [4]]
    """

    def __init__(
        self,
        data: Images,
        info: DatasetInfo,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
        drop_last: bool = False,
    ):
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.device = torch.device(device or "cpu")
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.classes = data.classes
        self.info = info
        self.affine = _affine(info, self.device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.epoch = seed, 0
        self.memory_format, self.drop_last = memory_format, drop_last

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        n = len(self.labels)
        # the epoch's random numbers, drawn at once and moved to the device once
        order = torch.randperm(n, generator=generator).to(self.device) if self.shuffle else None
        if self.augment:
            offsets, flips = random_crops(n, generator)
            offsets, flips = offsets.to(self.device), flips.to(self.device)
        for batch in range(len(self)):
            part = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            if order is None:
                images, labels = self.images[part], self.labels[part]
            else:
                images, labels = self.images[order[part]], self.labels[order[part]]
            if self.augment:
                images = augment(images, offsets[:, part], flips[part])
            inputs = normalize(images, self.info, self.affine)
            yield inputs.contiguous(memory_format=self.memory_format), labels


def loaders(
    dataset: str,
    *,
    root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    batch_size: int = 128,
    test_batch_size: int = 1000,
    train_per_class: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    augment: bool | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[Batches, Batches]:
    """``(train, test)`` batches of ``dataset`` on ``device``.

    Training batches are shuffled and (where the dataset's info says so, or
    ``augment``) augmented; ``train_per_class`` trains on a class-balanced
    subset of that many images per class, drawn by ``seed``.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     for label in ("cat", "dog"):
    ...         (root / "toy" / split / label).mkdir(parents=True)
    ...         for i in range(3):
    ...             Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / "toy" / split / label / f"{i}.png")
    >>> train, test = loaders("toy", root=root, cache=root / "cache", batch_size=4)
    >>> len(train), len(test), train.shuffle, train.augment
    (2, 1, True, True)
    >>> x, y = next(iter(train))
    >>> tuple(x.shape), x.dtype, y.dtype
    ((4, 3, 8, 8), torch.float32, torch.int64)
    """
    info = dataset_info(dataset, root=root, cache=cache)
    train_data = load(dataset, "train", root=root, cache=cache, per_class=train_per_class, seed=seed)
    test_data = load(dataset, "test", root=root, cache=cache)
    common = {"device": device, "memory_format": memory_format}
    train = Batches(
        train_data, info, batch_size=batch_size, shuffle=True, seed=seed,
        augment=info.augment if augment is None else augment, **common,
    )
    test = Batches(test_data, info, batch_size=test_batch_size, **common)
    return train, test


def pruning_batches(
    dataset: str = "cifar10",
    *,
    root: str | os.PathLike | None = None,
    per_class: int = 10,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache: str | os.PathLike | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """The data SNIP and GraSP score with: ``per_class`` training images of every
    class (drawn by ``seed``), normalised, not augmented, as a list of
    ``(inputs float32, targets int64)`` batches of at most ``batch_size``.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     for label in ("cat", "dog"):
    ...         (root / "toy" / split / label).mkdir(parents=True)
    ...         for i in range(3):
    ...             Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / "toy" / split / label / f"{i}.png")
    >>> batches = pruning_batches("toy", root=root, cache=root / "cache", per_class=2, batch_size=3)
    >>> [(tuple(x.shape), y.tolist()) for x, y in batches]
    [((3, 3, 8, 8), [0, 0, 1]), ((1, 3, 8, 8), [1])]
    """
    info = dataset_info(dataset, root=root, cache=cache)
    data = load(dataset, "train", root=root, cache=cache, per_class=per_class, seed=seed)
    batches = Batches(data, replace(info, augment=False), batch_size=batch_size, device=device)
    return list(batches)
