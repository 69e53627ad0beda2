"""Which weights of a model are prunable, and the models and masks pruning refuses
(the rules and the reasons: the table in :mod:`synflow.core.masks`, which re-exports
every name here)."""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn.utils import parametrize

from .checks import is_binary
from .masked import is_masked

PRUNABLE_TYPES = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.ConvTranspose3d, nn.Linear,
)
# torch.nn modules whose forward reads a descendant layer's ``.weight`` directly instead
# of calling that layer: MultiheadAttention reads ``out_proj.weight`` (also inside
# nn.Transformer* layers). That read gets the masked weight (``weight`` is a property),
# so such layers are pruned and trained correctly; the check for prunable layers that
# the forward never calls exempts them (see :func:`inside_reader`).
READS_CHILD_WEIGHTS = (nn.MultiheadAttention,)

Masks = dict[str, torch.Tensor]

WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def _compiled(model: nn.Module) -> bool:
    """Whether ``model`` is torch.compile's wrapper (looked up only once dynamo is loaded,
    which every compiled model has done)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    optimized = getattr(eval_frame, "OptimizedModule", None)
    return optimized is not None and isinstance(model, optimized)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``nn.DataParallel`` / ``DistributedDataParallel`` wrappers and
    ``torch.compile``'s ``OptimizedModule`` (any depth), else ``model`` itself. Pruning
    the wrapped module prunes what the wrapper runs: the wrapper holds no parameters of
    its own.

    Raises ValueError naming the type when ``model`` is not an ``nn.Module``.

    >>> inner = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(nn.DataParallel(inner))) is inner
    True
    """
    if not isinstance(model, nn.Module):
        raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
            f"model must be a torch.nn.Module, got {type(model).__name__}")
    while isinstance(model, WRAPPERS) or _compiled(model):
        model = model.module if isinstance(model, WRAPPERS) else model._orig_mod
    return model


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose ``.weight`` is pruned, keyed ``"<module path>.weight"``.

    These are every Conv, ConvTranspose and Linear layer, the classifier included;
    biases and normalisation layers are never pruned (see the table above). A wrapper
    (``nn.DataParallel``, DDP, ``torch.compile``) is unwrapped first; a module reachable
    under two names is listed once, under its first name.

    Raises:
        ValueError: if the model has none, or holds TorchScript modules (named).

    >>> from torch import nn
    >>> list(prunable_layers(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))))
    ['0.weight', '2.weight']
    """
    model = unwrap(model)
    scripted: list[str] = []  # the outermost TorchScript modules
    for name, m in model.named_modules():
        inside = any(not s or name.startswith(s + ".") for s in scripted)
        if isinstance(m, torch.jit.ScriptModule) and not inside:
            scripted.append(name)
    if scripted:
        names = ", ".join(name or type(model).__name__ for name in scripted)
        raise ValueError(
            f"cannot prune TorchScript modules ({names}, from torch.jit.script or "
            "torch.jit.trace): their layers are compiled code, not nn.Linear/nn.Conv modules, "
            "so no mask can be installed in them or scored. Prune the eager model, then script "
            "it (after remove_masks, to make the pruning permanent)"
        )
    layers = {
        f"{path}.weight" if path else "weight": module
        for path, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES)
    }
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no prunable layers; pruning needs at least one of "
            f"{', '.join(t.__name__ for t in PRUNABLE_TYPES)}"
        )
    return layers


def _weight_of(module: nn.Module):
    """The Parameter a layer's mask governs (``weight_orig`` once masked), or None."""
    return module._parameters.get("weight_orig" if is_masked(module) else "weight")


def _problem(name: str, module: nn.Module, owners: dict[int, set[int]]) -> str | None:
    """Why a mask cannot govern the layer ``name``, or None."""
    kind = type(module).__name__
    if parametrize.is_parametrized(module, "weight"):
        return (f"{name} ({kind}) is computed by a parametrization (e.g. weight_norm, "
                "spectral_norm, orthogonal), which would bypass the mask; remove it "
                "(parametrize.remove_parametrizations) first")
    weight = _weight_of(module)
    if weight is None:
        return (f"{name} ({kind}) is not a parameter but computed by a hook (e.g. "
                "torch.nn.utils.weight_norm or spectral_norm), which would overwrite the "
                "mask; remove the hook first")
    if len(owners.get(id(weight), ())) > 1:
        return (f"{name} is shared with another module (tied weights): one tensor cannot "
                "take one mask per module, and it would count twice in N; untie the weights "
                "first")
    if isinstance(weight, nn.parameter.UninitializedParameter):
        return (f"{name} ({kind}) is an uninitialised lazy parameter: run one forward pass "
                "(or build the layer with its sizes) first")
    if weight.is_meta:
        return (f"{name} is on the meta device (no values to score): materialise the model "
                "first (model.to_empty(device=...) and initialise it, or load its weights)")
    if weight.is_inference():
        return (f"{name} is an inference tensor (the model was built under "
                "torch.inference_mode()), which can never be trained: build it outside "
                "inference mode")
    return None


