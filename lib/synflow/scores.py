"""Pruning scores, one plain function per method, registered in ``SCORERS``.

Every scorer takes ``(model, layers, *, data, input_shape, generator)`` and
returns ``{"<module path>.weight": scores}`` for the weights in ``layers``
(as returned by :func:`synflow.masks.prunable_layers`). Higher = keep.

Scorers never touch the live model's state: the forward passes run through
``torch.func.functional_call`` on detached copies of the parameters, so the
model's weights, buffers, ``.grad`` fields and train/eval flags are the same
afterwards, even when scoring raises (see :func:`scoring_view`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .masks import effective_weight, is_masked, prunable_layers, unwrap

GRASP_TEMPERATURE = 200.0
# float32 is tried first for SynFlow; outside this range of R the float64 pass is used
FLOAT32_SAFE_RANGE = (1e-30, 1e30)


@contextlib.contextmanager
def scoring_view(model: nn.Module):
    """Eval mode for the duration; every module's mode and cached masked weight restored after."""
    modes = [(module, module.training) for module in model.modules()]
    # layers masked by torch.nn.utils.prune's hook cache ``weight`` on the module (ours
    # compute it on access, nothing to restore)
    cached = [(m, m.__dict__["weight"]) for m in model.modules() if "weight" in m.__dict__]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for module, weight in cached:
            module.weight = weight


class InputShapeError(ValueError, RuntimeError):
    """The model cannot take inputs of the given shape (a ValueError; also a RuntimeError,
    what torch raised before this check existed)."""


_SHAPE_WORDS = ("shape", "size", "channel", "dimension", "Expected", "expected")


def expected_input(layers: dict[str, nn.Module]) -> str:
    """What the first prunable layer expects, in words, e.g. "features.0.weight (Conv2d)
    expects 3 input channels: input_shape=(3, H, W)"."""
    name, module = next(iter(layers.items()))
    if isinstance(module, nn.Linear):
        return (f"{name} (Linear) expects {module.in_features} input features: an input_shape "
                f"whose last dimension (or flattened size) is {module.in_features}")
    spatial = ", ".join("HWD"[: len(module.kernel_size)])
    return (f"{name} ({type(module).__name__}) expects {module.in_channels} input channels: "
            f"input_shape=({module.in_channels}, {spatial}), channels first, no batch dimension")


@contextlib.contextmanager
def explained_shape_errors(layers: dict[str, nn.Module], inputs: torch.Tensor):
    """Re-raise torch's shape errors from a forward pass as :class:`InputShapeError`
    naming the input shape given and the shape the model expects."""
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, InputShapeError) or not any(w in str(error) for w in _SHAPE_WORDS):
            raise
        raise InputShapeError(
            f"the model cannot take inputs of shape {tuple(inputs.shape[1:])} (one sample, from "
            f"input_shape or data): {expected_input(layers)}. torch said: {error}"
        ) from error


