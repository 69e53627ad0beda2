"""Datasets as uint8 tensors in memory, batched augmentation on the training device.

| module    | concern                                                                    |
|-----------|----------------------------------------------------------------------------|
| datasets  | the registry (``DATASETS``) and where a dataset is found or downloaded      |
| listing   | an image-folder split's files and labels (same classes in train and test)    |
| images    | one split as uint8 tensors: decoding, torchvision layouts                    |
| cache     | the decoded-image cache (costs speed only when its folder is unusable)       |
| batches   | normalised, augmented batches on a device; SNIP/GraSP's pruning batches      |
| imagenet  | pruning data of ImageNet shape (or its CIFAR-10 stand-in)                    |
"""

from .batches import Batches, augment, loaders, normalize, pruning_batches, random_crops
from .datasets import DATASETS, DatasetInfo, DatasetNotFoundError, Images, locate
from .images import balanced_indices, dataset_info, load

__all__ = [
    "DATASETS",
    "Batches",
    "DatasetInfo",
    "DatasetNotFoundError",
    "Images",
    "augment",
    "balanced_indices",
    "dataset_info",
    "load",
    "loaders",
    "locate",
    "normalize",
    "pruning_batches",
    "random_crops",
]
