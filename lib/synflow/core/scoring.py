"""One scoring pass on a model (:func:`compute_scores`), and the checks of a method's
name, options and inputs, made once at the public boundary."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .checks import sample_shape
from .diagnostics import check_synflow_network, warn_uninformative
from .masks import check_model, current_masks, effective_weight, prunable_layers, unwrap
from .scorers import (
    BN_MODE_METHODS,
    DATA_METHODS,
    SCORERS,
    SYNFLOW_METHODS,
    TEMPERATURE_METHODS,
    ZERO_WHEN_PRUNED,
)
from .scorers.functional import check_bn_mode
from .scorers.gradient import GRASP_TEMPERATURE
from .scorers.inputs import first_inputs
from .scorers.synflow import PRECISIONS, check_precision


def check_method(method: str) -> None:
    if method not in SCORERS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of: {', '.join(SCORERS)}")


def check_options(method, bn_mode="eval", temperature=GRASP_TEMPERATURE,
                  precision="float64") -> dict:
    """The scorer options ``{"bn_mode": ..., "temperature": ..., "precision": ...}``
    after checking them.

    ValueError naming the value and what is allowed: ``bn_mode`` not in ``BN_MODES``,
    or "train" for a method that runs no data (only snip and grasp); ``temperature``
    not a finite number > 0, or not the default for a method other than grasp;
    ``precision`` not in ``PRECISIONS``, or "float32" for a method other than synflow
    and synflow_l2.
    """
    check_bn_mode(bn_mode)
    if bn_mode != "eval" and method not in BN_MODE_METHODS:
        raise ValueError(
            f"bn_mode {bn_mode!r} is for the data-based scores ({', '.join(sorted(BN_MODE_METHODS))}); "
            f"{method!r} runs BatchNorm in eval mode only: use bn_mode='eval'"
        )
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not (math.isfinite(temperature) and temperature > 0)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if temperature != GRASP_TEMPERATURE and method not in TEMPERATURE_METHODS:
        raise ValueError(
            f"temperature {temperature!r} is for grasp only; {method!r} takes no temperature "
            f"(leave the default {GRASP_TEMPERATURE})"
        )
    check_precision(precision)
    if precision != PRECISIONS[0] and method not in SYNFLOW_METHODS:
        raise ValueError(
            f"precision {precision!r} is for the SynFlow passes ({', '.join(sorted(SYNFLOW_METHODS))}); "
            f"{method!r} takes no precision option (its gradients are taken in the model's "
            f"dtype, float32 for float16/bfloat16 models): leave precision={PRECISIONS[0]!r}"
        )
    return {"bn_mode": bn_mode, "temperature": float(temperature), "precision": precision}


def check_inputs(method: str, data, input_shape):
    """Validate what ``method`` needs; returns (data as a list if used, input_shape tuple)."""
    if method in DATA_METHODS:
        if data is None:
            raise ValueError(
                f"{method} needs data: pass data=an iterable of (inputs, targets) batches"
            )
        return list(data), None  # read once, reused by every iteration
    if input_shape is None and data is not None:
        input_shape = first_inputs(data).shape[1:]
    if input_shape is None:
        return None, None
    return None, sample_shape(input_shape)


def compute_scores(
    model: nn.Module,
    method: str,
    *,
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    bn_mode: str = "eval",
    temperature: float = GRASP_TEMPERATURE,
    precision: str = "float64",
) -> dict[str, torch.Tensor]:
    """One evaluation of ``method``'s scores for the model's current masks (no pruning).

    Args are :func:`synflow.prune`'s: ``method`` a key of ``SCORERS``; ``data`` an
    iterable of (inputs float (B, *input_shape), targets int64 (B,)) batches for snip
    and grasp; ``input_shape`` one sample's shape, e.g. (3, 32, 32), for synflow;
    ``seed`` fixes random scores; ``bn_mode`` ("eval" or "train", snip and grasp) and
    ``temperature`` (grasp) as in :func:`grasp_scores`; ``precision`` ("float64" or
    "float32", synflow and synflow_l2) as in :func:`synflow.core.scorers.synflow.synflow_scores`.

    Returns ``{"<module path>.weight": scores}`` for every prunable weight: tensors of
    the weight's shape on its device, in the scorer's dtype (see each scorer in
    ``SCORERS``); higher = keep. Masked weights score as their masked value (SynFlow,
    SNIP, GraSP and magnitude give 0 to pruned weights). The model runs in eval mode
    (BatchNorm with running statistics; ``bn_mode="train"``: batch statistics) and is
    left exactly as it was.

    Raises ValueError for an unknown method, missing data or input shape, a model
    whose layers a mask cannot govern (:func:`synflow.core.masks.check_model`) or that
    SynFlow cannot score; warns :class:`ScoreWarning` like :func:`synflow.prune`.
    """
    check_method(method)
    options = check_options(method, bn_mode, temperature, precision)
    model = unwrap(model)  # nn.DataParallel / DDP: score the module they run
    data, input_shape = check_inputs(method, data, input_shape)
    layers = prunable_layers(model)
    check_model(model, layers)
    if method in SYNFLOW_METHODS:
        check_synflow_network(model)
    weights = {name: effective_weight(module) for name, module in layers.items()}
    result = SCORERS[method](
        model,
        layers,
        weights,
        data=data,
        input_shape=input_shape,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )
    if method in ZERO_WHEN_PRUNED:
        flat = torch.cat([s.detach().flatten() for s in result.values()])
        alive = torch.cat([m.flatten() for m in current_masks(model).values()])
        warn_uninformative(flat, alive, list(result), [s.numel() for s in result.values()])
    return result
