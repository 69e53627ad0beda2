"""Running a model for scoring without touching it.

Scorers never touch the live model's state: the forward passes run through
``torch.func.functional_call`` on detached copies of the parameters, so the
model's weights, buffers, ``.grad`` fields and train/eval flags are the same
afterwards, even when scoring raises (see :func:`scoring_view`). Every prunable
layer must be called by the forward pass (:func:`check_layers_called`) and every
weight must reach the output (:func:`gradients`): otherwise a mask would not apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call

from .masks import inside_reader, is_masked


@contextlib.contextmanager
def scoring_view(model: nn.Module):
    """Eval mode for the duration; every module's mode and cached masked weight restored after."""
    modes = [(module, module.training) for module in model.modules()]
    cached = [(module, module.weight) for module in model.modules() if is_masked(module)]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for module, weight in cached:
            module.weight = weight


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
    called: set[int] = set()
    handles = [
        m.register_forward_pre_hook(lambda module, args: called.add(id(module)))
        for m in layers.values()
    ]
    try:
        output = functional_call(model, tensors, (inputs,))
    finally:
        for handle in handles:
            handle.remove()
    check_layers_called(model, layers, called)
    return output


def check_layers_called(model: nn.Module, layers: dict[str, nn.Module], called: set[int]):
    """Raise ValueError naming the prunable layers a forward pass did not call: a mask
    is applied when its layer is called, so a module that reads a layer's weight
    directly (``F.linear(x, child.weight)``) would use the unmasked, untrained weight,
    and a layer outside the forward would be pruned on no information. Layers inside
    a ``READS_CHILD_WEIGHTS`` module (``nn.MultiheadAttention``'s ``out_proj``) are
    masked by :func:`synflow.masks.apply_masks` and allowed."""
    missed = [
        name for name, m in layers.items()
        if id(m) not in called and not inside_reader(model, name)
    ]
    if missed:
        raise ValueError(
            f"the forward pass never called the prunable layer(s) {missed}: a module reads "
            "their weight without calling the layer (e.g. F.linear(x, layer.weight)), which "
            "bypasses the mask, or the layer is not part of the forward. Call the layer "
            "instead, or prune a model without the unused layers"
        )


def fresh_leaves(weights, transform=None, dtype=None):
    """Fresh autograd leaves holding ``transform(w)`` for every weight (detached from it)."""
    leaves = {}
    for name, weight in weights.items():
        weight = weight.detach().to(dtype) if dtype else weight.detach()
        leaves[name] = (transform(weight) if transform else weight).requires_grad_(True)
    return leaves


def gradients(output: torch.Tensor, leaves: dict[str, torch.Tensor], **kwargs):
    """``torch.autograd.grad(output, leaves)``; a weight the forward pass never used is
    an error naming it (a module read it without calling its layer, where the mask
    applies, e.g. ``F.linear(x, child.weight)``, or the layer is not in the forward)."""
    grads = torch.autograd.grad(output, list(leaves.values()), allow_unused=True, **kwargs)
    unused = [name for name, g in zip(leaves, grads) if g is None]
    if unused:
        raise ValueError(
            f"the forward pass never used the prunable weight(s) {unused}: a module reads "
            "them without calling their layer (which is where a mask applies, e.g. "
            "F.linear(x, layer.weight)), or the layer is not part of the forward; a mask "
            "on them would not be applied. Call the layer instead, or wrap the model so "
            "that unused layers are not in it"
        )
    return grads


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def batches_of(model, data: Iterable) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    device = device_of(model)
    count = 0
    for inputs, targets in data:
        count += 1
        yield inputs.to(device), targets.to(device)
    if count == 0:
        raise ValueError("data gave no batches")
