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
from ..utils.paths import cache_dir
from .datasets import Images, Source

CACHE_VERSION = 1


def cache_key(source: Source, split: str, split_dir: Path, files, classes) -> str:
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


def read_cache(path: Path, key: str, count: int) -> Images | None:
    try:
        if not path.is_file():
            return None
    except OSError as error:  # an unreadable cache folder: decode instead
        warnings.warn(f"the image cache folder {path.parent} cannot be read ({error}); "
                      "decoding the images instead", stacklevel=3)
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = stored["images"], stored["labels"]
        valid = (
            stored["key"] == key
            and images.dtype == torch.uint8
            and images.shape[0] == labels.shape[0] == count
            and stored["_checksum"] == _checksum(images, labels)
        )
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, AttributeError,
            pickle.UnpicklingError) as error:  # truncated, garbage, wrong structure
        warnings.warn(f"image cache {path} is unreadable ({error!r}); rebuilding it", stacklevel=3)
        return None
    if not valid:
        warnings.warn(f"image cache {path} does not match its source; rebuilding it", stacklevel=3)
        return None
    return Images(images, labels, tuple(stored["classes"]))


def write_cache(path: Path, key: str, data: Images) -> None:
    payload = {
        "key": key,
        "images": data.images,
        "labels": data.labels,
        "classes": list(data.classes),
        "_checksum": _checksum(data.images, data.labels),
    }
    try:
        atomic_write(path, lambda file: torch.save(payload, file))
    except (OSError, RuntimeError, pickle.PicklingError) as error:
        # a missing, read-only or full cache folder costs speed, not correctness (torch.save
        # raises RuntimeError when its writer fails, e.g. on a full disk)
        warnings.warn(f"could not write the image cache {path} in the folder {path.parent} "
                      f"({type(error).__name__}: {error}); the images were loaded, and will be "
                      "decoded again next time", stacklevel=3)
