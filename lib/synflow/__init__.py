"""SynFlow: pruning neural networks at initialization, without data.

A reproduction of Tanaka, Kunin, Yamins and Ganguli (NeurIPS 2020). The public API is
the names below; the rest lives in the layers, each a subpackage that imports only the
ones above it in this list:

* :mod:`synflow.core` -- masks, scorers, selection, schedules, the pruning loop;
* :mod:`synflow.models` -- the paper's networks and their inits;
* :mod:`synflow.data` -- datasets, batches, pruning data;
* :mod:`synflow.training` -- the paper's training;
* :mod:`synflow.experiments` -- runs, the results store, Slurm launching;
* :mod:`synflow.analysis` -- conservation, layer-collapse, tables and figures.

(:mod:`synflow.utils`, where files live and progress bars, sits below them all.)

>>> import synflow
>>> model = synflow.build_model("vgg11_bn", width=0.125, seed=0)
>>> masks = synflow.prune(model, "synflow", compression=10, iterations=10,
...                       input_shape=(3, 32, 32))
>>> round(synflow.compression_of(masks), 2)
10.0
"""

import importlib as _importlib
from types import ModuleType as _ModuleType

from . import _deprecated
from .core.counts import LayerCollapseWarning
from .core.diagnostics import CompressionWarning, ScoreWarning
from .core.loop import Iteration, prune, prune_through
from .core.masks import (
    apply_masks,
    compression_of,
    count_kept,
    current_masks,
    empty_layers,
    prunable_layers,
    remove_masks,
    unwrap,
)
from .core.saving import load_pruned, load_pruned_state_dict, save_pruned
from .core.scorers import SCORERS
from .core.scoring import compute_scores
from .core.selection import select
from .models import MODELS, build_model

__all__ = [
    "MODELS",
    "SCORERS",
    "CompressionWarning",
    "Iteration",
    "LayerCollapseWarning",
    "ScoreWarning",
    "apply_masks",
    "build_model",
    "compression_of",
    "compute_scores",
    "count_kept",
    "current_masks",
    "empty_layers",
    "load_pruned",
    "load_pruned_state_dict",
    "prunable_layers",
    "prune",
    "prune_through",
    "remove_masks",
    "save_pruned",
    "select",
    "unwrap",
]

# the layers, imported on first use (analysis pulls in pandas and matplotlib, which a
# Slurm task that only trains never needs)
_LAYERS = ("core", "models", "data", "training", "experiments", "analysis", "utils")

_deprecated.install()


def __getattr__(name: str):
    if name in _LAYERS:
        return _importlib.import_module(f".{name}", __name__)
    return _deprecated.attribute(name)


def __dir__() -> list[str]:
    # the public names, the layers and the dunders; no helper module, no deprecated module
    # path (an old `import synflow.saving` leaves `saving` among the package's attributes)
    return sorted({n for n, v in globals().items()
                   if (not n.startswith("_") or n.startswith("__"))
                   and not isinstance(v, _ModuleType)} | set(_LAYERS))
