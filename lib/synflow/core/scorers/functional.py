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

from ..masks import inside_reader, is_masked

BN_MODES = ("eval", "train")


def check_bn_mode(bn_mode) -> str:
    """``bn_mode`` if it is one of ``BN_MODES``, else ValueError naming it and them."""
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
    spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[len(module.kernel_size)]
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
        sample = tuple(inputs.shape[1:])
        hint = ""
        if len(sample) == 3 and sample[-1] in (1, 3, 4) and sample[0] > sample[-1]:
            hint = f" {sample} looks channels-last (H, W, C): try {(sample[-1], *sample[:-1])}."
        raise InputShapeError(
            f"the model cannot take inputs of shape {sample} (one sample, from input_shape or "
            f"data): {expected_input(layers)}.{hint} torch said: {error}"
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
    # a module in train mode (BatchNorm under scoring_view(bn_mode="train")) updates its
    # running statistics in place: it gets copies, the model's buffers stay untouched
    copy = any(m.training for m in model.modules())
    for name, buffer in model.named_buffers():
        cast = dtype is not None and buffer.is_floating_point()
        buffer = buffer.to(dtype) if cast else buffer
        tensors[name] = buffer.clone() if copy else buffer
    called: set[int] = set()
    handles = [
        m.register_forward_pre_hook(lambda module, args: called.add(id(module)))
        for m in layers.values()
    ]
    try:
        with explained_shape_errors(layers, inputs):
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


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter (None if it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def buffer_copies(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Detached copies of every buffer, the floating ones cast to ``dtype`` (for a
    ``functional_call`` that must not touch the model's own buffers)."""
    return {name: b.detach().to(dtype).clone() if b.is_floating_point() else b.clone()
            for name, b in model.named_buffers()}


LOW_PRECISION = (torch.float16, torch.bfloat16)


def gradient_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype the data-based scores (SNIP, GraSP) are computed in, ``None`` for the
    model's own: float32 for a float16 or bfloat16 model (their gradients, sums and
    Hessian-vector products under- and overflow), else the model's dtype."""
    return torch.float32 if model_dtype(model) in LOW_PRECISION else None


def batches_of(model, data: Iterable, dtype=None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The batches on the model's device, floating inputs in ``dtype`` (else the model's).

    Raises ValueError if ``data`` gives no batch."""
    device = device_of(model)
    dtype = dtype or model_dtype(model)
    count = 0
    for inputs, targets in data:
        count += 1
        cast = dtype if inputs.is_floating_point() else None
        yield inputs.to(device=device, dtype=cast), targets.to(device)
    if count == 0:
        raise ValueError("data gave no batches")
