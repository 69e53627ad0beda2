"""Loading a split as uint8 tensors: listing image folders, decoding, the decoded-image cache.

Image files are decoded once into a uint8 ``(N, C, H, W)`` tensor and cached in
:func:`synflow.utils.paths.cache_dir` (never in the data root, which may be read-only),
keyed by the source folder and its file listing; a missing or corrupt cache is
rebuilt. torchvision layouts are already uint8 arrays and are read directly.
Class-balanced subsets of an image folder decode only the chosen files, so the
pruning subset is quick even without a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.files import atomic_write
from ..utils.paths import cache_dir
from ..utils.progress import progress, quiet
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

CACHE_VERSION = 1
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
            return (val_dir, *list_folder(val_dir, classes))
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
    split_dir = split_dirs(source.path)[split]
    train_classes = sorted(p.name for p in split_dirs(source.path)["train"].iterdir() if p.is_dir())
    return (split_dir, *list_folder(split_dir, train_classes))


def _channels(source: Source, split_dir: Path, files: Sequence[str]) -> int:
    if source.name in DATASETS:
        return DATASETS[source.name].input_shape[0]
    from PIL import Image

    with Image.open(split_dir / files[0]) as image:
        return 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3


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
    :func:`torchvision_decoder`) when given, PIL for what it cannot decode."""
    try:
        return decoder(path) if decoder is not None else _decode_pil(path, channels)
    except RuntimeError:  # a format torchvision cannot decode: let PIL do it
        return _decode_pil(path, channels)


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


def _cache_key(source: Source, split: str, split_dir: Path, files, classes) -> str:
    top = os.path.join(split_dir, "")
    sizes = [os.stat(top + f).st_size for f in files]
    description = {
        "version": CACHE_VERSION,
        "dataset": source.name,
        "split": split,
        "path": str(split_dir.resolve()),
        "classes": list(classes),
        "files": list(files),
        "sizes": sizes,
    }
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()


def _checksum(images: Tensor, labels: Tensor) -> int:
    """CRC-32 of the image and label bytes (catches a damaged cache cheaply)."""
    crc = zlib.crc32(images.contiguous().numpy().data)
    return zlib.crc32(labels.contiguous().numpy().data, crc)


def cache_path(source: Source, split: str, key: str, cache: str | os.PathLike | None = None) -> Path:
    folder = Path(cache).expanduser().resolve() if cache is not None else cache_dir()
    return folder / f"{source.name}-{split}-{key[:16]}.pt"


def _read_cache(path: Path, key: str, count: int) -> Images | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = stored["images"], stored["labels"]
        valid = (
            stored["key"] == key
            and images.dtype == torch.uint8
            and images.shape[0] == labels.shape[0] == count
            and stored["checksum"] == _checksum(images, labels)
        )
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, AttributeError,
            pickle.UnpicklingError) as error:  # truncated, garbage, wrong structure
        warnings.warn(f"image cache {path} is unreadable ({error!r}); rebuilding it", stacklevel=3)
        return None
    if not valid:
        warnings.warn(f"image cache {path} does not match its source; rebuilding it", stacklevel=3)
        return None
    return Images(images, labels, tuple(stored["classes"]))


def _write_cache(path: Path, key: str, data: Images) -> None:
    payload = {
        "key": key,
        "images": data.images,
        "labels": data.labels,
        "classes": list(data.classes),
        "checksum": _checksum(data.images, data.labels),
    }
    try:
        atomic_write(path, lambda file: torch.save(payload, file))
    except OSError as error:  # a read-only cache folder costs speed, not correctness
        warnings.warn(f"could not write the image cache {path}: {error}", stacklevel=3)


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
    key = _cache_key(source, split, split_dir, files, classes)
    path = cache_path(source, split, key, cache)
    cached = _read_cache(path, key, len(files))
    if cached is not None:
        return cached
    data = Images(_decode(split_dir, files, channels, shape), labels, classes)
    _write_cache(path, key, data)
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
