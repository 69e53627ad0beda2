"""Saving and restoring pruned models (state dicts, masks included).

A pruned model's state dict holds ``<layer>.weight_orig`` and
``<layer>.weight_mask`` in place of ``<layer>.weight`` (see :mod:`synflow.core.masks`),
so plain ``load_state_dict`` into a fresh, unmasked model fails with "Unexpected
key(s)". :func:`load_pruned_state_dict` installs the masks first, then loads;
:func:`save_pruned` / :func:`load_pruned` do the same through a file. Loading checks
the whole state (keys, shapes, kinds of dtype, mask values) before it changes anything:
on any error the model is exactly as it was.

To export a pruned model without masks (plain ``weight`` parameters with the
zeros folded in), call :func:`synflow.remove_masks` and save its ``state_dict()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from .files import atomic_write
from .masks import (
    PRUNABLE_TYPES,
    check_masks,
    check_model,
    install,
    is_masked,
    prunable_layers,
    remove_mask,
    unwrap,
)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DDP, torch.compile


class StateMismatchError(ValueError, RuntimeError):
    """A state dict that does not fit the model (a ValueError; also a RuntimeError, what
    torch's ``load_state_dict`` raises for the same faults).

    >>> load_pruned_state_dict(nn.Linear(3, 2), nn.Linear(2, 2).state_dict())
    Traceback (most recent call last):
    synflow.core.saving.StateMismatchError: the state dict does not fit the model (nothing was
    loaded): weight has shape (2, 2) in the state, (2, 3) in the model
    """


def _strip_wrappers(state: dict) -> dict:
    """``state`` without the key prefixes wrappers add, when every key has one."""
    while state and (prefix := next((p for p in WRAPPER_PREFIXES
                                     if all(k.startswith(p) for k in state)), None)):
        state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def _kind(tensor: torch.Tensor) -> str:
    return "floating" if tensor.is_floating_point() else "complex" if tensor.is_complex() else "integer"


def _expected(model: nn.Module, layers: dict[str, nn.Module], masked: set[int]) -> dict:
    """The state dict the model will have after loading (``{key: tensor}``): the model's
    own, with every prunable layer in ``masked`` (module ids) holding ``weight_orig`` and
    ``weight_mask`` and every other one a plain ``weight``, under each of its names."""
    current = model.state_dict(keep_vars=True)
    by_id = {id(module): module for module in layers.values()}
    paths = {path: module for path, module in model.named_modules(remove_duplicate=False)
             if id(module) in by_id}
    weight_keys = {f"{path}.{leaf}" if path else leaf for path in paths
                   for leaf in ("weight", "weight_orig", "weight_mask")}
    expected = {key: value for key, value in current.items() if key not in weight_keys}
    for path, module in paths.items():
        prefix = f"{path}." if path else ""
        weight = module.weight_orig if is_masked(module) else module.weight
        leaves = ("weight_orig", "weight_mask") if id(module) in masked else ("weight",)
        expected.update({prefix + leaf: weight for leaf in leaves})
    return expected


def _check_state(expected: dict, state: dict) -> None:
    """StateMismatchError naming every missing or unexpected key, shape mismatch and
    floating/integer mix between ``state`` and the ``expected`` state dict."""
    problems = []
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        problems.append(f"missing key(s) {missing}")
    if unexpected:
        problems.append(f"unexpected key(s) {unexpected}")
        if any(key.endswith(("_orig", "_mask")) for key in unexpected):
            problems.append("keys ending in _orig and _mask are torch.nn.utils.prune's masks on "
                            "tensors synflow does not mask: make that pruning permanent "
                            "(torch.nn.utils.prune.remove) before saving")
    for key, value in state.items():
        target = expected.get(key)
        if not (isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor)):
            continue
        if tuple(value.shape) != tuple(target.shape):
            problems.append(f"{key} has shape {tuple(value.shape)} in the state, "
                            f"{tuple(target.shape)} in the model")
        elif not key.endswith("weight_mask") and _kind(value) != _kind(target):
            problems.append(f"{key} is {value.dtype} in the state, {target.dtype} in the "
                            f"model ({_kind(value)} into {_kind(target)})")
    if problems:
        raise StateMismatchError("the state dict does not fit the model (nothing was loaded): "
                                 + "; ".join(problems))


def load_pruned_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` (a pruned or unpruned model's ``state_dict()``) into ``model``.

    Works whether ``model`` is fresh (unmasked) or already masked, with the same
    or other masks: each layer ends with the state's mask (``<layer>.weight_mask``,
    installed as in :func:`synflow.apply_masks`) or, if the state has a plain
    ``<layer>.weight``, unmasked. ``weight`` is right immediately after loading
    (it is computed from ``weight_orig * weight_mask`` on access). Loading is strict.
    Wrappers (``nn.DataParallel``, DDP, ``torch.compile``) are unwrapped, on ``model`` and
    in the key names (a leading ``module.`` or ``_orig_mod.``).

    Everything is checked before anything changes (keys, shapes, floating vs integer
    dtypes, masks of 0/1 values, a model whose layers can take masks): on any error the
    model, its parameters (the same objects) and its masks are exactly as before.

    Returns the (unwrapped) model. Raises :class:`StateMismatchError` (a ValueError and
    RuntimeError) naming every key that does not fit.

    >>> from synflow.core.masks import apply_masks
    >>> pruned = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(pruned, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> fresh = load_pruned_state_dict(nn.Sequential(nn.Linear(3, 2)), pruned.state_dict())
    >>> sorted(fresh.state_dict()), int(fresh[0].weight.count_nonzero())
    (['0.bias', '0.weight_mask', '0.weight_orig'], 4)
    """
    model = unwrap(model)
    state = _strip_wrappers(dict(state))
    layers = prunable_layers(model)
    check_model(model, layers)
    masks, masked, unmask = {}, set(), []
    for name, module in layers.items():
        mask = state.get(name.removesuffix("weight") + "weight_mask")
        if isinstance(mask, torch.Tensor):
            masks[name] = mask
            masked.add(id(module))
        elif is_masked(module):
            unmask.append(module)  # the state has this layer unpruned
    _check_state(_expected(model, layers, masked), state)
    try:
        check_masks(layers, masks)
    except (KeyError, ValueError) as error:
        raise StateMismatchError(f"the state dict's masks do not fit (nothing was loaded): "
                                 f"{error}") from None
    for module in unmask:
        remove_mask(module)
    install(layers, {name: mask.bool() for name, mask in masks.items()})
    model.load_state_dict(state)
    return model


def save_pruned(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` (masks included) to ``path`` with ``torch.save``.

    Atomic: written to a temporary file in the same folder, then renamed, so an
    interrupted save never leaves a half-written file. Returns the path. Wrappers
    (DataParallel, DDP, torch.compile) are unwrapped: the keys are the plain model's.
    Returns ``path`` as a Path. Raises ValueError, writing nothing, for a model in which
    ``torch.nn.utils.prune`` masks a tensor that :func:`load_pruned` cannot mask again (a
    bias, an Embedding's weight).

    >>> import tempfile; from synflow.core.masks import apply_masks
    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> path = save_pruned(model, Path(tempfile.mkdtemp()) / "pruned.pt")
    >>> path.name, sorted(torch.load(path))
    ('pruned.pt', ['0.bias', '0.weight_mask', '0.weight_orig'])
    """
    model = unwrap(model)
    foreign = _torch_pruned(model)
    if foreign:
        tensor = foreign[0].rsplit(".", 1)[-1]
        raise ValueError(
            f"save_pruned cannot save {', '.join(foreign)}: torch.nn.utils.prune masks them "
            "(their _orig and _mask keys), and load_pruned cannot rebuild that (synflow masks "
            "the weights of Linear, Conv and ConvTranspose layers only). Make that pruning "
            f"permanent first, e.g. torch.nn.utils.prune.remove(module, {tensor!r}) (the "
            "pruned entries stay 0, no longer held at 0 in training); nothing was written")
    state = model.state_dict()
    return atomic_write(path, lambda file: torch.save(state, file))


def _torch_pruned(model: nn.Module) -> list[str]:
    """The tensors ``torch.nn.utils.prune`` masks other than prunable layers' weights (a
    bias, an Embedding's weight), named ``<module path>.<tensor>``."""
    return [f"{path}.{hook._tensor_name}" if path else hook._tensor_name
            for path, module in model.named_modules()
            for hook in module._forward_pre_hooks.values()
            if isinstance(hook, torch_prune.BasePruningMethod)
            and not (hook._tensor_name == "weight" and isinstance(module, PRUNABLE_TYPES))]


def load_pruned(
    model: nn.Module, path: str | os.PathLike, map_location: str | torch.device | None = None
) -> nn.Module:
    """Restore a model written by :func:`save_pruned` into ``model`` (fresh or masked);
    see :func:`load_pruned_state_dict`. Only tensors are read (``weights_only=True``).

    Raises FileNotFoundError for a missing file, ValueError naming the file when it is
    not a readable state dict (truncated, not written by ``torch.save``), and
    :class:`StateMismatchError` when it does not fit ``model``; the model is then
    unchanged.

    >>> import tempfile; from synflow.core.masks import apply_masks
    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> path = save_pruned(model, Path(tempfile.mkdtemp()) / "pruned.pt")
    >>> loaded = load_pruned(nn.Sequential(nn.Linear(3, 2)), path)
    >>> torch.equal(loaded[0].weight, model[0].weight), int(loaded[0].weight_mask.sum())
    (True, 4)
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as error:  # any other failure: the bytes are not a saved state dict
        # (the unpickler raises RuntimeError, UnpicklingError, EOFError with no message,
        # even KeyError on a few bytes of text)
        raise ValueError(f"cannot read a saved model from {path}: {type(error).__name__}"
                         f"{': ' + str(error) if str(error) else ''} (not a file written by "
                         "save_pruned, or damaged)") from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")  # noqa: TRY004
    return load_pruned_state_dict(model, state)


__all__ = ["StateMismatchError", "load_pruned", "load_pruned_state_dict", "save_pruned"]
