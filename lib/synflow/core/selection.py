"""Choosing the kept weights: exact top-k selection over scores, global or per layer.

Exactly ``round(N * density)`` weights are kept (ties at the threshold go to the
lowest index), unlike the authors' ``kthvalue`` threshold, which prunes every tie
together. Used by :func:`synflow.prune`'s loop and by :func:`select`.
"""

from __future__ import annotations

import functools
import math

import torch

from .checks import (
    all_finite,
    check_choice,
    check_density,
    check_kept,
    describe_non_finite,
    flag,
    is_binary,
)
from .flat_ops import count, greater, kth_smallest, nonzero, order_statistics
from .masks import Masks

SCOPES = ("global", "local")
SAMPLE_SIZE = 1 << 16  # the scores top_k samples to bracket its threshold


def top_k(
    values: torch.Tensor, k: int, sample_size: int = SAMPLE_SIZE,
    scratch: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """The ``k`` largest entries of a 1-D tensor: ``(boolean mask, k-th largest value)``.

    Exactly ``k`` entries are chosen; ties at the threshold go to the lowest
    indices, so the result is deterministic. A full selection over millions of
    scores is slow on a CPU, so a fixed stratified random sample first brackets the
    threshold between ``low < t <= high``: entries above ``high`` are kept and
    only the few inside the bracket are sorted. If the sample misses (rare),
    the exact ``kthvalue`` path gives the same answer. ``scratch``, a boolean
    tensor like ``values``, saves two allocations (the result is written there).

    >>> top_k(torch.tensor([0.5, 2.0, 1.0, 2.0]), 2)
    (tensor([False,  True, False,  True]), 2.0)
    >>> top_k(torch.tensor([1.0, 1.0, 1.0]), 2)[0]  # ties: lowest indices first
    tensor([ True,  True, False])
    """
    n = values.numel()
    if not 0 < k < n:
        if k >= n:
            return torch.ones(n, dtype=torch.bool, device=values.device), float(values.min())
        return torch.zeros(n, dtype=torch.bool, device=values.device), math.inf
    if n > 4 * sample_size:
        low, high = _bracket(values, k, sample_size)
        chosen = greater(values, high, out=scratch)
        above = count(chosen)
        band = nonzero(greater(values, low).bitwise_xor_(chosen))
        if above < k <= above + band.numel():
            return _choose(chosen, band, values.index_select(0, band), k - above)
    everything = torch.arange(n, device=values.device)
    return _choose(torch.zeros_like(values, dtype=torch.bool), everything, values, k)


def _bracket(values, k, sample_size=SAMPLE_SIZE) -> tuple[float, float]:
    """``(low, high)`` with ``low < t <= high`` for the ``k``-th largest value t of
    ``values``, with high probability, from a fixed stratified sample of ``sample_size``
    of them (``values.numel() > 4 * sample_size``); either may be infinite."""
    n = values.numel()
    where = _sample_positions(n, sample_size).to(values.device)
    sample = values.index_select(0, where).cpu()
    rank = sample_size * (1 - k / n)  # where the threshold falls in the sorted sample
    margin = 4 * math.sqrt(sample_size * (k / n) * (1 - k / n)) + 8
    low_rank, high_rank = int(rank - margin), int(rank + margin)  # low < size, high >= 0
    stats = iter(order_statistics(sample, [r + 1 for r in (low_rank, high_rank)
                                           if 0 <= r < sample_size]))
    low = next(stats) if low_rank >= 0 else -math.inf
    high = next(stats) if high_rank < sample_size else math.inf
    return low, high


@functools.lru_cache(maxsize=4)
def _sample_positions(n, size) -> torch.Tensor:
    """``size`` positions in range(n), one uniformly at random in each of ``size`` equal
    strata: ascending, so the sample's gather streams through memory (a sorted random
    sample's order statistics, with less variance); fixed for a given ``n`` (kept for the
    last few ``n``: the pruning loop brackets the same count until it compacts)."""
    jitter = torch.rand(size, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    positions = torch.arange(size, dtype=torch.float64).add_(jitter).mul_(n / size).long()
    return positions.clamp_max_(n - 1)


def _choose(chosen, positions, candidates, k):
    """Mark the ``k`` best ``candidates`` (at ascending ``positions``) in ``chosen``;
    ties at the threshold go to the lowest positions. Returns ``(chosen, threshold)``."""
    threshold = kth_smallest(candidates.cpu(), candidates.numel() - k + 1)
    above = greater(candidates, threshold)
    chosen[positions[above]] = True
    tied = positions[candidates == threshold]
    chosen[tied[: k - count(above)]] = True
    return chosen, threshold


def check_finite_scores(scores: Masks) -> None:
    """Raise ``ValueError`` naming every key of ``scores`` whose tensor holds a NaN or an
    infinity, with their counts; one sum per tensor decides
    (:func:`synflow.core.checks.all_finite`).

    >>> check_finite_scores({"a": torch.ones(2), "b": torch.tensor([float("nan"), 1.0])})
    Traceback (most recent call last):
    ValueError: the scores contain NaN or inf: b (1 NaN, 0 inf of 2 scores); ...
    """
    bad = [describe_non_finite(name, s, "scores") for name, s in scores.items()
           if s.is_floating_point() and not all_finite(s)]
    if bad:
        raise ValueError(
            f"the scores contain NaN or inf: {', '.join(bad)}; cannot rank them. An overflow "
            "in the scoring pass is the usual cause: see the scorer's own checks (SynFlow "
            "names R_SF's overflow)")


def ranking_dtype(dtypes) -> torch.dtype:
    """The dtype scores of ``dtypes`` are ranked in: their promoted floating dtype, float64
    for integer and boolean scores (exact for integers up to 2**53).

    Raises ValueError for complex scores (they have no order).

    >>> ranking_dtype([torch.float16, torch.bfloat16]), ranking_dtype([torch.int64])
    (torch.float32, torch.float64)
    """
    dtypes = list(dtypes)
    dtype = dtypes[0]
    for other in dtypes[1:]:
        dtype = torch.promote_types(dtype, other)
    if dtype.is_complex:
        raise ValueError(f"scores must be real numbers to be ranked, got {dtype}")
    return dtype if dtype.is_floating_point else torch.float64


def _keep_best(values, alive, target, *, invert, zero_when_pruned, scratch=None):
    """Boolean mask of the ``target`` best alive entries (``alive`` None: every entry).
    ``values`` is overwritten; every value must be finite (the public callers check it:
    :func:`check_finite_scores`)."""
    if alive is None:
        return top_k(values.neg_() if invert else values, min(target, values.numel()),
                     scratch=scratch)[0]
    target = min(target, count(alive))
    if invert:
        values.neg_()
    if zero_when_pruned and not invert:
        # pruned weights score exactly 0: when the k-th best score is > 0 no pruned
        # weight can be among the chosen, and the masking pass is not needed
        chosen, kth = top_k(values, target, scratch=scratch)
        if kth > 0:
            return chosen
    values.masked_fill_(~alive, -math.inf)
    return top_k(values, target, scratch=scratch)[0]


def _scope_slices(sizes: list[int], scope: str) -> list[slice]:
    """One slice of the flat scores per ranking group: all of them ("global") or one per
    layer ("local"); ``scope`` is checked by the public functions."""
    if scope == "global":
        return [slice(0, sum(sizes))]
    ends = torch.tensor(sizes).cumsum(0).tolist()
    return [slice(end - size, end) for size, end in zip(sizes, ends)]


def scope_targets(sizes: list[int], density: float, scope: str) -> list[int]:
    """How many weights each ranking group keeps at ``density``: ``round(N * density)``
    in global scope; ``max(1, round(n_l * density))`` per layer in local scope (a layer
    is never emptied by rounding, so the total can exceed ``round(N * density)`` by one
    weight per layer at most, beyond the layers' own rounding). Never more than are alive
    (the selection caps it).

    >>> scope_targets([10, 3], 0.1, "global"), scope_targets([10, 3], 0.1, "local")
    ([1], [1, 1])
    """
    if scope == "global":
        return [round(sum(sizes) * density)]
    return [max(1, round(size * density)) for size in sizes]


def _select_flat(flat, alive, sizes, density, *, scope, invert, zero_when_pruned=False, out=None):
    """New flat alive mask: per scope group, its :func:`scope_targets` best alive entries
    (``alive`` None: every entry is). ``flat`` (the scores, floating and finite) is
    overwritten; ``out`` may be a boolean buffer."""
    kept = torch.empty(flat.shape, dtype=torch.bool, device=flat.device) if out is None else out
    for part, target in zip(_scope_slices(sizes, scope), scope_targets(sizes, density, scope)):
        kept[part] = _keep_best(
            flat[part],
            None if alive is None else alive[part],
            target,
            invert=invert,
            zero_when_pruned=zero_when_pruned,
            scratch=kept[part],
        )
    return kept


def check_score_dict(scores) -> None:
    """Raise ``ValueError`` unless ``scores`` is a non-empty dict (of score tensors).

    >>> check_score_dict({})
    Traceback (most recent call last):
    ValueError: scores must be a non-empty dict of tensors, got dict
    """
    if not isinstance(scores, dict) or not scores:
        raise ValueError(f"scores must be a non-empty dict of tensors, got {type(scores).__name__}")


def _check_scores(scores, masks) -> None:
    """ValueError naming the first key of ``masks`` without a score tensor of its shape,
    or a mask that is not boolean (or 0/1)."""
    check_score_dict(scores)
    for name, mask in masks.items():
        score = scores.get(name)
        if not isinstance(score, torch.Tensor):
            raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
                f"no score tensor for {name!r}: scores has {sorted(scores)}")
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(score.shape):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask for {name!r} is {shape}, its scores have shape {tuple(score.shape)}")
        if not is_binary(mask):
            raise ValueError(f"mask for {name!r} must be boolean or 0/1, got {mask.dtype} with other values")


def select(
    scores: Masks,
    density: float,
    *,
    masks: Masks | None = None,
    scope: str = "global",
    invert: bool = False,
) -> Masks:
    """Masks keeping the best-scored weights at ``density``, among ``masks``' alive ones.

    Args:
        scores: ``{"<layer>.weight": scores}``, each of its weight's shape (e.g. from
            :func:`synflow.compute_scores`), any real dtype (integer and boolean scores
            are ranked as float64); higher = keep.
        density: fraction of weights kept, in (0, 1] (1 / compression); a number under
            the rule of :mod:`synflow.core.checks`.
        masks: boolean masks of the same keys and shapes; only their True entries
            compete, and False entries stay False (default: everything alive).
        scope: "global" keeps ``round(N * density)`` weights in total (the paper's
            global masking, Section 7); "local" ``max(1, round(N_l * density))`` in each
            layer (at least one, so no layer is emptied by rounding); never more than
            are alive.
        invert: keep the lowest scores instead.

    Ties at the threshold go to the lowest index (layers in ``masks`` order, then
    row-major), so the result is deterministic. Cheap for sweeping many compressions
    over one scoring pass. Returns boolean masks of the same keys and shapes.

    Raises ValueError for a density outside (0, 1] (in global scope, one that keeps no
    weight: round(N * density) = 0), an unknown scope, a mask without scores of its shape,
    complex scores, or scores with NaN or inf.

    >>> scores = {"w": torch.tensor([[3, 1], [0, 2]])}
    >>> select(scores, 0.5)["w"].tolist()
    [[True, False], [False, True]]
    """
    density = check_density(density)
    check_choice(scope, SCOPES, "scope")
    invert = flag(invert, "invert")
    everything = masks is None  # every weight alive: no masking pass
    if everything:
        masks = {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    _check_scores(scores, masks)
    if scope == "global":  # an empty mask would be meaningless
        check_kept([density], sum(mask.numel() for mask in masks.values()))
    dtype = ranking_dtype(scores[name].dtype for name in masks)
    check_finite_scores({name: scores[name].detach() for name in masks})
    flat = torch.cat([scores[name].detach().flatten().to(dtype) for name in masks])
    alive = None if everything else torch.cat([mask.flatten().bool() for mask in masks.values()])
    sizes = [mask.numel() for mask in masks.values()]
    kept = _select_flat(flat, alive, sizes, density, scope=scope, invert=invert)
    return {
        name: part.view(mask.shape) for (name, mask), part in zip(masks.items(), kept.split(sizes))
    }
