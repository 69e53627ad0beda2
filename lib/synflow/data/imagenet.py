"""Pruning data of ImageNet shape for SNIP and GraSP (the paper's Figures 2-4 and 7
are drawn on VGG-19 at 3x224x224 with 1000 classes; Section 6 and Appendix).

SynFlow, magnitude and random need no data. SNIP and GraSP score with a few labelled
images; for the ImageNet VGG-19 they must have its input shape. Two sources:

- **ImageNet** when the data root holds torchvision's ImageFolder layout
  ``imagenet/train/<wnid>/*.JPEG`` (or ``imagenet-jpeg/``, ``imagenet-png/``): ``per_class``
  training images of every class drawn by ``seed``, resized (shorter side
  ``round(image_size * 256 / 224)``), center-cropped to ``image_size``, normalised with
  ImageNet's mean and std (torchvision's evaluation transform);
- **a CIFAR-10 stand-in** otherwise (no ImageNet here): ``per_class`` CIFAR-10 training
  images of each of its 10 classes resized to ``image_size`` x ``image_size``, normalised
  with CIFAR-10's mean and std, their labels 0-9 used on the 1000-way head. These are
  *not* ImageNet data; the description returned with the batches says so.

:func:`pruning_data` picks the notebooks' pruning data by name ("cifar10" or "imagenet").
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..utils.paths import data_root
from .batches import Batches, pruning_batches
from .datasets import DATASETS, DatasetInfo, DatasetNotFoundError, Images, folder_candidates
from .images import balanced_indices, decode_file, load, torchvision_decoder
from .listing import list_folder

IMAGENET = DatasetInfo(
    "imagenet", (3, 224, 224), 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), augment=False
)
SOURCES = ("auto", "imagenet", "cifar10")
# GraSP's double backward on VGG-19 at 224x224 (width 1): see README (measured peak memory)
BATCH_SIZE = 10
PRUNING_DATA = ("cifar10", "imagenet")

Batch = tuple[Tensor, Tensor]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _imagenet_train_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The ``train/`` folder of ImageNet under the data root (ImageFolder layout:
    ``<root>/imagenet/train/<wnid>/*.JPEG``), or None when there is none."""
    for folder in folder_candidates("imagenet", data_root(root)):
        train = folder / "train"
        if train.is_dir() and any(p.is_dir() for p in train.iterdir()):
            return train
    return None


def _resize(images: Tensor, size: list[int]) -> Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(images, size, antialias=True)


def _imagenet_images(train: Path, per_class: int, size: int, seed: int) -> Images:
    from torchvision.transforms.v2 import functional as TF

    files, labels, classes = list_folder(train)
    labels = torch.tensor(labels, dtype=torch.int64)
    chosen = balanced_indices(labels, per_class, seed)
    decoder = torchvision_decoder(3)
    shorter = round(size * 256 / 224)
    images = torch.empty((len(chosen), 3, size, size), dtype=torch.uint8)
    for i, index in enumerate(chosen.tolist()):
        image = decode_file(train / files[index], 3, decoder)
        images[i] = TF.center_crop(_resize(image, [shorter]), [size, size])
    return Images(images, labels[chosen], classes)


