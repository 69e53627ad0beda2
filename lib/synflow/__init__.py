"""SynFlow: pruning neural networks at initialization, without data.

The public API::

    import synflow
    model = synflow.build_model("vgg16_bn", seed=0)
    masks = synflow.prune(model, "synflow", compression=100, iterations=100,
                          input_shape=(3, 32, 32))
"""

import importlib

from . import (
    baselines,
    claims,
    data,
    diagnostics,
    execution,
    inits,
    models,
    paths,
    scores,
    store,
    train,
)
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
    unwrap,
)
from .models import MODELS, build_model
from .pruning import (
    SCHEDULES,
    SCOPES,
    Iteration,
    density_after,
    prune,
    prune_through,
    schedule_densities,
    select,
)
from .saving import load_pruned, load_pruned_state_dict, save_pruned
from .scores import SCORERS, ScoreWarning, compute_scores

__all__ = [
    "MODELS",
    "SCHEDULES",
    "SCOPES",
    "SCORERS",
    "Iteration",
    "ScoreWarning",
    "analysis",
    "apply_masks",
    "baselines",
    "build_model",
    "claims",
    "compression_of",
    "compute_scores",
    "count_kept",
    "current_masks",
    "data",
    "density_after",
    "diagnostics",
    "effective_weight",
    "empty_layers",
    "execution",
    "inits",
    "load_pruned",
    "load_pruned_state_dict",
    "models",
    "paths",
    "plotting",
    "prunable_layers",
    "prune",
    "prune_through",
    "reinitialize_kept",
    "remove_masks",
    "save_pruned",
    "schedule_densities",
    "scores",
    "select",
    "shuffle_masks",
    "store",
    "sweeps",
    "train",
    "unwrap",
]

# imported on first use (PEP 562): they pull in pandas, matplotlib and seaborn, about 1.5 s
# of every Slurm task's start-up, and a task that only runs runs never needs them
LAZY_MODULES = ("analysis", "plotting", "sweeps")


def __getattr__(name: str):
    if name in LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY_MODULES))
