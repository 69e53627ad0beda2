"""Masks on any nn.Module, with torch.nn.utils.prune's parameter names.

A masked layer holds its dense parameter as ``weight_orig`` and a 0/1 buffer
``weight_mask`` (in the weight's dtype), the state-dict layout of
``torch.nn.utils.prune``. Its ``weight`` is a read-only property computed on every
access as ``weight_orig * weight_mask`` (the layer's class is swapped for a
``Masked<Class>`` subclass, still an instance of the original class). So:

* the mask multiplies the weight inside the graph: pruned weights get a zero
  gradient and stay exactly zero through any optimizer (momentum and weight decay
  included); ``weight_orig`` is also zeroed where the mask is 0;
* ``weight`` is never stale: right after an optimizer step, ``load_state_dict``,
  ``.to(...)`` or ``.half()`` it already shows the new values, and a module that
  reads a submodule's ``.weight`` without calling it (``nn.MultiheadAttention``'s
  ``out_proj``) reads the masked weight;
* nothing holding a graph is stored on the module, so a pruned model deep-copies
  and pickles at any point (torch.nn.utils.prune's hook leaves a non-leaf tensor
  on the module after a forward pass with gradients, which ``copy.deepcopy``
  refuses).

Masks are exchanged as ``dict[str, BoolTensor]`` keyed by the weight's name in
the *unpruned* model's ``named_parameters()`` (e.g. ``"features.0.weight"``).
``nn.DataParallel`` and ``DistributedDataParallel`` wrappers are unwrapped by every
function here (names are those of the wrapped module, without ``module.``).
Saving and loading: :func:`save_pruned` / :func:`load_pruned` (in :mod:`synflow.core.saving`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# torch.nn modules whose forward reads a descendant layer's ``.weight`` directly instead
# of calling that layer: MultiheadAttention reads ``out_proj.weight`` (also inside
# nn.Transformer* layers). That read gets the masked weight (``weight`` is a property),
# so such layers are pruned and trained correctly; the check for prunable layers that
# the forward never calls exempts them (see :func:`inside_reader`).
READS_CHILD_WEIGHTS = (nn.MultiheadAttention,)

Masks = dict[str, torch.Tensor]

WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``nn.DataParallel`` / ``DistributedDataParallel`` wrappers
    (any depth), else ``model`` itself. Pruning the wrapped module prunes what the
    wrapper runs: the wrapper holds no parameters of its own."""
    while isinstance(model, WRAPPERS):
        model = model.module
    return model


class _MaskedWeight:
    """Mixin of every masked layer class: ``weight`` is ``weight_orig * weight_mask``."""

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_orig * self.weight_mask

    def __reduce_ex__(self, protocol):
        # the class is made at run time: pickle and deepcopy rebuild it from the base class
        return _rebuild_masked, (type(self).__bases__[1],), self.__getstate__()


_MASKED_CLASSES: dict[type, type] = {}


def _masked_class(base: type) -> type:
    """``Masked<base>``, a subclass of ``base`` whose ``weight`` is the masked weight."""
    if base not in _MASKED_CLASSES:
        _MASKED_CLASSES[base] = type(f"Masked{base.__name__}", (_MaskedWeight, base), {})
    return _MASKED_CLASSES[base]


def _rebuild_masked(base: type) -> nn.Module:
    cls = _masked_class(base)
    return cls.__new__(cls)


def _install_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Turn ``module.weight`` into ``weight_orig`` and a ``weight_mask`` buffer (or adopt
    torch.nn.utils.prune's masking of it), and swap in the masked class."""
    if isinstance(module, _MaskedWeight):
        return
    if is_masked(module):  # masked by torch.nn.utils.prune: drop its hook and cached weight
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, torch_prune.BasePruningMethod) and hook._tensor_name == "weight":
                del module._forward_pre_hooks[key]
        module.__dict__.pop("weight", None)
    else:
        weight = module._parameters.pop("weight")
        module.register_parameter("weight_orig", weight)
        module.register_buffer(
            "weight_mask", mask.to(device=weight.device, dtype=weight.dtype).detach().clone()
        )
    module.__class__ = _masked_class(type(module))


def _remove_mask(module: nn.Module) -> None:
    """Undo :func:`_install_mask`: a plain ``weight`` parameter holding the masked values."""
    if not isinstance(module, _MaskedWeight):
        torch_prune.remove(module, "weight")
        return
    with torch.no_grad():
        weight = nn.Parameter(module.weight_orig * module.weight_mask,
                              requires_grad=module.weight_orig.requires_grad)
    del module._parameters["weight_orig"]
    del module._buffers["weight_mask"]
    module.__class__ = type(module).__bases__[1]
    module.register_parameter("weight", weight)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose ``.weight`` is pruned, keyed ``"<module path>.weight"``.

    These are every Conv and Linear layer, the classifier included; biases and
    normalisation layers are never pruned. A wrapper (``nn.DataParallel``, DDP) is
    unwrapped first.

    Raises:
        ValueError: if the model has none, or holds TorchScript modules (named).
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


