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
from .scoring import (
    batches_of,
    call_with_weights,
    device_of,
    fresh_leaves,
    gradient_dtype,
    gradients,
    scoring_view,
)

Scorer = Callable[..., dict[str, torch.Tensor]]

GRASP_TEMPERATURE = 200.0
# float32 is tried first for SynFlow; outside this range of R the float64 pass is used
FLOAT32_SAFE_RANGE = (1e-30, 1e30)


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


def snip_scores(model, layers, weights, *, data, **_):
    """SNIP (Lee et al. 2019, eq. 3 unnormalised): |w * sum over batches of dL/dw|.

    L is the mean cross-entropy of each batch of ``data`` ((inputs, int64 targets)
    pairs), summed over batches; the model runs in eval mode (BatchNorm with its
    running statistics). Same shape, dtype and device as the weight; >= 0; pruned
    weights score 0.
    """
    dtype = gradient_dtype(model)
    leaves = fresh_leaves(weights, dtype=dtype)
    params = list(leaves.values())
    gradient = [torch.zeros_like(w) for w in params]
    with scoring_view(model):
        for inputs, targets in batches_of(model, data, dtype):
            logits = call_with_weights(model, layers, leaves, inputs, dtype=dtype)
            loss = F.cross_entropy(logits, targets)
            for total, g in zip(gradient, gradients(loss, leaves)):
                total += g
    return {name: g.mul_(w.detach()).abs_() for (name, w), g in zip(leaves.items(), gradient)}


