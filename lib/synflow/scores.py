"""Pruning scores, one plain function per method, registered in ``SCORERS``.

Every scorer takes ``(model, layers, weights, *, data, input_shape, generator)`` and
returns ``{"<module path>.weight": scores}`` for the weights in ``layers``
(as returned by :func:`synflow.masks.prunable_layers`): one tensor of the weight's
shape per layer, in the weight's dtype (SynFlow: float32 or float64), on its device,
dimensionless. Sign convention: higher = keep (``prune(invert=True)`` keeps the lowest).
``weights`` are the layers' current effective (masked) weights; the pruning loop also
passes ``alive``, the current boolean masks (scorers take ``**_`` for what they ignore).

:func:`compute_scores` is one scoring pass on a model. This module is also callable,
``synflow.scores(...)``, as a deprecated alias of ``compute_scores`` (one release).

Scorers never touch the live model's state: the forward passes run through
``torch.func.functional_call`` on detached copies of the parameters, so the
model's weights, buffers, ``.grad`` fields and train/eval flags are the same
afterwards, even when scoring raises (see :func:`scoring_view`).
"""

from __future__ import annotations

import math
import numbers
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .diagnostics import ScoreWarning, check_synflow_network, warn_uninformative  # noqa: F401
from .masks import check_model, current_masks, effective_weight, prunable_layers, unwrap
from .models import sample_shape
from .pathscores import (  # noqa: F401  (SynFlow's scorers, re-exported)
    FLOAT32_SAFE_RANGE,
    PRECISIONS,
    SynFlowOverflowError,
    check_precision,
    synflow_l2_scores,
    synflow_pass,
    synflow_scores,
)
from .scoring import (  # noqa: F401
    BN_MODES,
    batches_of,
    call_with_weights,
    check_bn_mode,
    fresh_leaves,
    gradient_dtype,
    gradients,
    scoring_view,
)

Scorer = Callable[..., dict[str, torch.Tensor]]

GRASP_TEMPERATURE = 200.0  # the default of grasp_scores' temperature (authors' code)


# ------------------------------------------------------------------ scorers
# Each takes (model, layers, weights, *, data, input_shape, generator); ``weights``
# are the current effective (masked) weights of ``layers``.


def random_scores(model, layers, weights, *, generator, **_):
    """Random: i.i.d. uniform scores in [0, 1) (the paper's "random" baseline, Section 7).

    Global masking of them is uniform random pruning. One tensor of the weight's shape,
    float32, on its device, drawn from ``generator`` (a CPU ``torch.Generator``: a
    seed fixes the scores on any device). Needs no data; BatchNorm is not involved.
    """
    return {
        name: torch.rand(w.shape, generator=generator).to(w.device) for name, w in weights.items()
    }


def magnitude_scores(model, layers, weights, **_):
    """Magnitude: |w| (Han et al. 2015; the paper's baseline, Section 7).

    Same shape, dtype and device as the weight; units of the weight. Needs no data
    and no forward pass (BatchNorm is not involved). Pruned weights score 0.
    """
    return {name: w.abs() for name, w in weights.items()}


def snip_scores(model, layers, weights, *, data, bn_mode="eval", **_):
    """SNIP (Lee et al. 2019, eq. 3 unnormalised): |w * sum over batches of dL/dw|.

    L is the mean cross-entropy of each batch of ``data`` ((inputs, int64 targets)
    pairs), summed over batches; ``bn_mode="eval"`` (default) runs BatchNorm with its
    running statistics, ``"train"`` with each batch's own statistics (the model's
    running statistics are not updated). Same shape, dtype and device as the weight;
    >= 0; pruned weights score 0.
    """
    dtype = gradient_dtype(model)
    leaves = fresh_leaves(weights, dtype=dtype)
    params = list(leaves.values())
    gradient = [torch.zeros_like(w) for w in params]
    with scoring_view(model, bn_mode):
        for inputs, targets in batches_of(model, data, dtype):
            logits = call_with_weights(model, layers, leaves, inputs, dtype=dtype)
            loss = F.cross_entropy(logits, targets)
            for total, g in zip(gradient, gradients(loss, leaves)):
                total += g
    return {name: g.mul_(w.detach()).abs_() for (name, w), g in zip(leaves.items(), gradient)}