def check_model(model: nn.Module, layers: dict[str, nn.Module] | None = None) -> None:
    """Refuse, by name and with the reason, prunable layers a mask cannot govern.

    * a weight shared with another module (tied weights): one tensor would get two
      masks, or a mask the other module ignores, and would count twice in N;
    * a weight computed by a parametrization (``torch.nn.utils.parametrize``,
      ``parametrizations.weight_norm``/``orthogonal``/``spectral_norm``) or by a
      pre-hook (the older ``torch.nn.utils.weight_norm``/``spectral_norm``): the
      computed weight would overwrite or bypass the mask.

    Raises ValueError naming every such layer. (Modules that read a child's weight
    directly, such as ``nn.MultiheadAttention``, are handled by :func:`apply_masks`;
    a custom module doing ``F.linear(x, child.weight)`` is caught when a score's
    forward pass never uses that weight.)
    """
    layers = prunable_layers(model) if layers is None else layers
    owners: dict[int, set[int]] = {}
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None:
                owners.setdefault(id(p), set()).add(id(module))
    problems = []
    for name, module in layers.items():
        if parametrize.is_parametrized(module, "weight"):
            problems.append(f"{name} ({type(module).__name__}) is computed by a parametrization "
                            "(e.g. weight_norm, spectral_norm, orthogonal), which would bypass "
                            "the mask; remove it (parametrize.remove_parametrizations) first")
            continue
        weight = module._parameters.get("weight_orig" if is_masked(module) else "weight")
        if weight is None:
            problems.append(f"{name} ({type(module).__name__}) is not a parameter but computed "
                            "by a hook (e.g. torch.nn.utils.weight_norm or spectral_norm), "
                            "which would overwrite the mask; remove the hook first")
        elif len(owners.get(id(weight), ())) > 1:
            problems.append(f"{name} is shared with another module (tied weights): one tensor "
                            "cannot take one mask per module, and it would count twice in N; "
                            "untie the weights first")
    if problems:
        raise ValueError("cannot prune this model: " + "; ".join(problems))


def is_masked(module: nn.Module) -> bool:
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with (masked if it is masked), detached."""
    if is_masked(module):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def current_masks(model: nn.Module) -> Masks:
    """The boolean mask of every prunable weight (all True where none is set)."""
    return {
        name: module.weight_mask.detach().bool().clone()
        if is_masked(module)
        else torch.ones_like(module.weight, dtype=torch.bool)
        for name, module in prunable_layers(model).items()
    }


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Install (or update) the masks on ``model`` in place.

    Keys must name prunable weights; shapes must match. Layers not named keep
    their current mask.
    """
    layers = prunable_layers(model)
    check_model(model, layers)
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise KeyError(f"no prunable weight named {unknown}; prunable: {sorted(layers)}")
    for name, mask in masks.items():
        module = layers[name]
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(
                f"mask for {name} has shape {tuple(mask.shape)}, weight has {tuple(module.weight.shape)}"
            )
        if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask for {name} must be boolean or 0/1, got dtype {mask.dtype} "
                             "with other values")
        with torch.no_grad():
            _install_mask(module, mask)
            module.weight_mask.copy_(mask)
            module.weight_orig.mul_(module.weight_mask)


def inside_reader(model: nn.Module, name: str) -> bool:
    """Whether the weight ``name`` sits inside a ``READS_CHILD_WEIGHTS`` module."""
    parts = name.split(".")[:-2]  # the layer's ancestors' paths
    return any(
        isinstance(model.get_submodule(".".join(parts[:i])), READS_CHILD_WEIGHTS)
        for i in range(len(parts) + 1)
    )


def remove_masks(model: nn.Module) -> None:
    """Make the pruning permanent, for export (like ``torch.nn.utils.prune.remove``).

    Every masked layer gets back a plain ``weight`` parameter holding
    ``weight_orig * weight_mask`` (pruned entries exactly 0) and its original class;
    ``weight_orig`` and ``weight_mask`` are gone, so the state dict has the unpruned
    model's keys and loads into a fresh model of the same architecture. The zeros are
    no longer enforced: further training can make them non-zero.
    """
    for module in prunable_layers(model).values():
        if is_masked(module):
            _remove_mask(module)


def count_kept(masks: Masks) -> dict[str, tuple[int, int]]:
    """``{name: (kept, total)}`` for every layer."""
    return {name: (int(mask.sum()), mask.numel()) for name, mask in masks.items()}


def empty_layers(masks: Masks) -> list[str]:
    """Names of the layers whose every weight is pruned (layer-collapse)."""
    return [name for name, mask in masks.items() if not bool(mask.any())]


def compression_of(masks: Masks) -> float:
    """Prunable weights in total / prunable weights kept (inf if none is kept)."""
    total = sum(mask.numel() for mask in masks.values())
    kept = sum(int(mask.sum()) for mask in masks.values())
    return total / kept if kept else float("inf")


def shuffle_masks(masks: Masks, seed: int = 0) -> Masks:
    """Randomly permute the entries of each layer's mask (same density per layer).

    The sanity check of Frankle et al. (2021): a layer-wise shuffled mask keeps
    every layer's kept count but none of the positions.
    """
    generator = torch.Generator().manual_seed(seed)
    shuffled = {}
    for name, mask in masks.items():
        flat = mask.flatten().cpu()
        permutation = torch.randperm(flat.numel(), generator=generator)
        shuffled[name] = flat[permutation].reshape(mask.shape).to(mask.device)
    return shuffled

