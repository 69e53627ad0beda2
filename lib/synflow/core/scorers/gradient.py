"""The data-based scores: SNIP (Lee et al. 2019) and GraSP (Wang et al. 2020), and the
signed loss saliency dL/dw * w they are made of (Tanaka et al. 2020, Section 4).

Each formula is written once, here, for any set of named parameters in any dtype:
the pruning loop scores the prunable weights in the model's dtype,
:mod:`synflow.analysis.saliency` every parameter (biases included) in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .functional import (
    call_with_weights,
    check_materialized,
    differentiable,
    fresh_leaves,
    masked,
    scoring_view,
    summed_gradient,
)
from .guards import gradients
from .inputs import batches_of, gradient_dtype

GRASP_TEMPERATURE = 200.0  # the default of grasp_scores' temperature (authors' code)


def loss_saliencies(model, layers, weights, *, data, dtype=None, bn_mode="eval"):
    """The signed loss saliency dL/dw * w of every tensor in ``weights``, and L.

    L is the mean cross-entropy of each batch of ``data`` ((inputs, int64 targets)
    pairs), summed over batches; the gradient is taken in ``dtype`` (default: the
    model's, float32 for float16/bfloat16 models), with BatchNorm in ``bn_mode``
    ("eval": running statistics; "train": each batch's own, the model's running
    statistics untouched). ``weights``: ``{parameter name: value}`` (the prunable weights,
    or :func:`synflow.core.scorers.functional.all_parameters`). Returns ``(L, {name:
    saliency})``: L a 0-d tensor, saliencies of the weights' shapes, in ``dtype``.
    Raises ValueError naming a malformed batch of ``data``.

    >>> from torch import nn; from synflow.core.masks import prunable_layers
    >>> net = nn.Sequential(nn.Linear(4, 3))
    >>> data = [(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))]
    >>> L, saliencies = loss_saliencies(net, prunable_layers(net), {"0.weight": net[0].weight},
    ...                                 data=data)
    >>> L.shape, saliencies["0.weight"].shape, saliencies["0.weight"].dtype
    (torch.Size([]), torch.Size([3, 4]), torch.float32)
    """
    dtype = dtype or gradient_dtype(model)
    leaves = fresh_leaves(weights, dtype=dtype)
    with scoring_view(model, bn_mode):
        L, gradient = summed_gradient(model, layers, leaves, batches_of(model, data, dtype),
                                      F.cross_entropy, dtype=dtype)
    return L, {name: g.mul_(w.detach()) for (name, w), g in zip(leaves.items(), gradient)}


def snip_scores(model, layers, weights, *, data, bn_mode="eval", dtype=None, **_):
    """SNIP (Lee et al. 2019, eq. 3 unnormalised): |w * sum over batches of dL/dw|.

    The absolute value of :func:`loss_saliencies` (L the mean cross-entropy of each
    batch of ``data``, summed over batches; ``bn_mode``, ``dtype`` as there). Same
    shape and device as the weight; >= 0; pruned weights score 0.

    >>> from torch import nn; from synflow.core.masks import prunable_layers
    >>> net = nn.Sequential(nn.Linear(4, 3))
    >>> data = [(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))]
    >>> layers = prunable_layers(net)
    >>> snip_scores(net, layers, {"0.weight": net[0].weight}, data=data)["0.weight"].shape
    torch.Size([3, 4])
    """
    check_materialized(weights)
    _, saliencies = loss_saliencies(model, layers, weights, data=data, dtype=dtype,
                                    bn_mode=bn_mode)
    return {name: s.abs_() for name, s in saliencies.items()}


def _hessian_gradient(model, layers, leaves, batches, objective, direction, *, dtype=None,
                     alive=None):
    """Sum over ``batches`` of H_b @ ``direction``, H_b the Hessian of batch b's
    ``objective`` w.r.t. ``leaves`` (a double backward pass of <dL_b/dleaves,
    direction>, one batch's graph alive at a time)."""
    with differentiable():
        totals = [torch.zeros_like(p) for p in leaves.values()]
        for inputs, targets in batches:
            logits = call_with_weights(model, layers, masked(leaves, alive), inputs, dtype=dtype)
            grads = gradients(model, layers, objective(logits, targets), leaves,
                              create_graph=True)
            inner = sum((g * fixed).sum() for g, fixed in zip(grads, direction))
            try:
                products = gradients(model, layers, inner, leaves)
            except RuntimeError as error:
                if "not implemented" not in str(error):
                    raise
                raise ValueError(
                    "GraSP needs second derivatives (the Hessian-gradient product of Wang et "
                    "al. 2020, eq. 8), and an operation of this model has none in torch: "
                    f"{error}. Use another method (snip, synflow) for this model"
                ) from error
            for total, hg in zip(totals, products):
                total += hg
    return totals


def grasp_scores(model, layers, weights, *, data, alive=None, bn_mode="eval",
                 temperature=GRASP_TEMPERATURE, dtype=None, **_):
    """GraSP (Wang et al. 2020, eq. 8): S = w * (H g), signed; keep the highest.

    L is the cross-entropy of logits / ``temperature`` (default 200, the authors'
    code since 2020-06-23; 1 = no temperature, their code before), g = dL/dw summed
    over the batches of ``data``, H g from a double backward pass of <g, dL/dw>, with
    g and H over the tensors in ``weights`` (the prunable weights; every parameter for
    :func:`synflow.analysis.saliency.parameter_scores`). Sign convention: as the
    authors' code and Wang et al.'s ranking, the highest w * H g are kept (``select``
    needs no sign flip; ``invert=True`` keeps the lowest). ``bn_mode="eval"``
    (default, the SynFlow authors' figures): BatchNorm with its running statistics;
    ``"train"`` (Wang et al.'s own code): each batch's statistics, the model's
    running statistics untouched. Computed in ``dtype`` (default: the model's, float32
    for float16/bfloat16 models); attention runs torch's math kernel
    (``scaled_dot_product_attention``'s fused CPU and GPU kernels have no second
    derivative). Same shape and device as the weight; pruned weights score 0.

    ``alive`` (the boolean masks, from the pruning loop) multiplies the weights inside
    the graph, as a masked layer does: pruned weights are no parameters of the pruned
    net, so their gradients enter neither g nor H g (as in the authors' masked layers).
    Raises ValueError naming an operation without a second derivative.

    >>> from torch import nn; from synflow.core.masks import prunable_layers
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> data = [(torch.randn(5, 4), torch.tensor([0, 1, 0, 0, 1]))]
    >>> weights = {name: layer.weight for name, layer in prunable_layers(net).items()}
    >>> scores = grasp_scores(net, prunable_layers(net), weights, data=data)
    >>> {name: tuple(score.shape) for name, score in scores.items()}
    {'0.weight': (3, 4), '2.weight': (2, 3)}
    """
    check_materialized(weights)
    dtype = dtype or gradient_dtype(model)
    batches = list(batches_of(model, data, dtype))
    leaves = fresh_leaves(weights, dtype=dtype)

    def loss(logits, targets):
        return F.cross_entropy(logits / temperature, targets)

    with scoring_view(model, bn_mode), sdpa_kernel(SDPBackend.MATH):
        _, gradient = summed_gradient(model, layers, leaves, batches, loss, dtype=dtype,
                                      alive=alive)
        hessian_gradients = _hessian_gradient(model, layers, leaves, batches, loss, gradient,
                                             dtype=dtype, alive=alive)
    return {
        name: hg.mul_(w.detach()) for (name, w), hg in zip(leaves.items(), hessian_gradients)
    }
