"""synflow.data.imagenet: ImageNet-shaped SNIP/GraSP data, from a tiny ImageFolder written here
or from the CIFAR-10 stand-in (a tiny CIFAR-10 image folder written here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import synflow
from synflow.data import DATASETS, DatasetNotFoundError
from synflow.data.imagenet import IMAGENET, imagenet_pruning_batches, pruning_data

WNIDS = ["n01440764", "n01443537", "n01484850"]
# one uniform colour per image (class, index): resizing and cropping keep it exactly
COLOURS = {(c, i): (40 + 21 * c, 200 - 30 * i, 100 + 10 * i) for c in range(10) for i in range(4)}


def write_imagenet(root, sizes=((48, 36), (30, 40), (64, 64), (36, 50))):
    """``root/imagenet/train/<wnid>/<i>.JPEG``: uniform colours of various sizes (W, H),
    each with a black stripe on its left eighth that the center crop must remove."""
    for c, wnid in enumerate(WNIDS):
        folder = root / "imagenet" / "train" / wnid
        folder.mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            image = np.empty((h, w, 3), dtype=np.uint8)
            image[:] = COLOURS[(c, i)]
            if w > h:  # the crop cuts (w - h) / 2 columns on each side: a stripe of w / 8 goes
                image[:, : w // 8] = 0
            Image.fromarray(image).save(folder / f"{wnid}_{i}.JPEG", quality=100)
    return root


def write_cifar10(root, per_class=3):
    """A CIFAR-10 image folder (10 classes of uniform 32x32 colours), train and test."""
    for split in ("train", "test"):
        for c in range(10):
            folder = root / "cifar10" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = np.empty((32, 32, 3), dtype=np.uint8)
                image[:] = COLOURS[(c, i)]
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNFLOW_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("SYNFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SYNFLOW_QUIET", "1")
    return tmp_path / "data"


def expected_pixels(colour, info):
    mean, std = torch.tensor(info.mean), torch.tensor(info.std)
    return (torch.tensor(colour, dtype=torch.float32) / 255 - mean) / std


def test_imagenet_folder_gives_cropped_normalised_balanced_batches(root):
    write_imagenet(root)
    batches, description = imagenet_pruning_batches(per_class=2, image_size=16, root=root,
                                                    batch_size=4)
    assert description.startswith("ImageNet train") and "STAND-IN" not in description
    assert "6 images, 2 per class of 3" in description
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([t for _, t in batches])
    assert [len(t) for _, t in batches] == [4, 2]
    assert inputs.shape == (6, 3, 16, 16) and inputs.dtype == torch.float32
    assert targets.tolist() == [0, 0, 1, 1, 2, 2]
    for x in inputs:
        # a uniform image of one of this class's colours, normalised with ImageNet's
        # mean/std; the black stripe is cut off by the center crop (JPEG: +-2 levels)
        pixel = x[:, 8, 8]
        matches = [(expected_pixels(COLOURS[(c, i)], IMAGENET) - pixel).abs().max()
                   for c in range(3) for i in range(4)]
        assert min(matches) < 2 / 255 / 0.224
        assert (x - pixel[:, None, None]).abs().max() < 4 / 255 / 0.224


def test_imagenet_draw_follows_the_seed(root):
    write_imagenet(root)

    def drawn(seed):
        batches, _ = imagenet_pruning_batches(per_class=2, image_size=8, root=root, seed=seed)
        return torch.cat([x for x, _ in batches])

    assert torch.equal(drawn(0), drawn(0))
    assert not torch.equal(drawn(0), drawn(3))


def test_cifar_stand_in_when_no_imagenet(root):
    write_cifar10(root)
    batches, description = imagenet_pruning_batches(per_class=2, image_size=40, root=root)
    assert description.startswith("STAND-IN, not ImageNet")
    assert "CIFAR-10" in description and "1000-way head" in description
    assert "20 CIFAR-10 training images" in description
    assert str(root) not in description  # printed in committed notebooks: no machine's path
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([t for _, t in batches])
    assert inputs.shape == (20, 3, 40, 40)
    assert sorted(targets.tolist()) == sorted(list(range(10)) * 2)
    cifar = DATASETS["cifar10"]
    for x, t in zip(inputs, targets):
        candidates = [expected_pixels(COLOURS[(int(t), i)], cifar) for i in range(3)]
        assert min((c[:, None, None] - x).abs().max() for c in candidates) < 1e-5


def test_cifar_stand_in_is_chosen_by_source_even_with_imagenet(root):
    write_imagenet(write_cifar10(root))
    _, auto = imagenet_pruning_batches(per_class=1, image_size=8, root=root)
    _, forced = imagenet_pruning_batches(per_class=1, image_size=8, root=root, source="cifar10")
    assert auto.startswith("ImageNet train")
    assert forced.startswith("STAND-IN") and "source='cifar10'" in forced


def test_stand_in_scores_the_imagenet_vgg(root):
    write_cifar10(root)
    data, _ = pruning_data("imagenet", (3, 64, 64), per_class=1, num_classes=1000, root=root)
    model = synflow.build_model("vgg19_imagenet", num_classes=1000, input_shape=(3, 64, 64),
                                width=0.0625, seed=0)
    scores = synflow.compute_scores(model, "snip", data=data, input_shape=(3, 64, 64))
    assert all(torch.isfinite(s).all() and s.abs().sum() > 0 for s in scores.values())


def test_pruning_data_cifar10(root):
    write_cifar10(root)
    batches, description = pruning_data("cifar10", [3, 32, 32], per_class=2, root=root)
    assert description.startswith("CIFAR-10 train: 20 images (2 per class")
    assert torch.cat([x for x, _ in batches]).shape == (20, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": "tiny"}, r"unknown source 'tiny'; choose one of: auto, imagenet, cifar10"),
        ({"per_class": 0}, r"per_class must be an integer >= 1, got 0"),
        ({"image_size": True}, r"image_size must be an integer >= 1, got True"),
        ({"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
        ({"num_classes": 5}, r"num_classes=5 is smaller than the pruning data's 10 classes"),
    ],
)
def test_bad_arguments_are_named(root, kwargs, match):
    write_cifar10(root)
    with pytest.raises(ValueError, match=match):
        imagenet_pruning_batches(root=root, **kwargs)


def test_missing_imagenet_is_named_when_required(root):
    write_cifar10(root)
    with pytest.raises(DatasetNotFoundError, match=r"source='imagenet' but no ImageNet .*"
                       r"imagenet/train.*source='auto' or 'cifar10'"):
        imagenet_pruning_batches(root=root, source="imagenet")


@pytest.mark.parametrize(
    ("dataset", "shape", "match"),
    [
        ("mnist", (1, 28, 28), r"unknown pruning data 'mnist'; choose one of: cifar10, imagenet"),
        ("cifar10", (3, 224, 224), r"'cifar10' are 3x32x32 images, but input_shape=\(3, 224, 224\)"),
        ("imagenet", (3, 64, 32), r"square RGB images \(3, S, S\), but input_shape=\(3, 64, 32\)"),
    ],
)
def test_pruning_data_refuses_bad_names_and_shapes(root, dataset, shape, match):
    with pytest.raises(ValueError, match=match):
        pruning_data(dataset, shape, root=root)
