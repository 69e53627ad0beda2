"""Loading a split as uint8 tensors: decoding image folders (their listing:
:mod:`synflow.data.listing`), reading torchvision's layouts.

Image files are decoded once into a uint8 ``(N, C, H, W)`` tensor and cached
(:mod:`synflow.data.cache`: outside the data root, keyed by the source folder and its
file listing; a missing or corrupt cache is rebuilt, an unusable cache folder costs only
speed). A file that cannot be decoded is named in the error. torchvision layouts are
already uint8 arrays and are read directly.
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

from ..utils.paths import data_root
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
)
from .listing import IMAGE_EXTENSIONS, split_listing


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded (truncated, not an image); names the file.

    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "broken.png"
    >>> _ = path.write_bytes(b"not an image")
    >>> try:
    ...     decode_file(path, 3)
    ... except ImageDecodeError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    ImageDecodeError True
    """


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
    """torchvision.io's decoder (5-10x faster than PIL here; same pixels), or None.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.new("RGB", (5, 4)).save(path)
    >>> decode = torchvision_decoder(3)
    >>> decode is None or tuple(decode(path).shape) == (3, 4, 5)
    True
    """
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
    decode it (truncated, damaged, not an image), FileNotFoundError when it is gone.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.new("RGB", (5, 4), (255, 0, 0)).save(path)
    >>> image = decode_file(path, 1)
    >>> tuple(image.shape), image.dtype, image[0, 0, 0].item()
    ((1, 4, 5), torch.uint8, 76)
    """
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
    """Indices of ``per_class`` examples of every class, drawn by ``seed``, ascending.

    >>> import torch
    >>> balanced_indices(torch.tensor([0, 0, 0, 1, 1, 1]), 2, seed=0)
    tensor([0, 2, 4, 5])
    >>> balanced_indices(torch.tensor([0, 1, 1]), 2)
    Traceback (most recent call last):
        ...
    ValueError: class 0 has only 1 examples, fewer than per_class=2
    """
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

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     for label in ("cat", "dog"):
    ...         (root / "toy" / split / label).mkdir(parents=True)
    ...         for i in range(3):
    ...             Image.new("L", (4, 4), 40 * i).save(root / "toy" / split / label / f"{i}.png")
    >>> data = load("toy", "train", root=root, cache=root / "cache")
    >>> tuple(data.images.shape), data.images.dtype, data.labels.tolist(), data.classes
    ((6, 1, 4, 4), torch.uint8, [0, 0, 0, 1, 1, 1], ('cat', 'dog'))
    >>> load("toy", "train", root=root, per_class=1, seed=0).labels.tolist()
    [0, 1]
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    source = locate(dataset, root, download=download)
    if source.kind == "torchvision":
        data = _load_torchvision(source, split)
        return data if per_class is None else data.subset(balanced_indices(data.labels, per_class, seed))
    split_dir, files, labels, classes = split_listing(source, split)
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


# found copies by dataset, root and the root's mtime (renaming or adding a folder changes
# it); torchvision's check reads md5 sums, too slow for every stored run loaded
_LABELS: dict[tuple[str, str, int], str] = {}


def source_label(dataset: str, root: str | os.PathLike | None = None) -> str | None:
    """:attr:`Source.label` of the copy of ``dataset`` under the data root ("torchvision",
    "folder cifar10-jpeg", ...), or None where it is not there (nothing is downloaded).
    A run records it; one trained on another copy is not reused (experiments.store).

    >>> source_label("nothing", "/no/data") is None
    True
    """
    base = data_root(root)
    try:
        key = (dataset, str(base), base.stat().st_mtime_ns)
    except OSError:  # no data root: nothing is there
        return None
    if key not in _LABELS:
        try:
            _LABELS[key] = locate(dataset, root, download=False).label
        except DatasetNotFoundError:
            return None
    return _LABELS[key]


def dataset_info(
    dataset: str,
    *,
    root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
) -> DatasetInfo:
    """``DATASETS[dataset]``, or for another image-folder dataset the info read from
    its training images (shape, class count, per-channel mean and std).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> dataset_info("mnist").input_shape
    (1, 28, 28)
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     for label in ("cat", "dog"):
    ...         (root / "toy" / split / label).mkdir(parents=True)
    ...         Image.new("L", (4, 4), 255 * (label == "dog")).save(root / "toy" / split / label / "0.png")
    >>> info = dataset_info("toy", root=root, cache=root / "cache")
    >>> info.input_shape, info.num_classes, info.mean, info.augment
    ((1, 4, 4), 2, (0.5,), False)
    """
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
