"""Running a model for scoring without touching it, and the gradients every score is
made of.

Scorers never touch the live model's state: the forward passes run through
``torch.func.functional_call`` on detached copies of the parameters, so the
model's weights, buffers, ``.grad`` fields and train/eval flags are the same
afterwards, even when scoring raises (see :func:`scoring_view`). Every prunable
layer must be called by the forward pass, with gradients enabled
(:func:`call_with_weights`), every weight must reach the output, and no part of
the forward may be recomputed during the backward pass (:func:`gradients`):
otherwise a mask would not apply or the scores would belong to other weights.

A score is taken for any set of named parameters (``weights``: the prunable
weights for pruning, every parameter for the analyses of Figures 3 and 4, see
:func:`all_parameters`), keyed by their names in the unpruned model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.module import register_module_forward_pre_hook

from ..masks import inside_reader
from .inputs import check_logits, embedding_guard, explained_errors

BN_MODES = ("eval", "train")


def check_bn_mode(bn_mode) -> str:
    """``bn_mode`` if it is one of ``BN_MODES``, else ValueError naming it and them.

    >>> check_bn_mode("train")
    'train'
    >>> check_bn_mode("x")
    Traceback (most recent call last):
    ValueError: bn_mode 'x' is not allowed; choose one of: eval, train ...
    """
    if bn_mode not in BN_MODES:
        raise ValueError(
            f"bn_mode {bn_mode!r} is not allowed; choose one of: {', '.join(BN_MODES)} "
            "(eval: BatchNorm with its running statistics, the SynFlow authors' default; "
            "train: with each batch's own statistics, as Wang et al.'s GraSP code)"
        )
    return bn_mode


@contextlib.contextmanager
def scoring_view(model: nn.Module, bn_mode: str = "eval"):
    """Eval mode for the duration (``bn_mode="train"``: BatchNorm layers in train mode,
    i.e. normalised by each batch's statistics; everything else, dropout included, in
    eval mode); every module's mode and cached masked weight restored after. In train
    mode :func:`call_with_weights` hands the forward pass copies of the buffers, so the
    running statistics are never updated."""
    check_bn_mode(bn_mode)
    modes = [(module, module.training) for module in model.modules()]
    # every module's parameter and buffer slots: functional_call leaves its substitute in a
    # module registered under two names (self.features = self.backbone.features); they
    # are put back whatever happens
    slots = [(m, dict(m._parameters), dict(m._buffers)) for m in model.modules()]
    # layers masked by torch.nn.utils.prune's hook cache ``weight`` on the module (ours
    # compute it on access, nothing to restore)
    cached = [(m, m.__dict__["weight"]) for m in model.modules() if "weight" in m.__dict__]
    model.eval()
    if bn_mode == "train":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.training = True
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for module, parameters, buffers in slots:
            module._parameters.update(parameters)
            module._buffers.update(buffers)
        for module, weight in cached:
            module.weight = weight


@contextlib.contextmanager
def differentiable():
    """Gradients on for the duration, also inside ``torch.no_grad()`` or
    ``torch.inference_mode()`` (scores are derivatives; the model is never changed)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def all_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter, detached, keyed by its name in the unpruned model: a masked
    layer's ``x.weight_orig`` is given as ``"x.weight"`` holding ``weight_orig *
    weight_mask`` (the weight it computes with)."""
    found = {}
    for name, p in model.named_parameters():
        module_name, _, kind = name.rpartition(".")
        mask = getattr(model.get_submodule(module_name), kind.removesuffix("_orig") + "_mask", None)
        if kind.endswith("_orig") and isinstance(mask, torch.Tensor):
            found[name.removesuffix("_orig")] = (p * mask).detach()
        else:
            found[name] = p.detach()
    return found


def check_materialized(weights: dict[str, torch.Tensor]) -> None:
    """ValueError naming the weights on the meta device (shapes without values: nothing
    to score, and a mask there would hold no values either)."""
    meta = [name for name, w in weights.items() if w.is_meta]
    if meta:
        raise ValueError(
            f"the weights {meta[:5]}{' ...' if len(meta) > 5 else ''} are on the meta device: "
            "they have shapes but no values, so they cannot be scored or masked. Materialise "
            "the model first (model.to_empty(device='cpu') and initialise it, or load its "
            "weights)"
        )


def call_with_weights(
    model: nn.Module,
    layers: dict[str, nn.Module],
    weights: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    parameter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
    source: str = "data",
) -> torch.Tensor:
    """Run ``model(inputs)`` with the parameters named in ``weights`` (see
    :func:`all_parameters` for the names; values already masked) replaced by them and
    every other parameter by ``parameter(p)`` (a detached copy); floating buffers are
    cast to ``dtype``. Returns the logits tensor.

    Raises ValueError when the model returns no tensor (:func:`check_logits`), a
    prunable layer is not called or is called with gradients off (reentrant activation
    checkpointing), an embedding is fed float values (``source`` names the input), or
    torch fails on the input's shape or on mixed dtypes (:func:`explained_errors`)."""
    own = dict(model.named_parameters())
    # a masked layer computes weight_orig * weight_mask: its weight_orig is replaced by
    # the (already masked) weight, so the product is that weight again
    tensors = {name if name in own else name + "_orig": w for name, w in weights.items()}
    for name, p in own.items():
        if name not in tensors:
            p = p.detach().to(dtype) if dtype else p.detach()
            tensors[name] = parameter(p) if parameter else p
    # a module in train mode (BatchNorm under scoring_view(bn_mode="train")) updates its
    # running statistics in place: it gets copies, the model's buffers stay untouched
    copy = any(m.training for m in model.modules())
    for name, buffer in model.named_buffers():
        cast = dtype is not None and buffer.is_floating_point()
        buffer = buffer.to(dtype) if cast else buffer
        tensors[name] = buffer.clone() if copy else buffer
    called: set[int] = set()
    without_grad: set[int] = set()

    def seen(module, args):
        called.add(id(module))
        if not torch.is_grad_enabled():
            without_grad.add(id(module))

    handles = [m.register_forward_pre_hook(seen) for m in layers.values()]
    try:
        with explained_errors(model, layers, inputs, dtype), embedding_guard(model, source):
            output = functional_call(model, tensors, (inputs,))
    finally:
        for handle in handles:
            handle.remove()
    check_gradients_on(layers, without_grad)
    check_layers_called(model, layers, called)
    return check_logits(model, output)


