"""The data-based scores: SNIP (Lee et al. 2019) and GraSP (Wang et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import (
    batches_of,
    call_with_weights,
    fresh_leaves,
    gradient_dtype,
    gradients,
    scoring_view,
)

GRASP_TEMPERATURE = 200.0  # the default of grasp_scores' temperature (authors' code)


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
