"""One masked layer: its ``weight`` becomes ``weight_orig * weight_mask`` (which layers
are masked: :mod:`synflow.core.masks`).

A masked layer holds its dense parameter as ``weight_orig`` and a 0/1 buffer
``weight_mask`` (in the weight's dtype), the state-dict layout of
``torch.nn.utils.prune``. Its ``weight`` is a read-only property computed on every
access as ``weight_orig * weight_mask`` (the layer's class is swapped for a
``Masked<Class>`` subclass, still an instance of the original class). So:

* the mask multiplies the weight inside the graph: pruned weights get a zero
  gradient and stay exactly zero through any optimizer (momentum and weight decay
  included); ``weight_orig`` is also zeroed where the mask is 0, and it is the very
  ``nn.Parameter`` the layer had as ``weight`` (an optimizer built before pruning keeps
  training it; :func:`remove_mask` makes it ``weight`` again);
* ``weight`` is never stale: right after an optimizer step, ``load_state_dict``,
  ``.to(...)`` or ``.half()`` it already shows the new values, and a module that
  reads a submodule's ``.weight`` without calling it (``nn.MultiheadAttention``'s
  ``out_proj``) reads the masked weight;
* nothing holding a graph is stored on the module, so a pruned model deep-copies
  and pickles at any point (torch.nn.utils.prune's hook leaves a non-leaf tensor
  on the module after a forward pass with gradients, which ``copy.deepcopy``
  refuses).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune


def is_masked(module: nn.Module) -> bool:
    """Whether ``module`` carries a mask (``weight_orig`` and ``weight_mask``, ours or
    ``torch.nn.utils.prune``'s).

    >>> layer = nn.Linear(2, 2)
    >>> is_masked(layer), is_masked(torch_prune.identity(layer, "weight"))
    (False, True)
    """
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


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
    """Turn ``module.weight`` into ``weight_orig`` (the same Parameter object) and a
    ``weight_mask`` buffer (or adopt torch.nn.utils.prune's masking of it), and swap in
    the masked class."""
    if isinstance(module, _MaskedWeight):
        return
    if is_masked(module):  # masked by torch.nn.utils.prune: drop its hook and cached weight
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, torch_prune.BasePruningMethod) and hook._tensor_name == "weight":
                del module._forward_pre_hooks[key]
        module.__dict__.pop("weight", None)
    else:
        # where weight stood among the parameters: remove_mask puts it back there
        module._synflow_weight_position = list(module._parameters).index("weight")
        weight = module._parameters.pop("weight")
        module.register_parameter("weight_orig", weight)
        module.register_buffer(
            "weight_mask", mask.to(device=weight.device, dtype=weight.dtype).detach().clone()
        )
    module.__class__ = _masked_class(type(module))


def remove_mask(module: nn.Module) -> None:
    """Undo :func:`_install_mask`: ``weight_orig``, the same Parameter object (an
    optimizer holding it keeps training it), becomes ``weight`` again with the masked
    values (as ``torch.nn.utils.prune.remove`` does), at its place among the parameters
    before masking (``torch.nn.utils.prune.remove`` appends it: ``bias`` came first). A
    layer that ``torch.nn.utils.prune`` masked first keeps torch's order: its place
    before that is not known.

    >>> layer = nn.Linear(2, 2)
    >>> install({"weight": layer}, {"weight": torch.tensor([[True, False], [True, True]])})
    >>> remove_mask(layer)
    >>> is_masked(layer), int(layer.weight.count_nonzero()), type(layer).__name__
    (False, 3, 'Linear')
    >>> [name for name, _ in layer.named_parameters()]  # the unmasked layer's order
    ['weight', 'bias']
    """
    if not isinstance(module, _MaskedWeight):
        torch_prune.remove(module, "weight")
        return
    weight = module._parameters.pop("weight_orig")
    mask = module._buffers.pop("weight_mask")
    with torch.no_grad():
        weight.mul_(mask)
    module.__class__ = type(module).__bases__[1]
    module.register_parameter("weight", weight)
    position = module.__dict__.pop("_synflow_weight_position", None)
    if position is not None:  # the order of parameters(), state_dict() and optimizers
        order = list(module._parameters.items())
        order.insert(position, order.pop())
        module._parameters.clear()
        module._parameters.update(order)


@torch.inference_mode(False)  # masks made inside torch.inference_mode() must still train
def install(layers: dict[str, nn.Module], masks: dict[str, torch.Tensor]) -> None:
    """Install checked ``masks`` on ``layers``: the trusting half of
    :func:`synflow.core.masks.apply_masks` (no check of names, shapes or values).

    >>> layer = nn.Linear(2, 2)
    >>> install({"weight": layer}, {"weight": torch.tensor([[True, False], [True, True]])})
    >>> type(layer).__name__, layer.weight_mask.tolist()
    ('MaskedLinear', [[1.0, 0.0], [1.0, 1.0]])
    """
    with torch.no_grad():
        for name, mask in masks.items():
            module = layers[name]
            _install_mask(module, mask)
            module.weight_mask.copy_(mask)
            module.weight_orig.mul_(module.weight_mask)
