"""SynFlow's data-free path scores (Tanaka et al. 2020, Algorithm 1) and SynFlow-L2.

Each pass replaces every parameter by |p| (or p**2), runs one all-ones input and
differentiates R_SF, the sum of the outputs. Passes run in float64 (``precision=
"float64"``, the default and the oracle); ``precision="float32"`` is a faster opt-in
whose masks can differ from float64's where scores are near-ties (see
:func:`synflow_scores`).
"""

from __future__ import annotations

import math

import torch

from ..checks import all_finite
from .functional import (
    call_with_weights,
    check_materialized,
    differentiable,
    fresh_leaves,
    scoring_view,
)
from .guards import gradients
from .inputs import SYNFLOW_INPUT, device_of

# precision="float32": outside this range of R (or with a non-finite score) the pass is
# redone in float64. Every score lies in [0, R], so R up to 1e36 leaves a 300x margin below
# float32's 3.4e38; VGG-19 at 224x224 has R = 1.1e34 at init, ResNet-110 overflows.
FLOAT32_SAFE_RANGE = (1e-30, 1e36)
PRECISIONS = ("float64", "float32")  # the first is the default


def synflow_pass(model, layers, weights, input_shape, dtype, power=1):
    """One SynFlow evaluation in ``dtype`` (Algorithm 1 of Tanaka et al. 2020, eq. 2).

    Every parameter as |p|**power (biases and BatchNorm's affine parameters
    included), BatchNorm with its running statistics (eval mode: a fixed affine map),
    an all-ones input of shape (1, *input_shape), R = sum of the outputs, score =
    dR/dw * w with w the transformed weight, for every tensor of ``weights`` (the
    prunable weights, or every parameter: the synaptic saliency of Figures 3 and 4).
    Returns ``(R, scores)``: R a 0-d tensor, scores >= 0 of the weights' shapes, both
    in ``dtype``. The one implementation of SynFlow's pass (the scorers, the
    iteration records and :mod:`synflow.analysis.saliency` call it).

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    >>> _ = [m.weight.data.fill_(-1.0) for m in net]
    >>> layers = {"0.weight": net[0], "1.weight": net[1]}
    >>> R, scores = synflow_pass(net, layers, {n: m.weight for n, m in layers.items()},
    ...                          (2,), torch.float64)
    >>> float(R), scores["1.weight"].tolist()  # 4 paths of |w| = 1; 2 through each
    (4.0, [[2.0, 2.0]])
    """
    check_materialized(weights)
    transform = path_transform(power)
    leaves = fresh_leaves(weights, transform, dtype)
    R, grads = path_gradients(model, layers, leaves, input_shape, dtype, transform)
    return R, {name: g.mul_(w.detach()) for (name, w), g in zip(leaves.items(), grads)}


def path_transform(power=1):
    """The map every parameter goes through in a SynFlow pass: |p| or |p|**power
    (``power`` 1 for "synflow", 2 for "synflow_l2").

    >>> path_transform(2)(torch.tensor([-3.0, 0.5]))
    tensor([9.0000, 0.2500])
    """
    return (lambda p: p.abs()) if power == 1 else (lambda p: p.abs() ** power)


def path_gradients(model, layers, leaves, input_shape, dtype, transform, after_forward=None):
    """The pass itself: ``(R, [dR/dleaf])`` with the prunable weights replaced by
    ``leaves`` (already |w|**power, in ``dtype``, requiring gradients) and every other
    parameter by ``transform(p)``; R a detached 0-d tensor in ``dtype``, one gradient per
    leaf (:func:`synflow_pass` and the pruning loop's SynFlow path). ``after_forward``,
    if given, is called between the forward and the backward pass (the pruning loop
    releases the previous pass's gradients there).

    >>> import torch.nn as nn
    >>> model = nn.Linear(2, 1, bias=False)
    >>> model.weight.data = torch.tensor([[2.0, -3.0]])
    >>> leaves = fresh_leaves({"weight": model.weight}, path_transform(1), torch.float64)
    >>> R, grads = path_gradients(model, {"": model}, leaves, (2,), torch.float64,
    ...                           path_transform(1))
    >>> float(R), grads[0].tolist()  # R = |2| + |-3|, dR/d|w| = the input, 1
    (5.0, [[1.0, 1.0]])
    """
    with scoring_view(model), differentiable():
        ones = torch.ones((1, *input_shape), dtype=dtype, device=device_of(model))
        R = call_with_weights(model, layers, leaves, ones, transform, dtype, SYNFLOW_INPUT).sum()
        if after_forward is not None:
            after_forward()
        grads = gradients(model, layers, R, leaves)
    return R.detach(), grads


