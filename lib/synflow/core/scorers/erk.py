"""Data-free baselines published after the paper: random pruning with ERK layer densities.

Erdos-Renyi-Kernel (ERK, Evci et al. 2020, "Rigging the lottery") gives layer
``l`` the density ``min(1, eps * c_l)`` with the layer coefficient

* ``c_l = (fan_in + fan_out) / (fan_in * fan_out)`` for a Linear weight,
* ``c_l = (c_in + c_out + k_h + k_w) / (c_in * c_out * k_h * k_w)`` for a conv
  weight (any kernel rank: the sum of the dimensions over their product),

and ``eps`` chosen so that the layers keep ``round(N / compression)`` weights in
total; a layer whose density would exceed 1 is kept whole and the excess goes
to the others (``eps`` is solved again without it). Within a layer the kept
weights are uniformly random. :func:`erk_densities` computes these densities.

Design: ERK is a *scorer* (``SCORERS["random_erk"]``), so ``synflow.prune``,
``RunConfig(pruner="random_erk")`` and the exact global top-k selection work
unchanged. The trick: a weight at random rank ``r`` (0..n_l-1) of layer ``l``
scores ``-(r + 1/2) / (n_l * c_l)``. Global selection keeps every weight above
one threshold ``-t``, i.e. the ``~ t * c_l * n_l`` best ranks of each layer --
exactly ERK's densities ``min(1, t * c_l)`` with the cap and the redistribution
built in (``t`` plays ``eps``), each layer within one weight of
``erk_densities * n_l`` and the total exactly ``round(N / compression)``.

With existing masks (a second call, or ``iterations > 1``) the ranks are drawn among the
alive weights (the pruned ones take the ranks after them), so a layer keeps
``min(alive_l, t * c_l * n_l)``: ERK's densities again, capped at what is alive, and
pruning in several steps ends at the single step's densities. In local scope every
layer would keep the same fraction uniformly at random ("random"'s masks), so
:func:`synflow.prune` refuses that scope for "random_erk".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_compression
from ..flat_ops import nonzero
from ..masks import Masks, current_masks, layer_masks
from .functional import check_materialized


def erk_coefficient(shape) -> float:
    """ERK's ``sum(dims) / prod(dims)`` of a weight shape (Linear: (out, in);
    Conv: (c_out, c_in, k_h, k_w)), a float. Raises ValueError for a rank below 2.

    >>> erk_coefficient((10, 20)), erk_coefficient((8, 4, 3, 3))
    (0.15, 0.0625)
    >>> erk_coefficient((5,))
    Traceback (most recent call last):
    ValueError: ERK needs a weight of rank >= 2, got shape (5,)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ValueError(f"ERK needs a weight of rank >= 2, got shape {shape}")
    return sum(shape) / math.prod(shape)


def erk_densities(model_or_masks: nn.Module | Masks, compression: float) -> dict[str, float]:
    """ERK layer densities for ``compression`` (N / kept), capped at 1.

    Solved exactly: layers whose ``eps * c_l`` reaches 1 are fixed at density 1
    and ``eps`` is recomputed over the rest until no density exceeds 1; then
    ``sum_l density_l * n_l == N / compression``. ``model_or_masks``: a model (its
    prunable layers) or a mask dict (only the shapes count). Raises ValueError for a
    compression outside [1, N].

    >>> masks = {"a.weight": torch.ones(4, 2, dtype=torch.bool), "b.weight": torch.ones(100, 100, dtype=torch.bool)}
    >>> {name: round(d, 3) for name, d in erk_densities(masks, 10).items()}
    {'a.weight': 1.0, 'b.weight': 0.099}
    """
    masks = model_or_masks if isinstance(model_or_masks, dict) else current_masks(model_or_masks)
    sizes = {name: mask.numel() for name, mask in masks.items()}
    coefficients = {name: erk_coefficient(mask.shape) for name, mask in masks.items()}
    total = sum(sizes.values())
    compression = check_compression(compression, total)
    target = total / compression
    dense: set[str] = set()
    eps = math.inf
    while True:
        free = [name for name in sizes if name not in dense]
        if not free:  # every layer is kept whole (compression 1, or close to it)
            break
        budget = target - sum(sizes[name] for name in dense)
        eps = budget / sum(coefficients[name] * sizes[name] for name in free)
        over = {name for name in free if eps * coefficients[name] >= 1}
        if not over:
            break
        dense |= over
    return {name: 1.0 if name in dense else eps * coefficients[name] for name in sizes}


def random_erk_scores(model, layers, weights, *, generator, alive=None, **_):
    """Random ERK scores (Evci et al. 2020, RigL's Erdos-Renyi-Kernel densities): their
    global top-k is random pruning with ERK layer densities (see the module docstring).

    A layer's score is ``-(rank + 0.5) / (n * erk_coefficient(shape))`` for a random
    permutation ``rank`` of its ``n`` weights (drawn from ``generator``, so a seed fixes
    them on any device), the alive weights first (``alive``: boolean masks by weight
    name, from the pruning loop; else the layers' own masks; a layer without one is all
    alive): negative, float64, of the weight's shape, on its device; higher = keep, as
    every scorer. Needs no data and no forward pass (BatchNorm is not involved); pruned
    weights do not score 0 (only alive weights compete in the loop).

    >>> generator = torch.Generator().manual_seed(0)
    >>> scores = random_erk_scores(None, None, {"fc.weight": torch.ones(2, 3)}, generator=generator)
    >>> scores["fc.weight"].shape, scores["fc.weight"].dtype, bool((scores["fc.weight"] < 0).all())
    (torch.Size([2, 3]), torch.float64, True)
    """
    check_materialized(weights)
    if alive is None:
        alive = layer_masks(layers) if layers is not None else {}
    result = {}
    for name, weight in weights.items():
        n = weight.numel()
        ranks = _alive_first_ranks(alive.get(name), n, generator)
        scores = -(ranks + 0.5) / (n * erk_coefficient(weight.shape))
        result[name] = scores.view(weight.shape).to(weight.device)
    return result


def _alive_first_ranks(mask, n, generator) -> torch.Tensor:
    """A random permutation of 0..n-1 (float64, flat) in which the True entries of
    ``mask`` (None: all) take the ranks 0..alive-1; with every entry alive, exactly
    ``torch.randperm(n, generator=generator)``."""
    if mask is None or bool(mask.all()):
        return torch.randperm(n, generator=generator).to(torch.float64)
    flat = mask.detach().flatten().cpu().bool()
    kept, pruned = nonzero(flat), nonzero(~flat)
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[kept] = torch.randperm(kept.numel(), generator=generator).to(torch.float64)
    ranks[pruned] = torch.randperm(pruned.numel(), generator=generator).to(torch.float64) \
        + kept.numel()
    return ranks


__all__ = ["erk_coefficient", "erk_densities", "random_erk_scores"]