def grasp_scores(model, layers, weights, *, data, alive=None, bn_mode="eval",
                 temperature=GRASP_TEMPERATURE, **_):
    """GraSP (Wang et al. 2020, eq. 8): S = w * (H g), signed; keep the highest.

    L is the cross-entropy of logits / ``temperature`` (default 200, the authors'
    code since 2020-06-23; 1 = no temperature, their code before), g = dL/dw summed
    over the batches of ``data``, H g from a double backward pass of <g, dL/dw>. Sign
    convention: as the authors' code and Wang et al.'s ranking, the highest w * H g
    are kept (``select`` needs no sign flip; ``invert=True`` keeps the lowest).
    ``bn_mode="eval"`` (default, the SynFlow authors' figures): BatchNorm with its
    running statistics; ``"train"`` (Wang et al.'s own code): each batch's statistics,
    the model's running statistics untouched. Same shape, dtype and device as the
    weight; pruned weights score 0.

    ``alive`` (the boolean masks, from the pruning loop) multiplies the weights inside
    the graph, as a masked layer does: pruned weights are no parameters of the pruned
    net, so their gradients enter neither g nor H g (as in the authors' masked layers).
    """
    dtype = gradient_dtype(model)
    batches = list(batches_of(model, data, dtype))
    leaves = fresh_leaves(weights, dtype=dtype)
    params = list(leaves.values())

    def loss_of(inputs, targets):
        used = leaves if alive is None else {
            name: leaf * alive[name].to(leaf.dtype) for name, leaf in leaves.items()
        }
        logits = call_with_weights(model, layers, used, inputs, dtype=dtype) / temperature
        return F.cross_entropy(logits, targets)

    with scoring_view(model, bn_mode):
        gradient = [torch.zeros_like(p) for p in params]
        for inputs, targets in batches:
            for total, g in zip(gradient, gradients(loss_of(inputs, targets), leaves)):
                total += g
        hessian_gradient = [torch.zeros_like(p) for p in params]
        for inputs, targets in batches:
            grads = gradients(loss_of(inputs, targets), leaves, create_graph=True)
            inner = sum((g * fixed).sum() for g, fixed in zip(grads, gradient))
            for total, hg in zip(hessian_gradient, torch.autograd.grad(inner, params)):
                total += hg
    return {
        name: hg.mul_(w.detach()) for (name, w), hg in zip(leaves.items(), hessian_gradient)
    }


SCORERS: dict[str, Scorer] = {
    "random": random_scores,
    "magnitude": magnitude_scores,
    "snip": snip_scores,
    "grasp": grasp_scores,
    "synflow": synflow_scores,
    "synflow_l2": synflow_l2_scores,
}

DATA_METHODS = frozenset({"snip", "grasp"})
SYNFLOW_METHODS = frozenset({"synflow", "synflow_l2"})
# scores of the form f(w) * w or |w|: a pruned (zero) weight scores exactly 0
ZERO_WHEN_PRUNED = frozenset({"magnitude", "snip", "grasp", "synflow", "synflow_l2"})


def check_method(method: str) -> None:
    if method not in SCORERS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of: {', '.join(SCORERS)}")


BN_MODE_METHODS = DATA_METHODS  # the scores that run data through BatchNorm
TEMPERATURE_METHODS = frozenset({"grasp"})


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
        inputs, _ = next(iter(data))
        input_shape = inputs.shape[1:]
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
    "float32", synflow and synflow_l2) as in :func:`synflow.pathscores.synflow_scores`.

    Returns ``{"<module path>.weight": scores}`` for every prunable weight: tensors of
    the weight's shape on its device, in the scorer's dtype (see each scorer in
    ``SCORERS``); higher = keep. Masked weights score as their masked value (SynFlow,
    SNIP, GraSP and magnitude give 0 to pruned weights). The model runs in eval mode
    (BatchNorm with running statistics; ``bn_mode="train"``: batch statistics) and is
    left exactly as it was.

    Raises ValueError for an unknown method, missing data or input shape, a model
    whose layers a mask cannot govern (:func:`synflow.masks.check_model`) or that
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


def scores(*args, **kwargs) -> dict[str, torch.Tensor]:
    """Deprecated alias of :func:`compute_scores` (removed in the next release)."""
    warnings.warn(
        "synflow.scores(...) is deprecated: call synflow.compute_scores(...); "
        "synflow.scores is the module of the scorers",
        DeprecationWarning,
        stacklevel=2,
    )
    return compute_scores(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """``synflow.scores`` is this module; calling it is the deprecated ``scores(...)``."""

    def __call__(self, *args, **kwargs):
        warnings.warn(
            "calling synflow.scores(...) is deprecated: call synflow.compute_scores(...); "
            "synflow.scores is the module of the scorers",
            DeprecationWarning,
            stacklevel=2,
        )
        return compute_scores(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