def safe_in_float32(R, scores) -> bool:
    """R inside float32's comfortable range (``FLOAT32_SAFE_RANGE``) and no score
    overflowed: a float32 pass need not be redone in float64 (:func:`checked_pass` and
    the pruning loop). One sum per layer detects an inf or NaN anywhere without an
    elementwise pass (:func:`synflow.core.checks.all_finite`).

    >>> safe_in_float32(torch.tensor(2.0), {"w": torch.ones(2)})
    True
    >>> safe_in_float32(torch.tensor(1e37), {"w": torch.ones(2)})
    False
    """
    low, high = FLOAT32_SAFE_RANGE
    return low < float(R) < high and all(all_finite(s) for s in scores.values())


class SynFlowOverflowError(OverflowError, ValueError):
    """R_SF is not finite even in float64 (very deep or very wide networks); both an
    OverflowError and a ValueError.

    >>> issubclass(SynFlowOverflowError, OverflowError), issubclass(SynFlowOverflowError, ValueError)
    (True, True)
    """


def check_precision(precision) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else ValueError naming it and them.

    >>> check_precision("float32")
    'float32'
    >>> check_precision("half")
    Traceback (most recent call last):
    ValueError: precision must be one of 'float64', 'float32' (the dtype of SynFlow's pass), got 'half'
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))} (the dtype of "
            f"SynFlow's pass), got {precision!r}"
        )
    return precision


def checked_pass(model, layers, weights, input_shape, precision="float64", power=1):
    """One SynFlow pass at ``precision``: ``(R, scores)`` as :func:`synflow_pass` returns.

    "float64" (the default): one float64 pass. "float32": a float32 pass, redone in
    float64 when R leaves ``FLOAT32_SAFE_RANGE`` or a score overflowed (so the
    result is float32 or float64).

    Raises :class:`SynFlowOverflowError` when R or a score is not finite in float64.

    >>> import torch.nn as nn
    >>> net = nn.Linear(2, 1, bias=False)
    >>> R, scores = checked_pass(net, {"weight": net}, {"weight": net.weight}, (2,), "float32")
    >>> R.dtype, float(scores["weight"].sum()) == float(R)  # in range: float32 kept
    (torch.float32, True)
    """
    if check_precision(precision) == "float32":
        R, scores = synflow_pass(model, layers, weights, input_shape, torch.float32, power)
        if safe_in_float32(R, scores):
            return R, scores
    R, scores = synflow_pass(model, layers, weights, input_shape, torch.float64, power)
    return check_finite(R, scores, len(layers), power)


def check_finite(R, scores, layer_count, power=1):
    """``(R, scores)`` if R and every score are finite, else :class:`SynFlowOverflowError`
    (``layer_count`` and ``power`` are named in its message).

    >>> R, scores = torch.tensor(3.0), {"w": torch.ones(3)}
    >>> check_finite(R, scores, 1)[0]
    tensor(3.)
    >>> check_finite(torch.tensor(float("inf")), scores, 1)
    Traceback (most recent call last):
    synflow.core.scorers.synflow.SynFlowOverflowError: SynFlow overflows float32: ...
    """
    if not (math.isfinite(float(R)) and all(all_finite(s) for s in scores.values())):
        raise SynFlowOverflowError(
            f"SynFlow overflows {str(R.dtype).removeprefix('torch.')}: R_SF (the sum over every "
            f"input-output path of the product of |weights|{'^2' if power == 2 else ''}) is "
            f"{float(R)} in {str(R.dtype).removeprefix('torch.')} (at most "
            f"{torch.finfo(R.dtype).max:.1e}) for this network of "
            f"{layer_count} prunable layers, so its scores cannot be ranked. Each layer "
            "multiplies R_SF by about fan-in x mean |weight|; scale every layer's weights down "
            "by a constant before pruning (for a bias-free ReLU network this rescales every "
            "score alike and leaves the mask unchanged), prune fewer layers, or use another "
            "method."
        )
    return R, scores


