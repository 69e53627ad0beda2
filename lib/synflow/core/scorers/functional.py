"""Running a model for scoring without touching it, and the gradients every score is
made of (the guards on a pass: :mod:`synflow.core.scorers.guards`).

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

from .guards import check_gradients_on, check_layers_called, gradients
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
    running statistics are never updated.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout()).train()
    >>> with scoring_view(model, bn_mode="train"):
    ...     [m.training for m in model]
    [False, True, False]
    >>> model.training
    True
    """
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
    except ValueError as error:  # torch's, from a batch of one sample: say which option
        if bn_mode == "train" and "more than 1 value per channel" in str(error):
            raise ValueError(f"bn_mode='train' normalises each batch by its own statistics, "
                             f"which a batch of one sample does not have ({error}): give "
                             "batches of at least 2 samples, or bn_mode='eval'") from error
        raise
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
    ``torch.inference_mode()`` (scores are derivatives; the model is never changed).

    >>> with torch.no_grad(), differentiable():
    ...     torch.ones(1, requires_grad=True).mul(2).requires_grad
    True
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def all_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter, detached, keyed by its name in the unpruned model: a masked
    layer's ``x.weight_orig`` is given as ``"x.weight"`` holding ``weight_orig *
    weight_mask`` (the weight it computes with).

    >>> from synflow.core.masked import install
    >>> layer = nn.Linear(2, 1, bias=False)
    >>> install({"weight": layer}, {"weight": torch.tensor([[True, False]])})
    >>> {name: tuple(w.shape) for name, w in all_parameters(layer).items()}
    {'weight': (1, 2)}
    >>> (all_parameters(layer)["weight"] == 0).tolist()  # weight_orig * weight_mask
    [[False, True]]
    """
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
    to score, and a mask there would hold no values either).

    >>> check_materialized({"fc.weight": torch.ones(2)})
    >>> check_materialized({"fc.weight": torch.empty(2, device="meta")})
    Traceback (most recent call last):
    ValueError: the weights ['fc.weight'] are on the meta device: ...
    """
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
    torch fails on the input's shape or on mixed dtypes (:func:`explained_errors`).

    >>> model = nn.Linear(2, 1)
    >>> out = call_with_weights(model, {"weight": model}, {"weight": torch.ones(1, 2)},
    ...                         torch.ones(1, 2), parameter=torch.zeros_like)  # bias -> 0
    >>> out.tolist(), model.weight.shape  # the model keeps its own parameters
    ([[2.0]], torch.Size([1, 2]))
    """
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
    except TypeError as error:  # the model's own forward takes other arguments
        if not str(error).startswith(f"{type(model).forward.__qualname__}() "):
            raise  # from inside the forward: the model's own fault
        raise ValueError(f"scoring calls model(inputs) with one batch of inputs, and this "
                         f"model's forward takes other arguments ({error}): wrap it in a "
                         "module whose forward(x) calls it as it needs") from error
    finally:
        for handle in handles:
            handle.remove()
    check_gradients_on(layers, without_grad)
    check_layers_called(model, layers, called)
    return check_logits(model, output)


def fresh_leaves(weights, transform=None, dtype=None):
    """Fresh autograd leaves holding ``transform(w)`` for every weight (detached from it),
    in ``dtype`` if given.

    >>> w = torch.tensor([-1.0, 2.0])
    >>> leaf = fresh_leaves({"w": w}, torch.abs, torch.float64)["w"]
    >>> leaf.tolist(), leaf.dtype, leaf.requires_grad, leaf.is_leaf
    ([1.0, 2.0], torch.float64, True, True)
    """
    leaves = {}
    with torch.inference_mode(False):
        for name, weight in weights.items():
            weight = weight.detach().to(dtype) if dtype else weight.detach()
            weight = weight.clone() if weight.is_inference() else weight  # made in inference_mode
            leaves[name] = (transform(weight) if transform else weight).requires_grad_(True)
    return leaves


def masked(leaves: dict[str, torch.Tensor], alive: dict[str, torch.Tensor] | None):
    """``leaf * alive`` inside the graph for the leaves ``alive`` names (pruned weights
    are then no parameters of the net: zero gradient, no share in a Hessian).

    >>> leaf = torch.ones(2, requires_grad=True)
    >>> masked({"w": leaf}, {"w": torch.tensor([True, False])})["w"].tolist()
    [1.0, 0.0]
    >>> masked({"w": leaf}, None)["w"] is leaf
    True
    """
    if alive is None:
        return leaves
    return {name: leaf * alive[name].to(leaf.dtype) if name in alive else leaf
            for name, leaf in leaves.items()}


def summed_gradient(model, layers, leaves, batches: Iterable[tuple], objective, *,
                    dtype=None, alive=None, source: str = "data"):
    """``(R, dR/dleaves)``: R = sum over ``batches`` ``(x, *rest)`` of
    ``objective(model(x), *rest)``, the model running with ``leaves`` (masked by
    ``alive``) in ``dtype``; R a detached 0-d tensor, gradients summed batch by batch
    (one batch's graph alive at a time).

    >>> model = nn.Linear(2, 1, bias=False)
    >>> leaves = fresh_leaves({"weight": torch.ones(1, 2)})
    >>> batches = [(torch.ones(1, 2),), (2 * torch.ones(1, 2),)]
    >>> R, grads = summed_gradient(model, {"weight": model}, leaves, batches,
    ...                            lambda logits: logits.sum())
    >>> float(R), grads[0].tolist()  # 2 + 4; d/dw: 1 + 2
    (6.0, [[3.0, 3.0]])
    """
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
    ``functional_call`` that must not touch the model's own buffers).

    >>> copies = buffer_copies(nn.BatchNorm1d(2), torch.float64)
    >>> copies["running_var"].dtype, copies["num_batches_tracked"].dtype
    (torch.float64, torch.int64)
    """
    return {name: b.detach().to(dtype).clone() if b.is_floating_point() else b.clone()
            for name, b in model.named_buffers()}
