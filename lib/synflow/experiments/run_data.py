"""The training data of one run (:func:`synflow.experiments.execution.execute`): the
dataset's name, or class-balanced train and test subsets decoded once per process."""

from __future__ import annotations

import functools

from ..data import batches as data_batches
from ..data import images as data_images
from ..training import precision as precisions


def training_data(config, training, info, device, root, cache):
    """What ``train`` gets: the dataset name (as before), or with ``test_subset`` a
    ``(train, test)`` pair whose test batches hold that many images per class (drawn
    with seed 0). The decoded subsets are kept in memory for the next run of the
    process (:func:`_subset_images`).

    >>> from synflow.experiments.runconfig import RunConfig
    >>> config = RunConfig("mlp", "mnist")
    >>> training_data(config, config.training(), None, "cpu", None, None)
    'mnist'
    """
    if config.test_subset is None:
        return config.dataset
    memory_format = precisions.memory_format(training.precision)
    key = (config.dataset, str(root), str(cache))
    train_images = _subset_images(*key, "train", training.subset, config.seed)
    test_images = _subset_images(*key, "test", config.test_subset, 0)
    train_batches = data_batches.Batches(
        train_images, info, batch_size=training.batch_size, shuffle=True, seed=config.seed,
        augment=info.augment, device=device, memory_format=memory_format,
    )
    test_batches = data_batches.Batches(
        test_images, info, batch_size=1000, device=device, memory_format=memory_format
    )
    return train_batches, test_batches


@functools.lru_cache(maxsize=8)
def _subset_images(dataset, root, cache, split, per_class, seed):
    """``data.load`` of a split (class-balanced subset), remembered per process."""
    return data_images.load(
        dataset, split, root=None if root == "None" else root,
        cache=None if cache == "None" else cache, per_class=per_class, seed=seed,
    )
