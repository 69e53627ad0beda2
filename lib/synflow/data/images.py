"""Loading a split as uint8 tensors: listing image folders, decoding.

Image files are decoded once into a uint8 ``(N, C, H, W)`` tensor and cached
(:mod:`synflow.data.cache`: outside the data root, keyed by the source folder and its
file listing; a missing or corrupt cache is rebuilt, an unusable cache folder costs only
speed). An image-folder dataset's test/ (or val/) must hold the same class folders as
train/; a file that cannot be decoded is named in the error. torchvision layouts are already uint8 arrays and are read directly.
Class-balanced subsets of an image folder decode only the chosen files, so the
pruning subset is quick even without a cache.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..utils.progress import progress, quiet
from .cache import cache_key, cache_path, read_cache, write_cache
from .datasets import (
    DATASETS,
    SPLITS,
    TORCHVISION,
    DatasetInfo,
    DatasetNotFoundError,
    Images,
    Source,
    locate,
    split_dirs,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def list_folder(split_dir: Path, classes: Sequence[str] | None = None):
    """``(files, labels, classes)`` of an image folder, sorted by class then path."""
    if classes is None:
        classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"no class folders in {split_dir}")
    files, labels = [], []
    for label, name in enumerate(classes):
        top = os.path.join(split_dir, "")
        found = sorted(
            os.path.join(dirpath, f)[len(top) :]  # relative to split_dir (plain strings: fast)
            for dirpath, _, names in os.walk(os.path.join(top, name))
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        files += found
        labels += [label] * len(found)
    return files, labels, tuple(classes)


def _listing(source: Source, split: str):
    """``(split folder, relative files, labels, classes)`` of one split of a folder source."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if source.kind == "tinyimagenet":
        train_dir = source.path / "train"
        classes = tuple(sorted(p.name for p in train_dir.iterdir() if p.is_dir()))
        if split == "train":
            return (train_dir, *list_folder(train_dir, classes))
        val_dir = source.path / "val"
        annotations = val_dir / "val_annotations.txt"
        if not annotations.is_file():  # already regrouped into class folders
            return (val_dir, *list_folder(val_dir, _check_classes(train_dir, val_dir)))
        # the official val split is one flat folder: regroup it into classes by its annotations
        index = {name: label for label, name in enumerate(classes)}
        pairs = []
        for line in annotations.read_text().splitlines():
            if line.strip():
                file, wnid = line.split("\t")[:2]
                if wnid not in index:
                    raise ValueError(f"{annotations}: class {wnid!r} of {file} has no train folder")
                pairs.append((str(Path("images") / file), index[wnid]))
        pairs.sort(key=lambda pair: (pair[1], pair[0]))
        return val_dir, [p[0] for p in pairs], [p[1] for p in pairs], classes
    dirs = split_dirs(source.path)
    train_classes = _check_classes(dirs["train"], dirs["test"])
    return (dirs[split], *list_folder(dirs[split], train_classes))


def _check_classes(train_dir: Path, test_dir: Path) -> list[str]:
    """The class folders of ``train_dir``; raises ValueError naming the classes on each
    side when ``test_dir``'s class folders are not the same (spelling included): a test
    class missing or extra would drop or mislabel its images without a word."""
    train = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    test = sorted(p.name for p in test_dir.iterdir() if p.is_dir())
    if train != test:
        only_train = sorted(set(train) - set(test))
        only_test = sorted(set(test) - set(train))
        raise ValueError(
            f"the class folders of {test_dir} and {train_dir} differ: only in "
            f"{train_dir.name}/: {only_train or 'none'}; only in {test_dir.name}/: "
            f"{only_test or 'none'} ({len(train)} and {len(test)} classes); an image-folder "
            "dataset needs the same class folders, spelled the same, in both")
    return train


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded (truncated, not an image); names the file."""


# what PIL and torchvision raise for a damaged file: OSError ("Truncated File Read", "image
# file is truncated", UnidentifiedImageError), ValueError, SyntaxError (bad headers), ...
DECODE_ERRORS = (OSError, RuntimeError, ValueError, SyntaxError, EOFError, IndexError,
                 TypeError, struct.error, zlib.error)


def _decode_error(path: Path, error: BaseException) -> ImageDecodeError:
    first = (str(error).strip().splitlines() or [""])[0]
    return ImageDecodeError(f"cannot decode the image {path}: {type(error).__name__}: {first} "
                            "(a truncated or damaged file? replace or remove it)")


def _channels(source: Source, split_dir: Path, files: Sequence[str]) -> int:
    if source.name in DATASETS:
        return DATASETS[source.name].input_shape[0]
    from PIL import Image

    try:
        with Image.open(split_dir / files[0]) as image:
            return 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3
    except FileNotFoundError:
        raise
    except DECODE_ERRORS as error:
        raise _decode_error(split_dir / files[0], error) from error


def _decode_pil(path: Path, channels: int) -> Tensor:
    from PIL import Image

    with Image.open(path) as pil:
        array = np.asarray(pil.convert("L" if channels == 1 else "RGB"))
    return torch.from_numpy(array.copy()).reshape(*array.shape[:2], -1).permute(2, 0, 1)


def torchvision_decoder(channels: int):
    """torchvision.io's decoder (5-10x faster than PIL here; same pixels), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its image io
            from torchvision.io import ImageReadMode, decode_image, read_file
    except ImportError:
        return None
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB

    def decode(path: Path) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_image(read_file(str(path)), mode=mode)

    return decode


