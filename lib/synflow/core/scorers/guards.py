"""Guards on a scoring pass: every prunable layer called, with gradients on, every
prunable weight reaching the output, and nothing recomputed during the backward pass
(activation checkpointing). Otherwise a mask would not apply where the layer computes,
or the scores would silently belong to other weights. :func:`gradients` is the one
``torch.autograd.grad`` of every scorer.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

from ..masks import inside_reader


def check_gradients_on(layers: dict[str, nn.Module], without_grad: set[int]) -> None:
    """ValueError naming the prunable layers the forward ran with gradients off
    (``without_grad``: the ``id`` of each module a forward pre-hook saw so).

    >>> layer = nn.Linear(2, 2)
    >>> check_gradients_on({"fc.weight": layer}, set())
    >>> check_gradients_on({"fc.weight": layer}, {id(layer)})
    Traceback (most recent call last):
    ValueError: the forward pass ran the prunable layer(s) ['fc.weight'] with gradients disabled, ...
    """
    names = [name for name, m in layers.items() if id(m) in without_grad]
    if names:
        raise ValueError(
            f"the forward pass ran the prunable layer(s) {names} with gradients disabled, so "
            "their scores (derivatives of the loss or of R) cannot be taken. "
            "torch.utils.checkpoint(..., use_reentrant=True) runs its function under "
            "torch.no_grad() (activation checkpointing), as does a torch.no_grad() block "
            "inside forward: turn activation checkpointing off while pruning (it only saves "
            "memory in training)"
        )


def check_layers_called(model: nn.Module, layers: dict[str, nn.Module], called: set[int]):
    """Raise ValueError naming the prunable layers a forward pass did not call: a layer
    outside the forward would be pruned on no information, and one whose weight another
    module reads (``F.linear(x, child.weight)``) cannot be told from it by the hooks
    that see calls. Layers inside a ``READS_CHILD_WEIGHTS`` module
    (``nn.MultiheadAttention``'s ``out_proj``), known to be read so, are allowed.
    ``called``: the ``id`` of each module a forward pre-hook saw.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    >>> layers = {"0.weight": model[0], "1.weight": model[1]}
    >>> check_layers_called(model, layers, {id(model[0])})
    Traceback (most recent call last):
    ValueError: the forward pass never called the prunable layer(s) ['1.weight']: ...
    """
    missed = [
        name for name, m in layers.items()
        if id(m) not in called and not inside_reader(model, name)
    ]
    if missed:
        raise ValueError(
            f"the forward pass never called the prunable layer(s) {missed}: either a module "
            "reads their weight without calling the layer (e.g. F.linear(x, layer.weight)) "
            "or the layer is not part of the forward, and synflow cannot tell which (an "
            "unused layer would be pruned on no information). Call the layer instead, or "
            "prune a model without the unused layers"
        )


@contextlib.contextmanager
def no_recomputation(model: nn.Module):
    """Refuse any module of ``model`` running during the backward pass: activation
    checkpointing (``torch.utils.checkpoint``) recomputes part of the forward there,
    with the model's own parameters instead of the weights being scored.

    >>> model = nn.Linear(2, 1)
    >>> out = model(torch.ones(1, 2)).sum()
    >>> with no_recomputation(model):
    ...     out.backward()  # no module of the model runs: allowed
    >>> with no_recomputation(model):
    ...     model(torch.ones(1, 2))
    Traceback (most recent call last):
    ValueError: the backward pass re-ran Linear modules of the model: ...
    """

    def refuse(module, args):
        if not any(m is module for m in model.modules()):  # another model's (another thread)
            return
        raise ValueError(
            f"the backward pass re-ran {type(module).__name__} modules of the model: "
            "activation checkpointing (torch.utils.checkpoint) recomputes part of the forward "
            "during the backward pass with the model's own parameters, not the (masked, or "
            "|w|) weights being scored, so the scores would silently be those of other "
            "weights. Turn activation checkpointing off while pruning (it only saves memory "
            "in training)"
        )

    handle = register_module_forward_pre_hook(refuse)  # one global hook: cheap to add
    try:
        yield
    finally:
        handle.remove()


def gradients(model, layers, output: torch.Tensor, leaves: dict[str, torch.Tensor], **kwargs):
    """``torch.autograd.grad(output, leaves)``, zeros for a leaf the output does not
    depend on (a bias or BatchNorm parameter off the path). A prunable weight (a key of
    ``layers``) the forward pass never used is an error naming it (a module read it without calling its layer, where the mask
    applies, e.g. ``F.linear(x, child.weight)``, or the layer is not in the forward);
    so is a forward recomputed during the backward (:func:`no_recomputation`).

    >>> model = nn.Linear(2, 1)
    >>> leaves = {"weight": torch.ones(1, 2, requires_grad=True),
    ...           "bias": torch.zeros(1, requires_grad=True)}
    >>> out = torch.func.functional_call(model, {"weight": leaves["weight"]}, (torch.ones(1, 2),))
    >>> [g.tolist() for g in gradients(model, {"weight": model}, out.sum(), leaves)]
    [[[1.0, 1.0]], [0.0]]
    """
    with no_recomputation(model):
        grads = torch.autograd.grad(output, list(leaves.values()), allow_unused=True, **kwargs)
    unused = [name for name, g in zip(leaves, grads) if g is None and name in layers]
    if unused:
        raise ValueError(
            f"the forward pass never used the prunable weight(s) {unused}: a module reads "
            "them without calling their layer (which is where a mask applies, e.g. "
            "F.linear(x, layer.weight)), or the layer is not part of the forward; a mask "
            "on them would not be applied. Call the layer instead, or wrap the model so "
            "that unused layers are not in it"
        )
    return [torch.zeros_like(p) if g is None else g for p, g in zip(leaves.values(), grads)]