def check_model(model: nn.Module, layers: dict[str, nn.Module] | None = None) -> None:
    """Refuse, by name and with the reason, prunable layers a mask cannot govern (see
    the table above): tied weights, weights computed by a parametrization or a hook,
    uninitialised (lazy) or meta-device weights, inference tensors.

    Raises ValueError naming every such layer. (Modules that read a child's weight
    directly, such as ``nn.MultiheadAttention``, are handled by :func:`apply_masks`;
    a custom module doing ``F.linear(x, child.weight)`` is caught when a score's
    forward pass never uses that weight.)

    >>> check_model(nn.Sequential(nn.Linear(2, 2)))  # nothing to refuse
    >>> tied = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    >>> tied[1].weight = tied[0].weight
    >>> check_model(tied)
    Traceback (most recent call last):
    ValueError: cannot prune this model: 0.weight is shared with another module (tied weights): ...
    """
    model = unwrap(model)
    layers = prunable_layers(model) if layers is None else layers
    owners: dict[int, set[int]] = {}
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None:
                owners.setdefault(id(p), set()).add(id(module))
    problems = [p for name, m in layers.items() if (p := _problem(name, m, owners))]
    if problems:
        raise ValueError("cannot prune this model: " + "; ".join(problems))


def weight_count(layers: dict[str, nn.Module]) -> int:
    """N, the number of weights of ``layers`` (as :func:`prunable_layers` returns them),
    pruned ones included.

    >>> weight_count(prunable_layers(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))))
    18
    """
    return sum(_weight_of(module).numel() for module in layers.values())


def dense_weights(model: nn.Module, layers: dict[str, nn.Module] | None = None) -> dict[str, int]:
    """``{name: size}`` of the parameters of rank >= 2 that no mask governs (left dense:
    RNN and LSTM weights, embeddings, MultiheadAttention's ``in_proj_weight``, ...; see
    the table above), in ``named_parameters()`` order.

    >>> dense_weights(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)))
    {'0.weight': 40}
    """
    model = unwrap(model)
    layers = prunable_layers(model) if layers is None else layers
    governed = {id(_weight_of(module)) for module in layers.values()}
    return {name: p.numel() for name, p in model.named_parameters()
            if p.dim() >= 2 and id(p) not in governed}


def check_masks(layers: dict[str, nn.Module], masks: Masks) -> None:
    """Refuse masks that do not fit ``layers``, before anything changes: a key that names
    no prunable weight (KeyError), a shape other than the weight's, values other than
    0/1 (ValueError).

    >>> layers = prunable_layers(nn.Sequential(nn.Linear(3, 2)))
    >>> check_masks(layers, {"0.weight": torch.ones(2, 3)})  # 0/1 floats fit
    >>> check_masks(layers, {"0.weight": torch.ones(3, 2)})
    Traceback (most recent call last):
    ValueError: mask for 0.weight has shape (3, 2), weight has (2, 3)
    """
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise KeyError(f"no prunable weight named {unknown}; prunable: {sorted(layers)}")
    for name, mask in masks.items():
        shape = tuple(_weight_of(layers[name]).shape)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask for {name} has shape {got}, weight has {shape}")
        if not is_binary(mask):
            raise ValueError(f"mask for {name} must be boolean or 0/1, got dtype {mask.dtype} "
                             "with other values")


def inside_reader(model: nn.Module, name: str) -> bool:
    """Whether the weight ``name`` sits inside a ``READS_CHILD_WEIGHTS`` module (whose
    forward reads it without calling its layer).

    >>> model = nn.Sequential(nn.MultiheadAttention(4, 1), nn.Linear(4, 2))
    >>> inside_reader(model, "0.out_proj.weight"), inside_reader(model, "1.weight")
    (True, False)
    """
    parts = name.split(".")[:-2]  # the layer's ancestors' paths
    return any(
        isinstance(model.get_submodule(".".join(parts[:i])), READS_CHILD_WEIGHTS)
        for i in range(len(parts) + 1)
    )
