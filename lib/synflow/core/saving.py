"""Saving and restoring pruned models (state dicts, masks included).

A pruned model's state dict holds ``<layer>.weight_orig`` and
``<layer>.weight_mask`` in place of ``<layer>.weight`` (see :mod:`synflow.core.masks`),
so plain ``load_state_dict`` into a fresh, unmasked model fails with "Unexpected
key(s)". :func:`load_pruned_state_dict` installs the masks first, then loads;
:func:`save_pruned` / :func:`load_pruned` do the same through a file.

To export a pruned model without masks (plain ``weight`` parameters with the
zeros folded in), call :func:`synflow.remove_masks` and save its ``state_dict()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write
from .masks import _remove_mask, apply_masks, is_masked, prunable_layers, unwrap


def load_pruned_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` (a pruned or unpruned model's ``state_dict()``) into ``model``.

    Works whether ``model`` is fresh (unmasked) or already masked, with the same
    or other masks: each layer ends with the state's mask (``<layer>.weight_mask``,
    installed as in :func:`synflow.apply_masks`) or, if the state has a plain
    ``<layer>.weight``, unmasked. ``weight`` is right immediately after loading
    (it is computed from ``weight_orig * weight_mask`` on access). Loading is strict.
    Wrappers (``nn.DataParallel``, DDP) are unwrapped, on ``model`` and in the key
    names (a leading ``module.``).

    Returns the (unwrapped) model. Raises ``RuntimeError`` (torch's, listing the
    keys) when the state does not fit the architecture.
    """
    model = unwrap(model)
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    layers = prunable_layers(model)
    masks = {}
    for name, module in layers.items():
        mask = state.get(name.removesuffix("weight") + "weight_mask")
        if mask is not None:
            masks[name] = mask.bool()
        elif name in state and is_masked(module):
            _remove_mask(module)  # the state has this layer unpruned
    apply_masks(model, masks)
    model.load_state_dict(state)
    return model


def save_pruned(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` (masks included) to ``path`` with ``torch.save``.

    Atomic: written to a temporary file in the same folder, then renamed, so an
    interrupted save never leaves a half-written file. Returns the path.
    """
    state = unwrap(model).state_dict()
    return atomic_write(path, lambda file: torch.save(state, file))


def load_pruned(
    model: nn.Module, path: str | os.PathLike, map_location: str | torch.device | None = None
) -> nn.Module:
    """Restore a model written by :func:`save_pruned` into ``model`` (fresh or masked);
    see :func:`load_pruned_state_dict`. Only tensors are read (``weights_only=True``)."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    return load_pruned_state_dict(model, state)


__all__ = ["load_pruned", "load_pruned_state_dict", "save_pruned"]