def decode_file(path: Path, channels: int, decoder=None) -> Tensor:
    """One image file as uint8 ``(channels, H, W)``: torchvision's ``decoder`` (from
    :func:`torchvision_decoder`) when given, PIL for what it cannot decode.

    Raises :class:`ImageDecodeError` (a ValueError) naming the file when neither can
    decode it (truncated, damaged, not an image), FileNotFoundError when it is gone."""
    try:
        try:
            return decoder(path) if decoder is not None else _decode_pil(path, channels)
        except RuntimeError:  # a format torchvision cannot decode: let PIL do it
            return _decode_pil(path, channels)
    except FileNotFoundError:
        raise
    except DECODE_ERRORS as error:
        raise _decode_error(path, error) from error


def _decode(split_dir: Path, files: Sequence[str], channels: int, shape=None) -> Tensor:
    """Decode ``files`` into one uint8 ``(N, C, H, W)`` tensor (all must share a size)."""
    decoder = torchvision_decoder(channels)
    out = None
    bar = progress(files, desc=f"decoding {split_dir}", disable=quiet() or len(files) < 5000)
    for i, file in enumerate(bar):
        path = split_dir / file
        image = decode_file(path, channels, decoder)
        if out is None:
            shape = tuple(shape or image.shape)
            out = torch.empty((len(files), *shape), dtype=torch.uint8)
        if tuple(image.shape) != tuple(shape):
            raise ValueError(
                f"{path} has shape {tuple(image.shape)}, expected {tuple(shape)} like the others"
            )
        out[i] = image
    return out


def _load_torchvision(source: Source, split: str) -> Images:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[source.name][0])
    dataset = cls(str(source.path), train=split == "train", download=False)
    data = dataset.data
    images = torch.as_tensor(np.asarray(data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return Images(images.contiguous(), labels, tuple(dataset.classes))


def balanced_indices(labels: Tensor, per_class: int, seed: int = 0) -> Tensor:
    """Indices of ``per_class`` examples of every class, drawn by ``seed``, ascending."""
    if not (isinstance(per_class, int) and per_class >= 1):
        raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(labels).tolist():
        where = torch.nonzero(labels == label).flatten()
        if where.numel() < per_class:
            raise ValueError(
                f"class {label} has only {where.numel()} examples, fewer than per_class={per_class}"
            )
        chosen.append(where[torch.randperm(where.numel(), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def load(
    dataset: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    per_class: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> Images:
    """One split of ``dataset`` as uint8 images and int64 labels, on the CPU.

    ``per_class`` keeps a class-balanced subset drawn by ``seed`` (for an
    image-folder source only those files are decoded). ``cache`` is the folder
    of decoded images (default :func:`synflow.utils.paths.cache_dir`).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    source = locate(dataset, root, download=download)
    if source.kind == "torchvision":
        data = _load_torchvision(source, split)
        return data if per_class is None else data.subset(balanced_indices(data.labels, per_class, seed))
    split_dir, files, labels, classes = _listing(source, split)
    if not files:
        raise DatasetNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {split_dir}")
    labels = torch.tensor(labels, dtype=torch.int64)
    channels = _channels(source, split_dir, files)
    shape = DATASETS[dataset].input_shape if dataset in DATASETS else None
    if per_class is not None:
        chosen = balanced_indices(labels, per_class, seed)
        images = _decode(split_dir, [files[i] for i in chosen.tolist()], channels, shape)
        return Images(images, labels[chosen], classes)
    key = cache_key(source, split, split_dir, files, classes)
    path = cache_path(source, split, key, cache)
    cached = read_cache(path, key, len(files))
    if cached is not None:
        return cached
    data = Images(_decode(split_dir, files, channels, shape), labels, classes)
    write_cache(path, key, data)
    return data


def dataset_info(
    dataset: str,
    *,
    root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
) -> DatasetInfo:
    """``DATASETS[dataset]``, or for another image-folder dataset the info read from
    its training images (shape, class count, per-channel mean and std)."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    data = load(dataset, "train", root=root, cache=cache)
    pixels = data.images.double().div_(255).transpose(0, 1).flatten(1)
    return DatasetInfo(
        dataset,
        tuple(data.images.shape[1:]),
        len(data.classes),
        tuple(pixels.mean(1).tolist()),
        tuple(pixels.std(1).clamp_min(1e-6).tolist()),
        augment=data.images.shape[1] == 3,
    )