def call_with_weights(
    model: nn.Module,
    layers: dict[str, nn.Module],
    weights: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    parameter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Run ``model(inputs)`` with the prunable weights replaced by ``weights``
    (the effective, already-masked weights) and every other parameter replaced
    by ``parameter(p)`` (a detached copy); floating buffers are cast to ``dtype``."""
    # A masked layer computes weight_orig * weight_mask; its weight_orig is replaced
    # by the (already masked) weight, so the product is that weight again.
    tensors = {
        name + "_orig" if is_masked(layers[name]) else name: weight
        for name, weight in weights.items()
    }
    for name, p in model.named_parameters():
        if name not in tensors:
            p = p.detach().to(dtype) if dtype else p.detach()
            tensors[name] = parameter(p) if parameter else p
    for name, buffer in model.named_buffers():
        cast = dtype is not None and buffer.is_floating_point()
        tensors[name] = buffer.to(dtype) if cast else buffer
    with explained_shape_errors(layers, inputs):
        return functional_call(model, tensors, (inputs,))


def _leaves(weights, transform=None, dtype=None):
    """Fresh autograd leaves holding ``transform(w)`` for every weight (detached from it)."""
    leaves = {}
    for name, weight in weights.items():
        weight = weight.detach().to(dtype) if dtype else weight.detach()
        leaves[name] = (transform(weight) if transform else weight).requires_grad_(True)
    return leaves


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


LOW_PRECISION = (torch.float16, torch.bfloat16)


def gradient_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype the data-based scores (SNIP, GraSP) are computed in, ``None`` for the
    model's own: float32 for a float16 or bfloat16 model (their gradients, sums and
    Hessian-vector products under- and overflow), else the model's dtype."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return torch.float32 if dtype in LOW_PRECISION else None


def _batches(model, data: Iterable, dtype=None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The batches on the model's device, floating inputs in ``dtype`` (else the model's)."""
    device = _device(model)
    model_dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    dtype = dtype or model_dtype
    count = 0
    for inputs, targets in data:
        count += 1
        cast = dtype if inputs.is_floating_point() else None
        yield inputs.to(device=device, dtype=cast), targets.to(device)
    if count == 0:
        raise ValueError("data gave no batches")


# ------------------------------------------------------------------ scorers
# Each takes (model, layers, weights, *, data, input_shape, generator); ``weights``
# are the current effective (masked) weights of ``layers``.


def random_scores(model, layers, weights, *, generator, **_):
    """i.i.d. uniform scores (global masking = uniform random pruning)."""
    return {
        name: torch.rand(w.shape, generator=generator).to(w.device) for name, w in weights.items()
    }


def magnitude_scores(model, layers, weights, **_):
    """|w|."""
    return {name: w.abs() for name, w in weights.items()}


def snip_scores(model, layers, weights, *, data, **_):
    """SNIP: |w * sum over batches of dL/dw|, L = cross-entropy."""
    dtype = gradient_dtype(model)
    leaves = _leaves(weights, dtype=dtype)
    params = list(leaves.values())
    gradient = [torch.zeros_like(w) for w in params]
    with scoring_view(model):
        for inputs, targets in _batches(model, data, dtype):
            logits = call_with_weights(model, layers, leaves, inputs, dtype=dtype)
            loss = F.cross_entropy(logits, targets)
            for total, g in zip(gradient, torch.autograd.grad(loss, params)):
                total += g
    return {name: g.mul_(w.detach()).abs_() for (name, w), g in zip(leaves.items(), gradient)}


def grasp_scores(model, layers, weights, *, data, **_):
    """GraSP: w * (H g) with the loss on logits / 200; keep the highest.

    g is the loss gradient summed over batches; H g comes from a double
    backward pass of <g, dL/dw> (Wang et al. 2020).
    """
    dtype = gradient_dtype(model)
    batches = list(_batches(model, data, dtype))
    leaves = _leaves(weights, dtype=dtype)
    params = list(leaves.values())

    def loss_of(inputs, targets):
        logits = call_with_weights(model, layers, leaves, inputs, dtype=dtype) / GRASP_TEMPERATURE
        return F.cross_entropy(logits, targets)

    with scoring_view(model):
        gradient = [torch.zeros_like(p) for p in params]
        for inputs, targets in batches:
            for total, g in zip(gradient, torch.autograd.grad(loss_of(inputs, targets), params)):
                total += g
        hessian_gradient = [torch.zeros_like(p) for p in params]
        for inputs, targets in batches:
            grads = torch.autograd.grad(loss_of(inputs, targets), params, create_graph=True)
            inner = sum((g * fixed).sum() for g, fixed in zip(grads, gradient))
            for total, hg in zip(hessian_gradient, torch.autograd.grad(inner, params)):
                total += hg
    return {
        name: hg.mul_(w.detach()) for (name, w), hg in zip(leaves.items(), hessian_gradient)
    }


def synflow_pass(model, layers, weights, input_shape, dtype, power=1):
    """One SynFlow evaluation in ``dtype``: every parameter as |p|**power, BatchNorm
    with its running statistics (eval mode), an all-ones input, R = sum of
    outputs, score = dR/dw * w. Returns (R, scores)."""
    transform = (lambda p: p.abs()) if power == 1 else (lambda p: p.abs() ** power)
    leaves = _leaves(weights, transform, dtype)
    ones = torch.ones((1, *input_shape), dtype=dtype, device=_device(model))
    with scoring_view(model):
        R = call_with_weights(model, layers, leaves, ones, transform, dtype).sum()
        grads = torch.autograd.grad(R, list(leaves.values()))
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
    """SynFlow (Algorithm 1): data-free, iterative-friendly synaptic flow.

    Computed in float32 when R_SF is safely inside float32's range, else in
    float64 (R_SF of ResNet-110 or ResNet-50 at init overflows float32). Raises
    :class:`SynFlowOverflowError` (an ``OverflowError`` and ``ValueError``) naming the
    overflow when R_SF is not finite in float64 either (e.g. a 400-layer MLP).
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
    """SynFlow-L2 (Patil & Dovrolis 2021 style): theta**2 in place of |theta|."""
    return synflow_scores(model, layers, weights, input_shape=input_shape, power=2)


SCORERS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "random": random_scores,
    "magnitude": magnitude_scores,
    "snip": snip_scores,
    "grasp": grasp_scores,
    "synflow": synflow_scores,
    "synflow_l2": synflow_l2_scores,
}

DATA_METHODS = frozenset({"snip", "grasp"})
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


def scores(
    model: nn.Module,
    method: str,
    *,
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """One evaluation of ``method``'s scores for the model's current masks."""
    check_method(method)
    model = unwrap(model)  # nn.DataParallel / DDP: score the module they run
    data, input_shape = check_inputs(method, data, input_shape)
    layers = prunable_layers(model)
    weights = {name: effective_weight(module) for name, module in layers.items()}
    return SCORERS[method](
        model,
        layers,
        weights,
        data=data,
        input_shape=input_shape,
        generator=torch.Generator().manual_seed(seed),
    )
