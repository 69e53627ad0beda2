"""Datasets as uint8 tensors in memory, batched augmentation on the training device.

Where a dataset is looked for (first match wins), under the data root
(:func:`synflow.paths.data_root`: an explicit ``root``, else $SYNFLOW_DATA,
else ``<repo>/data``):

1. torchvision's own layout, checked the way torchvision checks it
   (``MNIST/raw/``, ``cifar-10-batches-py/``, ``cifar-100-python/`` with their
   md5 sums; Tiny ImageNet as the official zip unpacks: ``tiny-imagenet-200/``);
2. image folders ``<name>/``, ``<name>-jpeg/`` or ``<name>-png/`` holding
   ``train/<class>/*`` and ``test/<class>/*`` (or ``val/<class>/*``).
   Any other name is accepted as such an image-folder dataset.

When nothing is found the dataset is downloaded through torchvision into the
data root; when that fails (offline, read-only root) :class:`DatasetNotFoundError`
names every place looked and what to put there.

Image files are decoded once into a uint8 ``(N, C, H, W)`` tensor and cached in
:func:`synflow.paths.cache_dir` (never in the data root, which may be read-only),
keyed by the source folder and its file listing; a missing or corrupt cache is
rebuilt. torchvision layouts are already uint8 arrays and are read directly.
Class-balanced subsets of an image folder decode only the chosen files, so the
pruning subset is quick even without a cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .paths import cache_dir, data_root

CACHE_VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")


def quiet() -> bool:
    """True when $SYNFLOW_QUIET is set to anything but "" or "0" (CI, logs)."""
    return os.environ.get("SYNFLOW_QUIET", "") not in ("", "0")


def progress(iterable=None, **kwargs):
    """A ``tqdm.auto`` progress bar, disabled when $SYNFLOW_QUIET=1."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


# ----------------------------------------------------------------- the registry


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the pipeline need to know about a dataset.

    ``mean``/``std`` are the per-channel normalisation (of pixel values in
    [0, 1]); ``augment`` says whether training uses random crop (padding 4) and
    horizontal flip, as the paper does on CIFAR and Tiny ImageNet.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = True


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), augment=False),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
    ),
    "cifar100": DatasetInfo(
        "cifar100", (3, 32, 32), 100, (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)
    ),
    "tinyimagenet": DatasetInfo(
        "tinyimagenet", (3, 64, 64), 200, (0.480, 0.448, 0.397), (0.276, 0.269, 0.282)
    ),
}

# torchvision.datasets class and the folder it keeps its files in
TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)"),
    "cifar100": ("CIFAR100", "cifar-100-python/ (train, test, meta)"),
}
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINYIMAGENET_DIR = "tiny-imagenet-200"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable."""


@dataclass(frozen=True)
class Images:
    """A split in memory: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Tensor) -> Images:
        return Images(self.images[indices], self.labels[indices], self.classes)


# --------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where a dataset was found: ``kind`` is "torchvision", "folder" or "tinyimagenet"."""

    name: str
    kind: str
    path: Path


def _folder_candidates(name: str, root: Path) -> list[Path]:
    return [root / name, root / f"{name}-jpeg", root / f"{name}-png"]


def _split_dirs(folder: Path) -> dict[str, Path] | None:
    """``{"train": ..., "test": ...}`` if ``folder`` holds train/ and test/ (or val/)."""
    if not (folder / "train").is_dir():
        return None
    for test_name in ("test", "val"):
        if (folder / test_name).is_dir() and any(p.is_dir() for p in (folder / test_name).iterdir()):
            return {"train": folder / "train", "test": folder / test_name}
    return None


