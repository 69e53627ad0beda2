"""The decoded-image cache: a split's uint8 images saved once, read back when its source
is unchanged.

A cache file lives in :func:`synflow.utils.paths.cache_dir` (or the ``cache`` folder given;
never in the data root, which may be read-only), named by the dataset, the split and a
key of the source folder and its file listing (names and sizes), with a CRC-32 of its
bytes. A missing, stale or damaged file is rebuilt; a cache folder that cannot be read or
written (missing parent, read-only, full disk) costs speed only: a warning names it and
the images are decoded.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zlib
from pathlib import Path

import torch
from torch import Tensor

from ..core.files import atomic_write
from ..core.stack import outside_stacklevel
from ..utils.paths import cache_dir
from .datasets import Images, Source

CACHE_VERSION = 1


def cache_key(source: Source, split: str, split_dir: Path, files, classes) -> str:
    """The cache key of one split: a sha256 hex digest (64 characters) of the source
    folder, the split, the class names and the files' names and sizes (a renamed, added or
    resized file changes it).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from synflow.data.datasets import Source
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.png").write_bytes(b"1234")
    >>> key = cache_key(Source("toy", "folder", folder), "train", folder, ["a.png"], ("a",))
    >>> len(key), key == cache_key(Source("toy", "folder", folder), "test", folder, ["a.png"], ("a",))
    (64, False)
    """
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
    """The cache file of a split: ``<cache or cache_dir()>/<dataset>-<split>-<key[:16]>.pt``.

    >>> from pathlib import Path
    >>> from synflow.data.datasets import Source
    >>> cache_path(Source("toy", "folder", Path("toy")), "train", "0123456789abcdef0123", "/tmp/c")
    PosixPath('/tmp/c/toy-train-0123456789abcdef.pt')
    """
    folder = Path(cache).expanduser().resolve() if cache is not None else cache_dir()
    return folder / f"{source.name}-{split}-{key[:16]}.pt"


def read_cache(path: Path, key: str, count: int) -> Images | None:
    """The cached split at ``path``, or None when it is missing, unreadable, stale (another
    ``key``, not ``count`` images) or damaged (its CRC-32 differs); a warning names a bad
    file or an unreadable cache folder (decoding again costs speed only). Never raises.

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from synflow.data.datasets import Images
    >>> path = Path(tempfile.mkdtemp()) / "toy-train.pt"
    >>> read_cache(path, "key", 2) is None
    True
    >>> write_cache(path, "key", Images(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b")))
    >>> read_cache(path, "key", 2).classes
    ('a', 'b')
    """
    try:
        if not path.is_file():
            return None
    except OSError as error:  # an unreadable cache folder: decode instead
        warnings.warn(f"the image cache folder {path.parent} cannot be read ({error}); "
                      "decoding the images instead", stacklevel=outside_stacklevel())
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
        warnings.warn(f"image cache {path} is unreadable ({error!r}); rebuilding it",
                      stacklevel=outside_stacklevel())
        return None
    if not valid:
        warnings.warn(f"image cache {path} does not match its source; rebuilding it",
                      stacklevel=outside_stacklevel())
        return None
    return Images(images, labels, tuple(stored["classes"]))


def write_cache(path: Path, key: str, data: Images) -> None:
    """Save ``data`` at ``path`` atomically (:func:`synflow.core.files.atomic_write`)
    with ``key`` and a CRC-32; a folder that cannot be written is named in a warning, not
    raised (the images are decoded again next time).

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from synflow.data.datasets import Images
    >>> path = Path(tempfile.mkdtemp()) / "toy-train.pt"
    >>> write_cache(path, "key", Images(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b")))
    >>> path.is_file(), len(read_cache(path, "key", 2))
    (True, 2)
    """
    payload = {
        "key": key,
        "images": data.images,
        "labels": data.labels,
        "classes": list(data.classes),
        "checksum": _checksum(data.images, data.labels),
    }
    try:
        atomic_write(path, lambda file: torch.save(payload, file))
    except (OSError, RuntimeError, pickle.PicklingError) as error:
        # a missing, read-only or full cache folder costs speed, not correctness (torch.save
        # raises RuntimeError when its writer fails, e.g. on a full disk)
        warnings.warn(f"could not write the image cache {path} in the folder {path.parent} "
                      f"({type(error).__name__}: {error}); the images were loaded, and will be "
                      "decoded again next time", stacklevel=outside_stacklevel())