def synflow_scores(model, layers, weights, *, input_shape, power=1, precision="float64",
                   dtype=None, **_):
    """SynFlow (Tanaka et al. 2020, Algorithm 1, eq. 2): S = dR/d|w| * |w|, data-free.

    R = 1^T (prod_l |W_l|) 1: the summed output of the net with every parameter
    replaced by its absolute value, on one all-ones input of ``input_shape``, in eval
    mode (BatchNorm as the affine map of its running statistics). Scores are >= 0,
    of the weights' shapes; pruned weights score 0. Conservation (Theorems 1-2: every
    layer's total is R) holds for positively homogeneous activations only,
    f(a x) = a f(x) for a > 0 (ReLU, LeakyReLU, PReLU, identity, max/avg pooling,
    dropout in eval), with BatchNorm in eval mode as an affine map; see
    :func:`synflow.core.diagnostics.check_synflow_network` for what is warned about or
    refused.

    ``precision``: "float64" (default) computes every pass in float64, the oracle:
    exact ties in exact arithmetic (every weight of a lone surviving path scores R)
    and near-ties are ranked by float64's rounding, the same on every run of a
    device. "float32" is about 4x faster on a CPU (VGG-19 at 224x224: 0.7 s vs 2.6 s
    a pass on 2 cores) and redoes a pass in float64 when R leaves ``FLOAT32_SAFE_RANGE``
    or a score is not finite (R of ResNet-110 or ResNet-50 at init). What it changes
    (measured on a CPU, ``benchmarks/synflow_precision_range.py``: width-1/4 VGG-16-BN
    and ResNet-20 on CIFAR, seeds 0 and 1, compression 10, 100 and 1000): single-shot
    masks were float64's in all 12 settings; over 100 iterations float32's roundings of
    near-tied scores compound, and it kept other weights than float64 for 0-22.5 % of
    the kept weights (0-4.5 % at compression 10, 0-20.6 % at 100, 0-22.5 % at 1000, e.g.
    199 of VGG-16-BN's 921 at 1000); at rho_max/2 on width-1 VGG-16-BN, 20-48 of the few
    dozen kept weights (``benchmarks/synflow_precision.py``). No cheap check can
    certify a float32 ranking at the threshold of millions of scores: use float32 to
    explore, float64 for results.

    ``dtype`` (e.g. ``torch.float64``) runs one pass in that dtype instead, without
    the float32 fallback (:func:`synflow.analysis.saliency.parameter_scores`).

    Raises ValueError without ``input_shape`` or for a ``precision`` not in
    ``PRECISIONS``, and :class:`SynFlowOverflowError` (an ``OverflowError`` and
    ``ValueError``) naming the overflow when R is not finite in float64 (e.g. a
    400-layer MLP). A model whose forward casts tensors to a dtype of its own
    (``x.half()``: a mixed-precision model) or feeds its input to an ``nn.Embedding``
    (token ids) is refused naming the cause (see :mod:`synflow.core.scorers.inputs`).

    >>> from torch import nn; from synflow.core.masks import prunable_layers
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> layers = prunable_layers(net)
    >>> weights = {name: m.weight for name, m in layers.items()}
    >>> scores = synflow_scores(net, layers, weights, input_shape=(4,))
    >>> scores["0.weight"].dtype, scores["0.weight"].shape
    (torch.float64, torch.Size([3, 4]))
    """
    if input_shape is None:
        raise ValueError("synflow needs input_shape (one sample's shape, e.g. (3, 32, 32)) or data")
    if dtype is not None:
        R, scores = synflow_pass(model, layers, weights, input_shape, dtype, power)
        return check_finite(R, scores, len(layers), power)[1]
    return checked_pass(model, layers, weights, input_shape, precision, power)[1]


def synflow_l2_scores(model, layers, weights, *, input_shape, precision="float64", dtype=None,
                      **_):
    """SynFlow-L2 (Patil & Dovrolis 2021, PHEW's data-free variant): SynFlow with every
    parameter replaced by theta**2 instead of |theta|; S = dR/d(theta^2) * theta^2.

    Same shapes, dtypes, mode and conditions as :func:`synflow_scores`.

    >>> import torch.nn as nn
    >>> net = nn.Linear(2, 1, bias=False)
    >>> net.weight.data = torch.tensor([[-2.0, 1.0]])
    >>> synflow_l2_scores(net, {"weight": net}, {"weight": net.weight},
    ...                   input_shape=(2,))["weight"].tolist()  # theta**2
    [[4.0, 1.0]]
    """
    return synflow_scores(model, layers, weights, input_shape=input_shape, power=2,
                          precision=precision, dtype=dtype)
