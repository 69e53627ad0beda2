"""Counting and permuting mask dicts (``{"<layer>.weight": BoolTensor}``): kept weights,
layer-collapse (and its warning), compression, the layer-wise shuffle of Frankle et al.
(2021)."""

from __future__ import annotations

import warnings

import torch

from .checks import check_seed, is_binary
from .flat_ops import count
from .stack import outside_stacklevel

Masks = dict[str, torch.Tensor]


def count_kept(masks: Masks) -> dict[str, tuple[int, int]]:
    """``{name: (kept, total)}`` for every layer (ints).

    >>> count_kept({"fc.weight": torch.tensor([[True, False], [True, True]])})
    {'fc.weight': (3, 4)}
    """
    _check(masks, "count_kept")
    return {name: (int(mask.sum()), mask.numel()) for name, mask in masks.items()}


def empty_layers(masks: Masks) -> list[str]:
    """Names of the layers whose every weight is pruned (layer-collapse, Section 4 of the
    SynFlow paper), in the masks' order.

    >>> empty_layers({"a.weight": torch.tensor([True, False]), "b.weight": torch.zeros(3, dtype=bool)})
    ['b.weight']
    """
    _check(masks, "empty_layers")
    return [name for name, mask in masks.items() if not count(mask.reshape(-1))]


def _check(masks, function: str) -> None:
    """ValueError naming ``function`` unless ``masks`` is a dict of boolean (or 0/1)
    tensors: a model, or masks of other values, would give a meaningless count."""
    if not isinstance(masks, dict):
        hint = ": for a model's masks, synflow.current_masks(model)" \
            if isinstance(masks, torch.nn.Module) else ""
        raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
            f"{function} takes masks, a dict of boolean tensors by weight name (what prune "
            f"returns), got {type(masks).__name__}{hint}")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor):
            raise ValueError(  # noqa: TRY004 (as above)
                f"{function}: the mask of {name!r} is a {type(mask).__name__}, not a tensor")
        if not is_binary(mask):
            raise ValueError(f"{function}: the mask of {name!r} must be boolean or 0/1, got "
                             f"{mask.dtype} with other values")


class LayerCollapseWarning(UserWarning):
    """Masks that prune every weight of a layer (layer-collapse: Section 4 and Figure 1 of
    Tanaka et al. 2020), from :func:`synflow.prune` and :func:`synflow.prune_through`
    (:func:`warn_collapsed`); ``warnings.simplefilter("error", LayerCollapseWarning)`` turns
    it into an error.

    >>> issubclass(LayerCollapseWarning, UserWarning)
    True
    """


def warn_collapsed(masks: Masks, connected: bool | None = None,
                   input_shape: tuple[int, ...] | None = None) -> None:
    """Warn :class:`LayerCollapseWarning` naming every layer whose weights ``masks`` all
    prune (:func:`empty_layers`; a layer of no weights is not one); nothing when there is
    none. ``connected`` (from :func:`synflow.core.paths.warn_cut`'s passes on
    ``input_shape``): whether input-output paths remain, said in the message; None: not
    known.

    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_collapsed({"a.weight": torch.tensor([True]), "b.weight": torch.tensor([False])})
    >>> str(caught[0].message)[:54]
    'the masks prune every weight of 1 layer(s), b.weight ('
    """
    empty = [name for name in empty_layers(masks) if masks[name].numel()]
    if not empty:
        return
    if connected is None:
        paths = ("where every input-output path crosses one (a plain network such as VGG; a "
                 "shortcut bypasses a residual block's convolutions) the output no longer "
                 "depends on the input")
    elif connected:
        paths = ("yet input-output paths remain (a skip or shortcut bypasses the empty "
                 f"layers; two float64 passes on input shape {input_shape}): the output "
                 "still depends on the input")
    else:
        paths = ("and no input-output path is left (two float64 passes on input shape "
                 f"{input_shape}): the output no longer depends on the input")
    warnings.warn(
        f"the masks prune every weight of {len(empty)} layer(s), {', '.join(empty)} "
        f"(layer-collapse, Section 4 of the SynFlow paper), {paths}. Prune less, or "
        "iteratively with SynFlow (Theorem 3: no collapse below the maximal compression in "
        "a network without biases)",
        LayerCollapseWarning, stacklevel=outside_stacklevel())


def compression_of(masks: Masks) -> float:
    """The compression ratio rho: prunable weights in total / prunable weights kept, a
    float (inf if none is kept).

    >>> compression_of({"a.weight": torch.tensor([True, False]), "b.weight": torch.zeros(2, dtype=bool)})
    4.0
    """
    _check(masks, "compression_of")
    total = sum(mask.numel() for mask in masks.values())
    kept = sum(int(mask.sum()) for mask in masks.values())
    return total / kept if kept else float("inf")


def shuffle_masks(masks: Masks, seed: int = 0) -> Masks:
    """Randomly permute the entries of each layer's mask (same density per layer).

    The sanity check of Frankle et al. (2021): a layer-wise shuffled mask keeps
    every layer's kept count but none of the positions. ``seed`` fixes the permutation
    (ValueError for a bad seed, see :func:`synflow.core.checks.check_seed`).

    >>> masks = {"fc.weight": torch.tensor([True, True, False, False, False, False])}
    >>> shuffled = shuffle_masks(masks, seed=0)
    >>> count_kept(shuffled), torch.equal(shuffled["fc.weight"], masks["fc.weight"])
    ({'fc.weight': (2, 6)}, False)
    """
    _check(masks, "shuffle_masks")
    generator = torch.Generator().manual_seed(check_seed(seed))
    shuffled = {}
    for name, mask in masks.items():
        flat = mask.flatten().cpu()
        permutation = torch.randperm(flat.numel(), generator=generator)
        shuffled[name] = flat[permutation].reshape(mask.shape).to(mask.device)
    return shuffled

