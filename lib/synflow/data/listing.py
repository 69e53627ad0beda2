"""Listing an image-folder split: its files and labels, sorted by class then path.

An image-folder dataset's test/ (or val/) must hold the same class folders as train/;
Tiny ImageNet's official val/ (one flat folder and ``val_annotations.txt``) is regrouped
into its classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .datasets import SPLITS, DatasetNotFoundError, Source, split_dirs

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def list_folder(split_dir: Path, classes: Sequence[str] | None = None):
    """``(files, labels, classes)`` of an image folder, sorted by class then path.

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("b/2.png", "a/1.jpg", "a/notes.txt"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     (folder / name).touch()
    >>> list_folder(folder)
    (['a/1.jpg', 'b/2.png'], [0, 1], ('a', 'b'))
    """
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


def split_listing(source: Source, split: str):
    """``(split folder, relative files, labels, classes)`` of one split of a folder source
    (image folders or Tiny ImageNet); the files are paths relative to the split folder
    (str), the labels ints (the class's index).

    Raises ValueError for an unknown ``split``, for test/ class folders unlike train/'s
    (naming the classes on each side) and for a val annotation of a class with no train
    folder; :class:`synflow.data.datasets.DatasetNotFoundError` when there are no class
    folders.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from synflow.data.datasets import locate
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/a/1.png", "train/b/2.png", "test/a/3.png", "test/b/4.png"):
    ...     (root / "toy" / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (root / "toy" / name).touch()
    >>> folder, files, labels, classes = split_listing(locate("toy", root), "test")
    >>> folder.name, files, labels, classes
    ('test', ['a/3.png', 'b/4.png'], [0, 1], ('a', 'b'))
    >>> split_listing(locate("toy", root), "val")
    Traceback (most recent call last):
        ...
    ValueError: unknown split 'val'; choose one of: train, test
    """
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
