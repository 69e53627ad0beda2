"""synflow.data on small fixtures written to temporary folders (and on the shared
MNIST/CIFAR-10 copies when they are there)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import shutil
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from synflow import data
from synflow.data import datasets, images
from synflow.utils.paths import data_root

# the offline image copies: $SYNFLOW_DATA (e.g. this workplace's shared folder), else <repo>/data
SHARED = data_root()


# ------------------------------------------------------------------ fixtures


def class_image(label: int, index: int, shape) -> np.ndarray:
    """A deterministic HWC (or HW) uint8 image whose content tells its class."""
    channels, height, width = shape
    rng = np.random.default_rng(1000 * label + index)
    image = rng.integers(0, 60, size=(height, width, channels), dtype=np.uint8)
    band = slice(label * height // 4, label * height // 4 + max(1, height // 4))
    image[band] = 160 + (7 * label) % 90  # a bright band whose rows give the class
    return image[..., 0] if channels == 1 else image


def write_image_folder(
    folder: Path, classes, shape=(3, 8, 8), train=6, test=3, suffix=".png", test_name="test"
) -> Path:
    """``folder/{train,test}/<class>/<i>.png``: ImageFolder layout."""
    for split, count in (("train", train), (test_name, test)):
        for label, name in enumerate(classes):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                offset = 0 if split == "train" else 100
                Image.fromarray(class_image(label, i + offset, shape)).save(
                    folder / split / name / f"{i:03d}{suffix}"
                )
    return folder


@pytest.fixture
def offline(monkeypatch):
    """No network: every download fails like it does here."""

    def fail(name, base):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets, "_download", fail)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SYNFLOW_CACHE", str(folder))
    monkeypatch.setenv("SYNFLOW_QUIET", "1")
    return folder


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(root: Path, monkeypatch, hundred: bool, per_batch=4) -> np.ndarray:
    """torchvision's pickled CIFAR layout with tiny batches; md5 sums patched to match."""
    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    label_key = "fine_labels" if hundred else "labels"
    train_batches = []
    train_names = [name for name, _ in cls.train_list]
    for name in train_names + [name for name, _ in cls.test_list]:
        images = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 100 if hundred else 10, size=per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": images, label_key: labels}, handle)
        if name in train_names:
            train_batches.append((images, labels))
    classes = [f"class{i}" for i in range(100 if hundred else 10)]
    with open(folder / cls.meta["filename"], "wb") as handle:
        pickle.dump({cls.meta["key"]: classes}, handle)
    monkeypatch.setattr(cls, "train_list", [[n, md5(folder / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5(folder / n)] for n, _ in cls.test_list])
    meta = dict(cls.meta, md5=md5(folder / cls.meta["filename"]))
    monkeypatch.setattr(cls, "meta", meta)
    return train_batches


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST idx file (big-endian header, uint8 data)."""
    header = np.array([0x08 * 256 + array.ndim, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


# ------------------------------------------------------------------- registry


def test_registry_shapes_and_classes():
    assert data.DATASETS["cifar10"].input_shape == (3, 32, 32)
    assert data.DATASETS["cifar10"].num_classes == 10
    assert data.DATASETS["mnist"].input_shape == (1, 28, 28)
    assert data.DATASETS["cifar100"].num_classes == 100
    assert data.DATASETS["tinyimagenet"].input_shape == (3, 64, 64)
    assert data.DATASETS["tinyimagenet"].num_classes == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.DATASETS["cifar10"].num_classes = 3


# --------------------------------------------------------------- image folders


def test_image_folder_dataset_decodes_exactly(tmp_path, cache, offline):
    write_image_folder(tmp_path / "root" / "blobs", ["a", "b", "c"], shape=(3, 8, 8))
    train = data.load("blobs", "train", root=tmp_path / "root")
    test = data.load("blobs", "test", root=tmp_path / "root")
    assert train.images.shape == (18, 3, 8, 8) and train.images.dtype == torch.uint8
    assert test.images.shape == (9, 3, 8, 8)
    assert train.classes == ("a", "b", "c")
    assert train.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    expected = torch.from_numpy(class_image(1, 2, (3, 8, 8))).permute(2, 0, 1)
    assert torch.equal(train.images[6 + 2], expected)  # PNG is lossless
    info = data.dataset_info("blobs", root=tmp_path / "root")
    assert info.input_shape == (3, 8, 8) and info.num_classes == 3
    pixels = train.images.double() / 255
    assert info.mean == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-9)


def test_jpeg_folder_for_a_known_dataset_with_val_split(tmp_path, cache, offline):
    classes = [f"c{i}" for i in range(10)]
    write_image_folder(
        tmp_path / "cifar10-jpeg", classes, shape=(3, 32, 32), train=2, test=1, suffix=".jpg",
        test_name="val",
    )
    source = data.locate("cifar10", tmp_path)
    assert source.kind == "folder" and source.path == tmp_path / "cifar10-jpeg"
    test = data.load("cifar10", "test", root=tmp_path)
    assert test.images.shape == (10, 3, 32, 32) and test.labels.tolist() == list(range(10))
    reference = np.array(Image.open(tmp_path / "cifar10-jpeg/val/c3/000.jpg").convert("RGB"))
    difference = test.images[3].permute(1, 2, 0).int() - torch.from_numpy(reference).int()
    assert difference.abs().max() <= 2  # decoders may round differently


def test_wrong_image_size_for_a_known_dataset_is_an_error(tmp_path, cache, offline):
    write_image_folder(tmp_path / "cifar10", [f"c{i}" for i in range(10)], shape=(3, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(3, 8, 8\), expected \(3, 32, 32\)"):
        data.load("cifar10", "train", root=tmp_path)


def test_grayscale_folder(tmp_path, cache, offline):
    write_image_folder(tmp_path / "mnist-png", ["0", "1"], shape=(1, 28, 28), train=2, test=1)
    # no MNIST/raw under tmp_path: the image folder is used
    train = data.load("mnist", "train", root=tmp_path)
    assert train.images.shape == (4, 1, 28, 28)
    assert torch.equal(train.images[3, 0], torch.from_numpy(class_image(1, 1, (1, 28, 28))))


# --------------------------------------------------------- torchvision layouts


@pytest.mark.parametrize("hundred", [False, True])
def test_torchvision_cifar_layout(tmp_path, monkeypatch, cache, offline, hundred):
    batches = write_cifar(tmp_path, monkeypatch, hundred)
    name = "cifar100" if hundred else "cifar10"
    assert data.locate(name, tmp_path).kind == "torchvision"
    train = data.load(name, "train", root=tmp_path)
    images = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
    labels = [label for batch in batches for label in batch[1]]
    assert torch.equal(train.images, torch.from_numpy(images))  # NCHW, same pixels
    assert train.labels.tolist() == labels
    assert len(train.classes) == (100 if hundred else 10)
    assert not cache.exists()  # already uint8 arrays: nothing decoded, nothing cached


def test_torchvision_cifar_with_a_bad_checksum_is_not_used(tmp_path, monkeypatch, cache, offline):
    write_cifar(tmp_path, monkeypatch, hundred=False)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "ab") as handle:
        handle.write(b"damage")
    with pytest.raises(data.DatasetNotFoundError, match="cifar-10-batches-py/ is there but"):
        data.load("cifar10", "train", root=tmp_path)


def test_torchvision_mnist_layout(tmp_path, cache, offline):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    assert data.locate("mnist", tmp_path).kind == "torchvision"
    train = data.load("mnist", "train", root=tmp_path)
    assert train.images.shape == (20, 1, 28, 28)
    assert torch.equal(train.images[:, 0], torch.from_numpy(images))
    assert train.labels.tolist() == labels.tolist()


def test_tinyimagenet_val_is_regrouped_by_its_annotations(tmp_path, cache, offline):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n001", "n002", "n003"]
    shape = (3, 64, 64)
    for label, wnid in enumerate(wnids):
        (base / "train" / wnid / "images").mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("not an image\n")
        for i in range(2):
            Image.fromarray(class_image(label, i, shape)).save(
                base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", format="JPEG", quality=95
            )
    (base / "val" / "images").mkdir(parents=True)
    order = [2, 0, 1, 2, 1, 0]  # val files in a flat folder, classes mixed
    lines = []
    for i, label in enumerate(order):
        Image.fromarray(class_image(label, 50 + i, shape)).save(
            base / "val" / "images" / f"val_{i}.JPEG", format="JPEG", quality=95
        )
        lines.append(f"val_{i}.JPEG\t{wnids[label]}\t0\t0\t10\t10")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")

    assert data.locate("tinyimagenet", tmp_path).kind == "tinyimagenet"
    train = data.load("tinyimagenet", "train", root=tmp_path)
    assert train.images.shape == (6, 3, 64, 64) and train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    val = data.load("tinyimagenet", "test", root=tmp_path)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert val.classes == tuple(wnids)
    for image, label in zip(val.images, val.labels.tolist()):
        # the bright band sits at the rows of the labelled class
        rows = image.float().mean((0, 2))
        band = slice(label * 16, label * 16 + 16)
        assert rows[band].min() > 140 and rows.max() == rows[band].max()


# ------------------------------------------------------------------ the cache


def test_cache_is_written_outside_the_data_root_and_reused(tmp_path, cache, offline, monkeypatch):
    root = tmp_path / "root"
    write_image_folder(root / "blobs", ["a", "b"], train=3, test=2)
    before = sorted(p for p in root.rglob("*"))
    first = data.load("blobs", "train", root=root)
    assert sorted(p for p in root.rglob("*")) == before  # nothing written to the data root
    files = list(cache.glob("blobs-train-*.pt"))
    assert len(files) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(images, "_decode", no_decoding)
    second = data.load("blobs", "train", root=root)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_cache_folder_argument_overrides_environment(tmp_path, cache, offline):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=2, test=1)
    elsewhere = tmp_path / "elsewhere"
    data.load("blobs", "test", root=tmp_path, cache=elsewhere)
    assert list(elsewhere.glob("blobs-test-*.pt")) and not cache.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_cache_is_rebuilt(tmp_path, cache, offline, damage):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=3, test=1)
    good = data.load("blobs", "train", root=tmp_path)
    (path,) = cache.glob("blobs-train-*.pt")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a cache at all")
    else:  # one pixel changed inside an otherwise valid file
        stored = torch.load(path, weights_only=True)
        stored["images"][0, 0, 0, 0] ^= 1
        torch.save(stored, path)
    with pytest.warns(UserWarning, match="rebuilding"):
        again = data.load("blobs", "train", root=tmp_path)
    assert torch.equal(again.images, good.images)
    stored = torch.load(path, weights_only=True)  # rebuilt in place, valid again
    assert torch.equal(stored["images"], good.images)


def test_cache_follows_the_source(tmp_path, cache, offline):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=3, test=1)
    data.load("blobs", "train", root=tmp_path)
    Image.fromarray(class_image(0, 99, (3, 8, 8))).save(tmp_path / "blobs/train/a/new.png")
    assert len(data.load("blobs", "train", root=tmp_path)) == 7
    assert len(list(cache.glob("blobs-train-*.pt"))) == 2  # keyed by the listing


# ------------------------------------------------------------- missing data


def test_missing_dataset_offline_names_every_place(tmp_path, cache, offline):
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load("cifar100", "train", root=tmp_path)
    message = str(error.value)
    assert "URLError" in message and "SYNFLOW_DATA" in message
    for place in ("cifar-100-python", "cifar100", "cifar100-jpeg", "cifar100-png"):
        assert place in message
    assert str(tmp_path) in message


def test_missing_tinyimagenet_offline(tmp_path, cache, offline):
    with pytest.raises(data.DatasetNotFoundError, match="tiny-imagenet-200"):
        data.load("tinyimagenet", "test", root=tmp_path)


def test_unknown_dataset_and_split(tmp_path, cache, offline):
    with pytest.raises(data.DatasetNotFoundError, match=r"unknown dataset 'nope'.*cifar10"):
        data.load("nope", root=tmp_path)
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=1, test=1)
    with pytest.raises(ValueError, match=r"unknown split 'validation'.*train, test"):
        data.load("blobs", "validation", root=tmp_path)


def test_data_root_from_environment(tmp_path, cache, offline, monkeypatch):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=1, test=1)
    monkeypatch.setenv("SYNFLOW_DATA", str(tmp_path))
    assert data.locate("blobs").path == tmp_path / "blobs"


# -------------------------------------------------------- balanced subsets


def test_balanced_indices():
    labels = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)[torch.randperm(60)]
    chosen = data.balanced_indices(labels, 5, seed=3)
    assert torch.bincount(labels[chosen]).tolist() == [5, 5, 5]
    assert len(set(chosen.tolist())) == 15
    assert torch.equal(chosen, data.balanced_indices(labels, 5, seed=3))
    assert not torch.equal(chosen, data.balanced_indices(labels, 5, seed=4))
    with pytest.raises(ValueError, match="class 2 has only 10 examples"):
        data.balanced_indices(labels, 11)
    with pytest.raises(ValueError, match="per_class must be"):
        data.balanced_indices(labels, 0)


def test_pruning_batches_on_a_folder(tmp_path, cache, offline, monkeypatch):
    write_image_folder(tmp_path / "blobs", ["a", "b", "c"], train=8, test=1)
    decoded = []
    original = images._decode
    monkeypatch.setattr(images, "_decode", lambda d, files, *a: decoded.append(len(files)) or
                        original(d, files, *a))
    info = data.dataset_info("blobs", root=tmp_path)  # needs the full set once (statistics)
    decoded.clear()
    batches = data.pruning_batches("blobs", root=tmp_path, per_class=4, batch_size=5, seed=1)
    assert decoded == [12]  # only the chosen files were decoded
    assert [len(y) for _, y in batches] == [5, 5, 2]
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    assert inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert torch.bincount(targets).tolist() == [4, 4, 4]
    # normalised, not augmented: the inputs are exactly the normalised training images
    full = data.load("blobs", "train", root=tmp_path)
    chosen = data.balanced_indices(full.labels, 4, seed=1)
    assert torch.allclose(inputs, data.normalize(full.images[chosen], info))
    again = data.pruning_batches("blobs", root=tmp_path, per_class=4, batch_size=5, seed=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    other = data.pruning_batches("blobs", root=tmp_path, per_class=4, batch_size=12, seed=2)
    assert not torch.equal(other[0][0], inputs)


def test_training_subset(tmp_path, cache, offline):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=6, test=2)
    train, test = data.loaders("blobs", root=tmp_path, train_per_class=3, batch_size=4)
    assert len(train.labels) == 6 and torch.bincount(train.labels.cpu()).tolist() == [3, 3]
    assert len(test.labels) == 4  # the test set is always whole


# --------------------------------------------------------- batches, augmentation


def test_augment_is_a_padded_crop_or_its_mirror():
    images = torch.randint(0, 256, (16, 3, 6, 5), dtype=torch.uint8)
    offsets, flips = data.random_crops(16, torch.Generator().manual_seed(0), padding=2)
    out = data.augment(images, offsets, flips, padding=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert 0 < int(flips.sum()) < 16 and 0 <= int(offsets.min()) and int(offsets.max()) <= 4
    assert len({tuple(pair) for pair in offsets.T.tolist()}) > 1
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(16):
        dy, dx = offsets[:, i].tolist()
        window = padded[i, :, dy : dy + 6, dx : dx + 5]
        assert torch.equal(out[i], window.flip(2) if flips[i] else window)
    again = data.random_crops(16, torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(offsets, again[0]) and torch.equal(flips, again[1])


def test_batches_shuffle_per_epoch_and_repeat_per_seed(tmp_path, cache, offline):
    write_image_folder(tmp_path / "blobs", ["a", "b", "c"], train=5, test=1)
    split = data.load("blobs", "train", root=tmp_path)
    info = data.dataset_info("blobs", root=tmp_path)

    def epochs(seed):
        batches = data.Batches(split, info, batch_size=4, shuffle=True, augment=True, seed=seed)
        return [[(x.clone(), y.clone()) for x, y in batches] for _ in range(2)]

    first, second = epochs(0)
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(split.labels.tolist())
    assert [len(y) for _, y in first] == [4, 4, 4, 3]
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))
    repeat = epochs(0)[0]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, repeat))
    other = epochs(1)[0]
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_bad_batch_size(tmp_path, cache, offline):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=1, test=1)
    split = data.load("blobs", "train", root=tmp_path)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        data.Batches(split, data.DATASETS["cifar10"], batch_size=0)


# ------------------------------------------------------------ the shared data


@pytest.mark.skipif(
    not (SHARED / "MNIST").is_dir(), reason=f"no MNIST copy in {SHARED} (set SYNFLOW_DATA)"
)
def test_pruning_batches_on_shared_mnist(cache):
    batches = data.pruning_batches("mnist", root=SHARED, seed=0)
    (inputs, targets), = batches
    assert inputs.shape == (100, 1, 28, 28) and targets.shape == (100,)
    assert torch.bincount(targets).tolist() == [10] * 10
    assert -0.5 < float(inputs.mean()) < 0.5  # normalised


@pytest.mark.skipif(
    not (SHARED / "cifar10-jpeg").is_dir(),
    reason=f"no CIFAR-10 JPEG copy in {SHARED} (set SYNFLOW_DATA)",
)
def test_pruning_batches_on_shared_cifar10(cache):
    batches = data.pruning_batches("cifar10", root=SHARED, per_class=3, batch_size=16, seed=0)
    targets = torch.cat([y for _, y in batches])
    assert [len(y) for _, y in batches] == [16, 14]
    assert torch.bincount(targets).tolist() == [3] * 10
    assert batches[0][0].shape[1:] == (3, 32, 32)
    assert not cache.exists() or not os.listdir(cache)  # the subset decodes only its files


def half_download(name, base):
    """What torchvision leaves when its MNIST download fails offline: MNIST/raw/, a part."""
    (base / "MNIST" / "raw").mkdir(parents=True)
    (base / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
    raise urllib.error.URLError("Name or service not known")


def test_a_failed_download_leaves_nothing_behind(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(datasets, "_download", half_download)
    root = tmp_path / "no" / "such" / "data"  # a mistyped data root
    messages = []
    for _ in range(2):  # the second try says the same: nothing half-made misleads it
        with pytest.raises(data.DatasetNotFoundError, match="URLError") as error:
            data.load("mnist", root=root)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "is there but incomplete" not in messages[0]
    assert list(tmp_path.iterdir()) == [cache] or not list(tmp_path.iterdir())


def test_a_failed_download_keeps_what_was_there(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(datasets, "_download", half_download)
    (tmp_path / "cifar10-notes.txt").write_text("mine")
    with pytest.raises(data.DatasetNotFoundError):
        data.load("mnist", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p != cache) == ["cifar10-notes.txt"]
    (tmp_path / "MNIST").mkdir()  # the user's own (incomplete) copy stays
    (tmp_path / "MNIST" / "readme").write_text("mine")
    with pytest.raises(data.DatasetNotFoundError, match="is there but incomplete"):
        data.load("mnist", root=tmp_path)
    assert (tmp_path / "MNIST" / "readme").read_text() == "mine"


# -------------------------------------------------- damaged or mismatched folders


def test_test_classes_that_differ_from_train_are_refused_by_name(tmp_path, cache, offline):
    # ImageFolder style: test/cat renamed test/Cat, test/dog removed, test/unicorn added;
    # before, the test split loaded 24 of 30 files without a word
    folder = write_image_folder(tmp_path / "pets", ["bird", "cat", "dog"], train=10, test=10)
    (folder / "test" / "cat").rename(folder / "test" / "Cat")
    shutil.rmtree(folder / "test" / "dog")
    write_image_folder(tmp_path / "extra", ["unicorn"], train=1, test=10)
    shutil.move(tmp_path / "extra" / "test" / "unicorn", folder / "test" / "unicorn")
    message = (rf"class folders of {folder / 'test'} and {folder / 'train'} differ: only in "
               r"train/: \['cat', 'dog'\]; only in test/: \['Cat', 'unicorn'\] \(3 and 3 classes\)")
    for split in ("test", "train"):
        with pytest.raises(ValueError, match=message):
            data.load("pets", split, root=tmp_path)
    with pytest.raises(ValueError, match=message):
        data.load("pets", root=tmp_path, per_class=2)


def test_val_classes_that_differ_from_train_are_refused(tmp_path, cache, offline):
    folder = write_image_folder(tmp_path / "pets", ["a", "b"], train=2, test=2, test_name="val")
    (folder / "val" / "b").rename(folder / "val" / "c")
    with pytest.raises(ValueError, match=r"only in train/: \['b'\]; only in val/: \['c'\]"):
        data.load("pets", "test", root=tmp_path)


@pytest.mark.parametrize("per_class", [None, 4])
@pytest.mark.parametrize("how", ["truncated", "not an image"])
def test_an_image_that_cannot_be_decoded_is_named(tmp_path, cache, offline, per_class, how):
    folder = write_image_folder(tmp_path / "jp", ["a", "b"], shape=(3, 32, 32), train=4, test=2,
                                suffix=".jpg")
    broken = folder / "train" / "b" / "002.jpg"
    broken.write_bytes(broken.read_bytes()[:200] if how == "truncated" else b"garbage")
    with pytest.raises(images.ImageDecodeError, match=rf"cannot decode the image {broken}: "):
        data.load("jp", root=tmp_path, per_class=per_class)
    first = folder / "train" / "a" / "000.jpg"  # the file that tells the channel count
    first.write_bytes(first.read_bytes()[:100])
    with pytest.raises(images.ImageDecodeError, match=rf"cannot decode the image {first}: "):
        data.load("jp", root=tmp_path, per_class=per_class)


# ------------------------------------------- a cache folder that cannot be used


def cache_folders(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {"a file": a_file, "under a file": a_file / "cache",
            "in /proc": Path("/proc/synflow-no-such-cache")}


@pytest.mark.parametrize("where", ["a file", "under a file", "in /proc"])
def test_an_unusable_cache_folder_costs_speed_not_the_load(tmp_path, offline, where):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=3, test=2)
    folder = cache_folders(tmp_path)[where]
    with pytest.warns(UserWarning, match=rf"could not write the image cache {folder}/blobs-"
                      rf"train-.*in the folder {folder} .*decoded again next time"):
        loaded = data.load("blobs", root=tmp_path, cache=folder)
    assert len(loaded) == 6 and torch.equal(
        loaded.images, data.load("blobs", root=tmp_path, cache=tmp_path / "ok").images)


def test_a_cache_that_torch_cannot_write_costs_speed_not_the_load(tmp_path, cache, offline,
                                                                 monkeypatch):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=3, test=2)

    def full_disk(*args, **kwargs):  # what torch.save raises when its writer fails
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 64")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.warns(UserWarning, match=rf"could not write the image cache .*in the folder "
                      rf"{cache} \(RuntimeError"):
        assert len(data.load("blobs", root=tmp_path)) == 6
    assert not cache.exists() or not list(cache.iterdir())  # no half-written file


def test_an_unreadable_cache_folder_costs_speed_not_the_load(tmp_path, cache, offline,
                                                            monkeypatch):
    write_image_folder(tmp_path / "blobs", ["a", "b"], train=3, test=2)
    real = Path.is_file

    def no_permission(path):  # a cache folder without read/search permission (not root)
        if str(path).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "is_file", no_permission)
    with pytest.warns(UserWarning, match=rf"image cache folder {cache} cannot be read") as caught:
        assert len(data.load("blobs", root=tmp_path)) == 6
    assert {w.filename for w in caught} == {__file__}  # at the caller's line


def test_the_image_cache_format_is_pinned(tmp_path):
    """Caches written by earlier versions keep loading: the payload's keys are a format
    (a renamed key made every existing cache rebuild, with a warning)."""
    from synflow.data import cache as cache_module
    from synflow.data.datasets import Images

    data = Images(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b"))
    path = tmp_path / "toy-train.pt"
    cache_module.write_cache(path, "key", data)
    stored = torch.load(path, weights_only=True)
    assert sorted(stored) == ["checksum", "classes", "images", "key", "labels"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read back without any rebuild warning
        assert len(cache_module.read_cache(path, "key", 2)) == 2
