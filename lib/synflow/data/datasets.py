"""The dataset registry and where a dataset is found (or downloaded) under the data root.

Where a dataset is looked for (first match wins), under the data root
(:func:`synflow.utils.paths.data_root`: an explicit ``root``, else $SYNFLOW_DATA,
else the default data folder):

1. torchvision's own layout, checked the way torchvision checks it
   (``MNIST/raw/``, ``cifar-10-batches-py/``, ``cifar-100-python/`` with their
   md5 sums; Tiny ImageNet as the official zip unpacks: ``tiny-imagenet-200/``);
2. image folders ``<name>/``, ``<name>-jpeg/`` or ``<name>-png/`` holding
   ``train/<class>/*`` and ``test/<class>/*`` (or ``val/<class>/*``).
   Any other name is accepted as such an image-folder dataset.

When nothing is found the dataset is downloaded through torchvision into the
data root; when that fails (offline, read-only root) :class:`DatasetNotFoundError`
names every place looked and what to put there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from ..utils.paths import data_root

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the pipeline need to know about a dataset.

    ``mean``/``std`` are the per-channel normalisation (of pixel values in
    [0, 1]); ``augment`` says whether training uses random crop (padding 4) and
    horizontal flip, as the paper does on CIFAR and Tiny ImageNet.

    >>> info = DATASETS["cifar10"]
    >>> info.input_shape, info.num_classes, info.augment
    ((3, 32, 32), 10, True)
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
    """A dataset is neither on disk nor downloadable.

    >>> import tempfile
    >>> try:
    ...     locate("toy", tempfile.mkdtemp(), download=False)
    ... except DatasetNotFoundError as error:
    ...     print(str(error)[:30])
    unknown dataset 'toy': not one
    """


@dataclass(frozen=True)
class Images:
    """A split in memory: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``.

    >>> import torch
    >>> data = Images(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ("a", "b"))
    >>> len(data), data.subset(torch.tensor([1, 3])).labels.tolist()
    (4, [1, 1])
    """

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Tensor) -> Images:
        return Images(self.images[indices], self.labels[indices], self.classes)


@dataclass(frozen=True)
class Source:
    """Where a dataset was found: ``kind`` is "torchvision", "folder" or "tinyimagenet".

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     (root / "toy" / split / "a").mkdir(parents=True)
    >>> source = locate("toy", root, download=False)
    >>> source.kind, source.path.name, source.label
    ('folder', 'toy', 'folder toy')
    """

    name: str
    kind: str
    path: Path

    @property
    def label(self) -> str:
        """Which copy of the dataset this is, the same on every machine (the kind, and
        for image folders the folder's name: ``cifar10-jpeg`` holds other pixels than
        torchvision's exact files): what a run records, and what a stored run must match
        to be reused."""
        return f"folder {self.path.name}" if self.kind == "folder" else self.kind


def folder_candidates(name: str, root: Path) -> list[Path]:
    """The image-folder places of dataset ``name`` under ``root``, in the order looked:
    ``<name>/``, ``<name>-jpeg/``, ``<name>-png/``.

    >>> from pathlib import Path
    >>> [p.name for p in folder_candidates("cifar10", Path("data"))]
    ['cifar10', 'cifar10-jpeg', 'cifar10-png']
    """
    return [root / name, root / f"{name}-jpeg", root / f"{name}-png"]


def split_dirs(folder: Path) -> dict[str, Path] | None:
    """``{"train": ..., "test": ...}`` if ``folder`` holds train/ and test/ (or val/).

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> split_dirs(folder) is None
    True
    >>> for split in ("train", "val"):
    ...     (folder / split / "a").mkdir(parents=True)
    >>> {split: path.name for split, path in split_dirs(folder).items()}
    {'train': 'train', 'test': 'val'}
    """
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
        (folder / "val" / "val_annotations.txt").is_file() or split_dirs(folder) is not None
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
    for folder in folder_candidates(name, root):
        places.append((folder, "image folders train/<class>/* and test/<class>/* (or val/)"))
    return places


def locate(dataset: str, root: str | os.PathLike | None = None, *, download: bool = True) -> Source:
    """Find ``dataset`` under the data root, downloading it if allowed and possible.

    Returns a :class:`Source`; raises :class:`DatasetNotFoundError` naming every place
    looked (and why a download failed) when it is nowhere.

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     (root / "toy-png" / split / "a").mkdir(parents=True)
    >>> source = locate("toy", root, download=False)
    >>> source.kind, source.path.name
    ('folder', 'toy-png')
    >>> locate("nothing", root, download=False)
    Traceback (most recent call last):
        ...
    synflow.data.datasets.DatasetNotFoundError: unknown dataset 'nothing': not one of mnist, ...
    """
    base = data_root(root)
    found = _find(dataset, base)
    if found is not None:
        return found
    if dataset not in DATASETS:
        raise DatasetNotFoundError(
            f"unknown dataset {dataset!r}: not one of {', '.join(DATASETS)}, and no image folder "
            "dataset of that name (train/<class>/* and test/<class>/* or val/<class>/*) in any of: "
            + ", ".join(str(p) for p in folder_candidates(dataset, base))
        )
    reason = "download=False"
    if download:
        try:
            _download_or_leave_nothing(dataset, base)
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
    for folder in folder_candidates(name, base):
        if split_dirs(folder) is not None:
            return Source(name, "folder", folder)
    return None


# what a download of each dataset creates in the data root (torchvision's names)
DOWNLOADED = {
    "mnist": ("MNIST",),
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python"),
    "tinyimagenet": ("tiny-imagenet-200.zip", TINYIMAGENET_DIR),
}


def _download_or_leave_nothing(name: str, base: Path) -> None:
    """:func:`_download`, and when it fails, remove what it created: the dataset's files
    and folders that were not there before (``DOWNLOADED``) and the data root's folders
    it made (when empty), so a mistyped root leaves no empty ``no/such/data/MNIST/raw``."""
    made = [folder for folder in (base, *base.parents) if not folder.exists()]  # deepest first
    there = {entry for entry in DOWNLOADED[name] if (base / entry).exists()}
    try:
        _download(name, base)
    except BaseException:
        for entry in DOWNLOADED[name]:
            path = base / entry
            if entry not in there and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif entry not in there:
                path.unlink(missing_ok=True)
        for folder in made:
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:  # not empty: someone else's files are in it
                break
        raise


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
