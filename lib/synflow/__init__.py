"""SynFlow: pruning neural networks at initialization, without data.

The public API::

    import synflow
    model = synflow.build_model("vgg16_bn", seed=0)
    masks = synflow.prune(model, "synflow", compression=100, iterations=100,
                          input_shape=(3, 32, 32))
"""

from . import analysis, baselines, claims, data, execution, paths, plotting, store, sweeps, train
from .masks import (
    apply_masks,
    compression_of,
    count_kept,
    current_masks,
    effective_weight,
    empty_layers,
    prunable_layers,
    reinitialize_kept,
    remove_masks,
    shuffle_masks,
)
from .models import MODELS, build_model
from .pruning import SCHEDULES, SCOPES, density_after, prune, select
from .scores import SCORERS, scores

__all__ = [
    "MODELS",
    "SCHEDULES",
    "SCOPES",
    "SCORERS",
    "analysis",
    "apply_masks",
    "baselines",
    "build_model",
    "claims",
    "compression_of",
    "count_kept",
    "current_masks",
    "data",
    "density_after",
    "effective_weight",
    "empty_layers",
    "execution",
    "paths",
    "plotting",
    "prunable_layers",
    "prune",
    "reinitialize_kept",
    "remove_masks",
    "scores",
    "select",
    "shuffle_masks",
    "store",
    "sweeps",
    "train",
]