def check_gradients_on(layers: dict[str, nn.Module], without_grad: set[int]) -> None:
    """ValueError naming the prunable layers the forward ran with gradients off."""
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
    """Raise ValueError naming the prunable layers a forward pass did not call: a mask
    is applied when its layer is called, so a module that reads a layer's weight
    directly (``F.linear(x, child.weight)``) would use the unmasked, untrained weight,
    and a layer outside the forward would be pruned on no information. Layers inside
    a ``READS_CHILD_WEIGHTS`` module (``nn.MultiheadAttention``'s ``out_proj``) are
    masked by :func:`synflow.core.masks.apply_masks` and allowed."""
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
    with torch.inference_mode(False):
        for name, weight in weights.items():
            weight = weight.detach().to(dtype) if dtype else weight.detach()
            weight = weight.clone() if weight.is_inference() else weight  # made in inference_mode
            leaves[name] = (transform(weight) if transform else weight).requires_grad_(True)
    return leaves


@contextlib.contextmanager
def no_recomputation(model: nn.Module):
    """Refuse any module of ``model`` running during the backward pass: activation
    checkpointing (``torch.utils.checkpoint``) recomputes part of the forward there,
    with the model's own parameters instead of the weights being scored."""

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
    depend on (a bias or BatchNorm parameter off the path). A prunable weight (a key of ``layers``) the forward pass never used is an
    error naming it (a module read it without calling its layer, where the mask
    applies, e.g. ``F.linear(x, child.weight)``, or the layer is not in the forward);
    so is a forward recomputed during the backward (:func:`no_recomputation`)."""
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


def masked(leaves: dict[str, torch.Tensor], alive: dict[str, torch.Tensor] | None):
    """``leaf * alive`` inside the graph for the leaves ``alive`` names (pruned weights
    are then no parameters of the net: zero gradient, no share in a Hessian)."""
    if alive is None:
        return leaves
    return {name: leaf * alive[name].to(leaf.dtype) if name in alive else leaf
            for name, leaf in leaves.items()}


def summed_gradient(model, layers, leaves, batches: Iterable[tuple], objective, *,
                    dtype=None, alive=None, source: str = "data"):
    """``(R, dR/dleaves)``: R = sum over ``batches`` ``(x, *rest)`` of
    ``objective(model(x), *rest)``, the model running with ``leaves`` (masked by
    ``alive``) in ``dtype``; R a detached 0-d tensor, gradients summed batch by batch
    (one batch's graph alive at a time)."""
    R = None
    with differentiable():
        totals = [torch.zeros_like(p) for p in leaves.values()]
        for inputs, *rest in batches:
            logits = call_with_weights(model, layers, masked(leaves, alive), inputs,
                                       dtype=dtype, source=source)
            value = objective(logits, *rest)
            for total, g in zip(totals, gradients(model, layers, value, leaves)):
                total += g
            R = torch.zeros_like(value.detach()) if R is None else R
            R += value.detach()
    return R, totals


def buffer_copies(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Detached copies of every buffer, the floating ones cast to ``dtype`` (for a
    ``functional_call`` that must not touch the model's own buffers)."""
    return {name: b.detach().to(dtype).clone() if b.is_floating_point() else b.clone()
            for name, b in model.named_buffers()}