def imagenet_pruning_batches(
    *,
    per_class: int = 1,
    image_size: int = 224,
    source: str = "auto",
    num_classes: int = 1000,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    device: str | torch.device | None = None,
) -> tuple[list[Batch], str]:
    """SNIP/GraSP pruning batches of ImageNet shape, and a one-line description of them.

    Args:
        per_class: images of every class (ImageNet: of each of its classes; the stand-in:
            of each of CIFAR-10's 10), drawn by ``seed``.
        image_size: the side of the square inputs (224 for the paper's VGG-19; smaller for
            quick runs: ImageNet is resized to ``round(image_size * 256 / 224)`` and
            center-cropped, CIFAR-10 resized).
        source: "auto" (ImageNet when the data root holds it, else the CIFAR-10
            stand-in), "imagenet" (raise when it is missing) or "cifar10" (the stand-in).
        num_classes: the model's head; every label must be below it.
        batch_size: images per batch (GraSP's double backward holds one batch's graph;
            10 at 224x224 keeps VGG-19 within a few GiB, see README).

    Returns ``(batches, description)``: a list of ``(inputs float32 (B, 3, image_size,
    image_size), targets int64 (B,))`` on ``device``, and one line saying what they are
    (for the stand-in: that it is CIFAR-10, not ImageNet).

    Raises ValueError for a bad ``source``, ``per_class``, ``image_size``, ``batch_size``
    or ``num_classes`` (fewer than the data's classes), and
    :class:`synflow.data.datasets.DatasetNotFoundError` when ``source="imagenet"`` finds no
    ImageNet (naming the places looked).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for wnid in ("n01", "n02"):
    ...     (root / "imagenet" / "train" / wnid).mkdir(parents=True)
    ...     Image.new("RGB", (12, 10)).save(root / "imagenet" / "train" / wnid / "a.JPEG", "JPEG")
    >>> batches, description = imagenet_pruning_batches(per_class=1, image_size=8, root=root)
    >>> [(tuple(x.shape), y.tolist()) for x, y in batches]
    [((2, 3, 8, 8), [0, 1])]
    >>> description.startswith("ImageNet train")
    True
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    _positive_int("per_class", per_class)
    _positive_int("image_size", image_size)
    _positive_int("batch_size", batch_size)
    _positive_int("num_classes", num_classes)
    train = _imagenet_train_dir(root) if source != "cifar10" else None
    if source == "imagenet" and train is None:
        places = ", ".join(
            str(p / "train") for p in folder_candidates("imagenet", data_root(root))
        )
        raise DatasetNotFoundError(
            f"source='imagenet' but no ImageNet under the data root {data_root(root)}: "
            f"looked for ImageFolder class folders train/<wnid>/*.JPEG in {places}; "
            "use source='auto' or 'cifar10' for the CIFAR-10 stand-in"
        )
    if train is not None:
        images = _imagenet_images(train, per_class, image_size, seed)
        info = IMAGENET
        description = (
            f"ImageNet train ({train}): {len(images)} images, {per_class} per class of "
            f"{len(images.classes)} (seed {seed}), resized {round(image_size * 256 / 224)}, "
            f"center-cropped {image_size}x{image_size}, ImageNet mean/std"
        )
    else:
        cifar = load("cifar10", "train", root=root, per_class=per_class, seed=seed)
        images = Images(_resize(cifar.images, [image_size, image_size]), cifar.labels,
                        cifar.classes)
        info = DATASETS["cifar10"]
        why = "forced by source='cifar10'" if source == "cifar10" else (
            "no ImageNet train/ folder in the data root")
        description = (
            f"STAND-IN, not ImageNet ({why}): {len(images)} CIFAR-10 training images "
            f"({per_class} per class, seed {seed}) resized 32x32 -> {image_size}x{image_size}, "
            f"CIFAR-10 mean/std, labels 0-9 on the {num_classes}-way head"
        )
    if len(images.classes) > num_classes:
        raise ValueError(
            f"num_classes={num_classes} is smaller than the pruning data's "
            f"{len(images.classes)} classes (labels 0..{len(images.classes) - 1})"
        )
    info = DatasetInfo(info.name, (3, image_size, image_size), num_classes, info.mean,
                       info.std, augment=False)
    return list(Batches(images, info, batch_size=batch_size, device=device)), description


def pruning_data(
    dataset: str,
    input_shape,
    *,
    per_class: int = 10,
    num_classes: int = 10,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> tuple[list[Batch], str]:
    """The notebooks' SNIP/GraSP data by name, with a one-line description.

    ``dataset`` "cifar10": :func:`synflow.data.batches.pruning_batches` (CIFAR-10 training images,
    ``input_shape`` must be (3, 32, 32)); "imagenet": :func:`imagenet_pruning_batches`
    (ImageNet when present, else the CIFAR-10 stand-in; ``input_shape`` (3, S, S)).

    Raises ValueError naming the bad ``dataset`` or an ``input_shape`` the data cannot have.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for wnid in ("n01", "n02"):
    ...     (root / "imagenet" / "train" / wnid).mkdir(parents=True)
    ...     Image.new("RGB", (12, 10)).save(root / "imagenet" / "train" / wnid / "a.JPEG", "JPEG")
    >>> batches, description = pruning_data("imagenet", (3, 8, 8), per_class=1, root=root)
    >>> len(batches), tuple(batches[0][0].shape)
    (1, (2, 3, 8, 8))
    >>> pruning_data("cifar10", (3, 8, 8))
    Traceback (most recent call last):
        ...
    ValueError: pruning data 'cifar10' are 3x32x32 images, but input_shape=(3, 8, 8); ...
    """
    if dataset not in PRUNING_DATA:
        raise ValueError(
            f"unknown pruning data {dataset!r}; choose one of: {', '.join(PRUNING_DATA)}"
        )
    shape = tuple(input_shape)
    if dataset == "cifar10":
        if shape != DATASETS["cifar10"].input_shape:
            raise ValueError(
                f"pruning data 'cifar10' are 3x32x32 images, but input_shape={shape!r}; "
                "use 'imagenet' for another size"
            )
        if num_classes < 10:
            raise ValueError(f"num_classes={num_classes} is smaller than CIFAR-10's 10 classes")
        batches = pruning_batches(
            "cifar10", root=root, per_class=per_class, seed=seed, device=device
        )
        count = sum(len(t) for _, t in batches)
        return batches, (f"CIFAR-10 train: {count} images ({per_class} per class, seed {seed}), "
                         "3x32x32, CIFAR-10 mean/std")
    if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"pruning data 'imagenet' are square RGB images (3, S, S), but input_shape={shape!r}"
        )
    return imagenet_pruning_batches(
        per_class=per_class, image_size=shape[1], num_classes=num_classes, root=root,
        seed=seed, device=device,
    )