def grasp_scores(model, layers, weights, *, data, alive=None, **_):
    """GraSP (Wang et al. 2020, eq. 8): S = w * (H g), signed; keep the highest.

    L is the cross-entropy of logits / ``GRASP_TEMPERATURE`` (200), g = dL/dw summed
    over the batches of ``data``, H g from a double backward pass of <g, dL/dw>. Sign
    convention: as the authors' code and Wang et al.'s ranking, the highest w * H g
    are kept (``select`` needs no sign flip). Eval mode (BatchNorm with running
    statistics). Same shape, dtype and device as the weight; pruned weights score 0.

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
        logits = call_with_weights(model, layers, used, inputs, dtype=dtype) / GRASP_TEMPERATURE
        return F.cross_entropy(logits, targets)

    with scoring_view(model):
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


def synflow_pass(model, layers, weights, input_shape, dtype, power=1):
    """One SynFlow evaluation in ``dtype`` (Algorithm 1 of Tanaka et al. 2020, eq. 2).

    Every parameter as |p|**power (biases and BatchNorm's affine parameters
    included), BatchNorm with its running statistics (eval mode: a fixed affine map),
    an all-ones input of shape (1, *input_shape), R = sum of the outputs, score =
    dR/dw * w with w the transformed weight. Returns ``(R, scores)``: R a 0-d tensor,
    scores >= 0 of the weights' shapes, both in ``dtype``.
    """
    transform = (lambda p: p.abs()) if power == 1 else (lambda p: p.abs() ** power)
    leaves = fresh_leaves(weights, transform, dtype)
    ones = torch.ones((1, *input_shape), dtype=dtype, device=device_of(model))
    with scoring_view(model):
        R = call_with_weights(model, layers, leaves, ones, transform, dtype).sum()
        grads = gradients(R, leaves)
    return R.detach(), {name: g.mul_(w.detach()) for (name, w), g in zip(leaves.items(), grads)}


def _safe_in_float32(R, scores) -> bool:
    """R inside float32's comfortable range and no score overflowed.

    Every score is a sum of positive path terms (0 <= score <= R), so one sum
    per layer detects an inf or NaN anywhere without an elementwise pass.
    """
    low, high = FLOAT32_SAFE_RANGE
    total = sum(float(s.sum(dtype=torch.float64)) for s in scores.values())
    return low < float(R) < high and math.isfinite(total)


class SynFlowOverflowError(OverflowError, ValueError):
    """R_SF is not finite even in float64 (very deep or very wide networks)."""


def synflow_scores(model, layers, weights, *, input_shape, power=1, **_):
    """SynFlow (Tanaka et al. 2020, Algorithm 1, eq. 2): S = dR/d|w| * |w|, data-free.

    R = 1^T (prod_l |W_l|) 1: the summed output of the net with every parameter
    replaced by its absolute value, on one all-ones input of ``input_shape``, in eval
    mode (BatchNorm as the affine map of its running statistics). Scores are >= 0,
    of the weights' shapes, float32 when R is safely inside float32's range, else
    float64 (R of ResNet-110 or ResNet-50 at init overflows float32); pruned weights
    score 0. Conservation (Theorems 1-2: every layer's total is R) holds for
    positively homogeneous activations only, f(a x) = a f(x) for a > 0 (ReLU,
    LeakyReLU, PReLU, identity, max/avg pooling, dropout in eval), with BatchNorm
    in eval mode as an affine map; see :func:`synflow.diagnostics.check_synflow_network`
    for what is warned about or refused.

    Raises ValueError without ``input_shape``, and :class:`SynFlowOverflowError` (an
    ``OverflowError`` and ``ValueError``) naming the overflow when R is not finite in
    float64 either (e.g. a 400-layer MLP).
    """
    if input_shape is None:
        raise ValueError("synflow needs input_shape (one sample's shape, e.g. (3, 32, 32)) or data")
    R, scores = synflow_pass(model, layers, weights, input_shape, torch.float32, power)
    if _safe_in_float32(R, scores):
        return scores
    R, scores = synflow_pass(model, layers, weights, input_shape, torch.float64, power)
    total = sum(float(s.sum(dtype=torch.float64)) for s in scores.values())
    if not (math.isfinite(float(R)) and math.isfinite(total)):
        raise SynFlowOverflowError(
            f"SynFlow overflows float64: R_SF (the sum over every input-output path of the "
            f"product of |weights|{'^2' if power == 2 else ''}) is {float(R)} in float64 "
            f"(at most 1.8e308) for this network of {len(layers)} prunable layers, so its "
            "scores cannot be ranked. Each layer multiplies R_SF by about fan-in x mean "
            "|weight|; scale every layer's weights down by a constant before pruning "
            "(for a bias-free ReLU network this rescales every score alike and leaves the "
            "mask unchanged), prune fewer layers, or use another method."
        )
    return scores


def synflow_l2_scores(model, layers, weights, *, input_shape, **_):
    """SynFlow-L2 (Patil & Dovrolis 2021, PHEW's data-free variant): SynFlow with every
    parameter replaced by theta**2 instead of |theta|; S = dR/d(theta^2) * theta^2.

    Same shapes, dtypes, mode and conditions as :func:`synflow_scores`.
    """
    return synflow_scores(model, layers, weights, input_shape=input_shape, power=2)


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
    shape = tuple(input_shape)
    if not shape or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"input_shape must be one sample's shape, positive integers without the batch "
            f"dimension, e.g. (3, 32, 32); got {input_shape!r}"
        )
    return None, tuple(int(d) for d in shape)


def compute_scores(
    model: nn.Module,
    method: str,
    *,
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """One evaluation of ``method``'s scores for the model's current masks (no pruning).

    Args are :func:`synflow.prune`'s: ``method`` a key of ``SCORERS``; ``data`` an
    iterable of (inputs float (B, *input_shape), targets int64 (B,)) batches for snip
    and grasp; ``input_shape`` one sample's shape, e.g. (3, 32, 32), for synflow;
    ``seed`` fixes random scores.

    Returns ``{"<module path>.weight": scores}`` for every prunable weight: tensors of
    the weight's shape on its device, in the scorer's dtype (see each scorer in
    ``SCORERS``); higher = keep. Masked weights score as their masked value (SynFlow,
    SNIP, GraSP and magnitude give 0 to pruned weights). The model runs in eval mode
    (BatchNorm with running statistics) and is left exactly as it was.

    Raises ValueError for an unknown method, missing data or input shape, a model
    whose layers a mask cannot govern (:func:`synflow.masks.check_model`) or that
    SynFlow cannot score; warns :class:`ScoreWarning` like :func:`synflow.prune`.
    """
    check_method(method)
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