def _torchvision_ok(name: str, root: Path) -> bool:
    """Whether torchvision finds ``name`` under ``root`` intact (its own check:
    the files' presence for MNIST, their md5 sums for CIFAR), without loading it."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name][0])
    probe = cls.__new__(cls)
    probe.root = str(root)
    return probe._check_exists() if name == "mnist" else probe._check_integrity()


def _tinyimagenet_ok(folder: Path) -> bool:
    return (folder / "train").is_dir() and (
        (folder / "val" / "val_annotations.txt").is_file() or _split_dirs(folder) is not None
    )


def _places(name: str, root: Path) -> list[tuple[Path, str]]:
    """Every place a dataset may be, with what should be there."""
    places = []
    if name in TORCHVISION:
        what = f"torchvision's {TORCHVISION[name][0]} layout: {TORCHVISION[name][1]}"
        folder = TORCHVISION[name][1].split("/")[0]
        if (root / folder).exists():
            what += f" ({folder}/ is there but incomplete or fails torchvision's check)"
        places.append((root, what))
    if name == "tinyimagenet":
        places.append(
            (
                root / TINYIMAGENET_DIR,
                "the unpacked tiny-imagenet-200.zip (train/, val/ with val_annotations.txt)",
            )
        )
    for folder in _folder_candidates(name, root):
        places.append((folder, "image folders train/<class>/* and test/<class>/* (or val/)"))
    return places


def locate(dataset: str, root: str | os.PathLike | None = None, *, download: bool = True) -> Source:
    """Find ``dataset`` under the data root, downloading it if allowed and possible."""
    base = data_root(root)
    found = _find(dataset, base)
    if found is not None:
        return found
    if dataset not in DATASETS:
        raise DatasetNotFoundError(
            f"unknown dataset {dataset!r}: not one of {', '.join(DATASETS)}, and no image folder "
            "dataset of that name (train/<class>/* and test/<class>/* or val/<class>/*) in any of: "
            + ", ".join(str(p) for p in _folder_candidates(dataset, base))
        )
    reason = "download=False"
    if download:
        try:
            _download(dataset, base)
        except (OSError, RuntimeError, ValueError) as error:  # offline, read-only, bad md5
            reason = f"download failed: {type(error).__name__}: {error}"
        else:
            found = _find(dataset, base)
            if found is not None:
                return found
            reason = "download finished but the files are still not found"
    lines = "\n".join(f"  - {path}: {what}" for path, what in _places(dataset, base))
    raise DatasetNotFoundError(
        f"dataset {dataset!r} not found under the data root {base} ({reason}). Looked in:\n"
        f"{lines}\nPut the dataset in one of these places, or point the data root elsewhere "
        "(root= argument or the SYNFLOW_DATA environment variable)."
    )


def _find(name: str, base: Path) -> Source | None:
    if name in TORCHVISION and _torchvision_ok(name, base):
        return Source(name, "torchvision", base)
    if name == "tinyimagenet" and _tinyimagenet_ok(base / TINYIMAGENET_DIR):
        return Source(name, "tinyimagenet", base / TINYIMAGENET_DIR)
    for folder in _folder_candidates(name, base):
        if _split_dirs(folder) is not None:
            return Source(name, "folder", folder)
    return None


def _download(name: str, base: Path) -> None:
    """Fetch ``name`` into ``base`` through torchvision (raises when offline)."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_and_extract_archive

    if name == "tinyimagenet":
        download_and_extract_archive(TINYIMAGENET_URL, str(base), md5=TINYIMAGENET_MD5)
        return
    cls = getattr(tvd, TORCHVISION[name][0])
    for train in (True, False):
        cls(str(base), train=train, download=True)


# ---------------------------------------------------------- listing and decoding


def _list_folder(split_dir: Path, classes: Sequence[str] | None = None):
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
            return (train_dir, *_list_folder(train_dir, classes))
        val_dir = source.path / "val"
        annotations = val_dir / "val_annotations.txt"
        if not annotations.is_file():  # already regrouped into class folders
            return (val_dir, *_list_folder(val_dir, classes))
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
    split_dir = _split_dirs(source.path)[split]
    train_classes = sorted(p.name for p in _split_dirs(source.path)["train"].iterdir() if p.is_dir())
    return (split_dir, *_list_folder(split_dir, train_classes))


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


def _torchvision_decoder(channels: int):
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
    :func:`_torchvision_decoder`) when given, PIL for what it cannot decode."""
    try:
        return decoder(path) if decoder is not None else _decode_pil(path, channels)
    except RuntimeError:  # a format torchvision cannot decode: let PIL do it
        return _decode_pil(path, channels)


def _decode(split_dir: Path, files: Sequence[str], channels: int, shape=None) -> Tensor:
    """Decode ``files`` into one uint8 ``(N, C, H, W)`` tensor (all must share a size)."""
    decoder = _torchvision_decoder(channels)
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


# ----------------------------------------------------------------------- cache


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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = {
        "key": key,
        "images": data.images,
        "labels": data.labels,
        "classes": list(data.classes),
        "checksum": _checksum(data.images, data.labels),
    }
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache folder costs speed, not correctness
        warnings.warn(f"could not write the image cache {path}: {error}", stacklevel=3)
        temporary.unlink(missing_ok=True)


# ----------------------------------------------------------------------- loading


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
    of decoded images (default :func:`synflow.paths.cache_dir`).
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


# --------------------------------------------------------- batches on a device


def _affine(info: DatasetInfo, device) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``x / 255 - mean) / std == x * scale - shift`` per channel."""
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    return (1 / (255 * std)).to(device), (mean / std).to(device)


def normalize(images: Tensor, info: DatasetInfo, affine=None) -> Tensor:
    """uint8 images -> float32 ``(x / 255 - mean) / std`` per channel, on their device."""
    scale, shift = affine if affine is not None else _affine(info, images.device)
    return images.float().mul_(scale).sub_(shift)


def random_crops(count: int, generator: torch.Generator, padding: int = 4):
    """The random numbers of :func:`augment` for ``count`` images: ``(offsets (2, count),
    flips (count,))``, drawn on the CPU so that every device sees the same crops."""
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator)
    flips = torch.randint(0, 2, (count,), generator=generator).bool()
    return offsets, flips


def augment(images: Tensor, offsets: Tensor, flips: Tensor, padding: int = 4) -> Tensor:
    """Random crop with zero ``padding`` then horizontal flip, batched.

    ``images`` is a uint8 ``(B, C, H, W)`` batch on any device; ``offsets`` (2, B)
    are the crops' top/left corners in the padded image, ``flips`` (B,) says which
    are mirrored (see :func:`random_crops`). The result is channels-last in memory.
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
    ``(inputs float32, targets int64)`` batches of at most ``batch_size``."""
    info = dataset_info(dataset, root=root, cache=cache)
    data = load(dataset, "train", root=root, cache=cache, per_class=per_class, seed=seed)
    batches = Batches(data, replace(info, augment=False), batch_size=batch_size, device=device)
    return list(batches)
