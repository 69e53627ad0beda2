"""Masks on any nn.Module, in torch.nn.utils.prune's convention.

A masked layer holds its dense parameter as ``weight_orig`` and a 0/1 buffer
``weight_mask``; a forward pre-hook makes ``weight = weight_orig * weight_mask``.
Because the mask multiplies the weight inside the graph, pruned weights get a
zero gradient and stay exactly zero through any optimizer (momentum and weight
decay included); ``weight_orig`` is also zeroed where the mask is 0, so the
stored parameter tells the same story.

Masks are exchanged as ``dict[str, BoolTensor]`` keyed by the weight's name in
the *unpruned* model's ``named_parameters()`` (e.g. ``"features.0.weight"``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# torch.nn modules whose forward reads a descendant layer's ``.weight`` directly instead
# of calling that layer (where the mask is applied): MultiheadAttention reads
# ``out_proj.weight`` (also inside nn.Transformer* layers). A forward pre-hook on each
# such module recomputes its masked descendants' weights first (see :func:`apply_masks`).
# (TransformerEncoderLayer's inference fast path, which reads linear1/linear2 directly,
# is switched off by torch whenever a submodule has a forward pre-hook, as masks do.)
READS_CHILD_WEIGHTS = (nn.MultiheadAttention,)

Masks = dict[str, torch.Tensor]


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose ``.weight`` is pruned, keyed ``"<module path>.weight"``.

    These are every Conv and Linear layer, the classifier included; biases and
    normalisation layers are never pruned.
    """
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
        with torch.no_grad():
            if not is_masked(module):
                torch_prune.custom_from_mask(module, "weight", mask.to(module.weight.device))
            module.weight_mask.copy_(mask)
            module.weight_orig.mul_(module.weight_mask)
        refresh_weight(module)
    for module in model.modules():
        hooked = _refresh_masked_descendants in module._forward_pre_hooks.values()
        if isinstance(module, READS_CHILD_WEIGHTS) and not hooked and _masked_descendants(module):
            module.register_forward_pre_hook(_refresh_masked_descendants)


def inside_reader(model: nn.Module, name: str) -> bool:
    """Whether the weight ``name`` sits inside a ``READS_CHILD_WEIGHTS`` module."""
    parts = name.split(".")[:-2]  # the layer's ancestors' paths
    return any(
        isinstance(model.get_submodule(".".join(parts[:i])), READS_CHILD_WEIGHTS)
        for i in range(len(parts) + 1)
    )


def _masked_descendants(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if m is not module and is_masked(m)]


def _refresh_masked_descendants(module: nn.Module, args) -> None:
    """Forward pre-hook of a READS_CHILD_WEIGHTS module: ``weight = weight_orig *
    weight_mask`` for its masked descendants, inside the graph (as torch's own pruning
    hook computes it), so that a weight read directly is masked and trains."""
    for child in _masked_descendants(module):
        child.weight = child.weight_orig * child.weight_mask


def refresh_weight(module: nn.Module) -> None:
    """Recompute the cached ``weight = weight_orig * weight_mask`` now rather than at
    the next forward pass; computed without autograd, so the model stays deep-copyable
    (torch.nn.utils.prune's own hook leaves a non-leaf tensor there after a forward pass
    with gradients, and ``copy.deepcopy`` refuses such a model: use ``state_dict`` then)."""
    with torch.no_grad():
        module.weight = module.weight_orig * module.weight_mask


def remove_masks(model: nn.Module) -> None:
    """Make the masks permanent: plain ``weight`` parameters with zeros, no hooks."""
    for module in prunable_layers(model).values():
        if is_masked(module):
            torch_prune.remove(module, "weight")
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if hook is _refresh_masked_descendants:
                del module._forward_pre_hooks[key]


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


def reinitialize_kept(model: nn.Module, seed: int = 0) -> None:
    """Draw new Kaiming-normal values for every prunable weight, keeping the masks."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in prunable_layers(model).values():
            target = module.weight_orig if is_masked(module) else module.weight
            fresh = torch.empty(target.shape, dtype=target.dtype)
            nn.init.kaiming_normal_(fresh, generator=generator)
            target.copy_(fresh.to(target.device))
            if is_masked(module):
                target.mul_(module.weight_mask)
                refresh_weight(module)
