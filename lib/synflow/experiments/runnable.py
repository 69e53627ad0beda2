"""Whether a run can run at all: checked before anything of it is written.

A run whose dataset is nowhere, or whose compression keeps less than one weight, can only
fail; :func:`check_runnable` refuses it up front, so :func:`synflow.experiments.store.run_or_load`
leaves no run folder or failure record for it (the launcher's notebooks refuse the same
through :func:`synflow.experiments.parameters.check_runs`).
"""

from __future__ import annotations

import functools

from .runconfig import RunConfig


class RunRefused(ValueError):
    """A run that can only fail, refused by :func:`check_runnable` before anything of it
    is written; a launched worker records it as failed (``status`` shows why).

    >>> issubclass(RunRefused, ValueError)
    True
    """


@functools.lru_cache(maxsize=64)
def prunable_weights(model: str, width: float, dataset: str) -> int:
    """How many weights :func:`synflow.prune` may prune in ``model`` at ``width`` built for
    ``dataset`` (a key of ``DATASETS``); the network is made on the meta device without
    its init (no memory, no time). KeyError for a dataset not in ``DATASETS``.

    >>> prunable_weights("mlp", 1.0, "mnist")  # 784*100 + 4 * 100*100 + 100*10 weights
    119400
    """
    import torch

    from ..core.masks import prunable_layers
    from ..data.datasets import DATASETS
    from ..models.registry import MODELS, check_input_shape

    info = DATASETS[dataset]
    check_input_shape(model, info.input_shape)
    with torch.device("meta"):
        net = MODELS[model](info.input_shape, info.num_classes, width=width)
    return sum(layer.weight.numel() for layer in prunable_layers(net).values())


def check_runnable(config: RunConfig, root=None) -> None:
    """Refuse ``config`` where it can only fail: a dataset neither in
    ``synflow.data.DATASETS`` nor an image folder under the data root ``root`` (None:
    ``$SYNFLOW_DATA``), naming the places looked, and a compression above the model's
    count N of prunable weights (it would keep N / compression < 1 weight), naming both,
    raise :class:`RunRefused`. A dataset of ``DATASETS`` not on disk is not refused: it
    is downloaded when the run starts.

    >>> check_runnable(RunConfig("mlp", "mnist", pruner="synflow", compression=1e9))
    Traceback (most recent call last):
    synflow.experiments.runnable.RunRefused: mlp-...-c1e+09-...: compression 1e+09 keeps N / compression < 1 weight: mlp (width 1) on mnist has 119400 prunable weights, so compression must be at most 119400
    """
    from ..data.datasets import DATASETS, DatasetNotFoundError, locate

    if config.dataset not in DATASETS:
        try:
            locate(config.dataset, root, download=False)
        except DatasetNotFoundError as error:
            raise RunRefused(f"{config.name()}: {error}") from error
        return  # its size is known only once its images are read
    total = prunable_weights(config.model, config.width, config.dataset)
    if config.compression > total:
        raise RunRefused(
            f"{config.name()}: compression {config.compression:g} keeps N / compression < 1 "
            f"weight: {config.model} (width {config.width:g}) on {config.dataset} has {total} "
            f"prunable weights, so compression must be at most {total}")
