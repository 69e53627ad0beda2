"""The pruning loop: score, keep the top weights, repeat on a schedule."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .masks import Masks, apply_masks, current_masks, effective_weight, prunable_layers, unwrap
from .scores import SCORERS, ZERO_WHEN_PRUNED, check_inputs, check_method

SCHEDULES = ("exponential", "linear")
SCOPES = ("global", "local")


def check_iterations(iterations) -> int:
    """``iterations`` as an int >= 1; a bool (True is not a count) or a float is refused.

    Raises:
        ValueError: naming the value and what is allowed.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral):
        raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
            f"iterations must be a plain integer >= 1, got {iterations!r} "
            f"({type(iterations).__name__})"
        )
    if iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    return int(iterations)


def check_density(density) -> float:
    """``density`` (fraction of weights kept) as a float in (0, 1].

    Raises:
        ValueError: naming the value and the allowed range.
    """
    if isinstance(density, bool) or not isinstance(density, numbers.Real):
        raise ValueError(f"density must be a number in (0, 1], got {density!r}")  # noqa: TRY004
    if not 0 < float(density) <= 1:  # NaN fails too
        raise ValueError(
            f"density must be in (0, 1] (kept fraction = 1 / compression), got {density!r}"
        )
    return float(density)


def density_after(iteration: int, iterations: int, compression: float, schedule: str) -> float:
    """Fraction of weights kept after ``iteration`` of ``iterations`` (1-based).

    Raises:
        ValueError: for an unknown schedule, ``iterations`` not an int >= 1,
            ``iteration`` outside 0..iterations or a compression not a finite number >= 1.
    """
    iterations = check_iterations(iterations)
    if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral) or not (
        0 <= iteration <= iterations
    ):
        raise ValueError(f"iteration must be an integer in [0, {iterations}], got {iteration!r}")
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real) or not (
        math.isfinite(compression) and compression >= 1
    ):
        raise ValueError(f"compression must be a finite number >= 1, got {compression!r}")
    if schedule == "exponential":
        return compression ** (-iteration / iterations)
    if schedule == "linear":
        return 1.0 - (1.0 - 1.0 / compression) * iteration / iterations
    raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


# ------------------------------------------------------------------ selection


def top_k(
    values: torch.Tensor, k: int, sample_size: int = 1 << 16, scratch: torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    """The ``k`` largest entries of a 1-D tensor: ``(boolean mask, k-th largest value)``.

    Exactly ``k`` entries are chosen; ties at the threshold go to the lowest
    indices, so the result is deterministic. A full selection over millions of
    scores is slow on a CPU, so a fixed random sample first brackets the
    threshold between ``low < t <= high``: entries above ``high`` are kept and
    only the few inside the bracket are sorted. If the sample misses (rare),
    the exact ``kthvalue`` path gives the same answer. ``scratch``, a boolean
    tensor like ``values``, saves two allocations (the result is written there).
    """
    n = values.numel()
    if not 0 < k < n:
        if k >= n:
            return torch.ones(n, dtype=torch.bool, device=values.device), float(values.min())
        return torch.zeros(n, dtype=torch.bool, device=values.device), math.inf
    if n > 4 * sample_size:
        positions = torch.randint(n, (sample_size,), generator=torch.Generator().manual_seed(n))
        sample = values[positions.to(values.device)].sort().values
        rank = sample_size * (1 - k / n)  # where the threshold falls in the sorted sample
        margin = 4 * math.sqrt(sample_size * (k / n) * (1 - k / n)) + 8
        low_rank, high_rank = int(rank - margin), int(rank + margin)
        low = float(sample[low_rank]) if low_rank >= 0 else -math.inf
        high = float(sample[high_rank]) if high_rank < sample_size else math.inf
        chosen = torch.gt(values, high, out=scratch) if scratch is not None else values > high
        above = int(torch.count_nonzero(chosen))
        band = torch.nonzero(torch.gt(values, low).bitwise_xor_(chosen)).flatten()
        if above < k <= above + band.numel():
            return _choose(chosen, band, values[band], k - above)
    everything = torch.arange(n, device=values.device)
    return _choose(torch.zeros_like(values, dtype=torch.bool), everything, values, k)


def _choose(chosen, positions, candidates, k):
    """Mark the ``k`` best ``candidates`` (at ascending ``positions``) in ``chosen``;
    ties at the threshold go to the lowest positions."""
    threshold = float(torch.kthvalue(candidates.cpu(), candidates.numel() - k + 1).values)
    above = candidates > threshold
    chosen[positions[above]] = True
    tied = positions[candidates == threshold]
    chosen[tied[: k - int(torch.count_nonzero(above))]] = True
    return chosen, threshold


def check_finite(values: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``values`` holds a NaN or an infinity, counting them.

    One float64 sum decides (it cannot overflow where the values are finite, unlike a
    sum in float16: 65,536 scores of 1.0 make inf there); only when that sum is not
    finite is each value checked.
    """
    if math.isfinite(float(values.sum(dtype=torch.float64))):
        return
    nan = int(torch.isnan(values).sum())
    inf = int(torch.isinf(values).sum())
    if nan or inf:
        raise ValueError(
            f"the scores contain NaN or inf: {nan} NaN and {inf} infinite values "
            f"(of {values.numel()}, "
            f"{values.dtype}); cannot rank them. An overflow in the scoring pass is the usual "
            "cause: see the scorer's own checks (SynFlow names R_SF's overflow)"
        )


def _keep_best(values, alive, target, *, invert, zero_when_pruned, scratch=None):
    """Boolean mask of the ``target`` best alive entries. ``values`` is overwritten."""
    check_finite(values)
    target = min(target, int(torch.count_nonzero(alive)))
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
    if scope == "global":
        return [slice(0, sum(sizes))]
    if scope == "local":
        ends = torch.tensor(sizes).cumsum(0).tolist()
        return [slice(end - size, end) for size, end in zip(sizes, ends)]
    raise ValueError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")


def _select_flat(flat, alive, sizes, density, *, scope, invert, zero_when_pruned=False, out=None):
    """New flat alive mask: per scope group, the best ``round(size * density)`` alive
    entries. ``flat`` (the scores) is overwritten; ``out`` may be a boolean buffer."""
    kept = torch.empty_like(alive) if out is None else out
    for part in _scope_slices(sizes, scope):
        target = round((part.stop - part.start) * density)
        kept[part] = _keep_best(
            flat[part],
            alive[part],
            target,
            invert=invert,
            zero_when_pruned=zero_when_pruned,
            scratch=kept[part],
        )
    return kept


def select(
    scores: Masks,
    density: float,
    *,
    masks: Masks | None = None,
    scope: str = "global",
    invert: bool = False,
) -> Masks:
    """Masks keeping the best-scored weights at ``density``, among ``masks``' alive ones.

    Global scope keeps ``round(N * density)`` weights in total, local scope
    ``round(N_l * density)`` per layer; never more than are alive, and pruned
    weights never come back. Cheap for sweeping many compressions over one
    scoring pass.
    """
    density = check_density(density)
    if masks is None:
        masks = {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    flat = torch.cat([scores[name].flatten() for name in masks])
    alive = torch.cat([mask.flatten() for mask in masks.values()])
    sizes = [mask.numel() for mask in masks.values()]
    kept = _select_flat(flat, alive, sizes, density, scope=scope, invert=invert)
    return {
        name: part.view(mask.shape) for (name, mask), part in zip(masks.items(), kept.split(sizes))
    }


# ------------------------------------------------------------------ the loop


def _check_compression(compression, total: int) -> float:
    if isinstance(compression, bool):
        raise ValueError(f"compression must be a number >= 1, got {compression!r}")  # noqa: TRY004
    try:
        value = float(compression)
    except (TypeError, ValueError):
        raise ValueError(f"compression must be a number >= 1, got {compression!r}") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"compression must be a finite number >= 1, got {compression!r}")
    if value > total:
        raise ValueError(
            f"compression {compression!r} leaves no weight: the model has {total} prunable "
            f"weights, so compression must be at most {total}"
        )
    return value


def prune(
    model: nn.Module,
    method: str,
    compression: float,
    *,
    iterations: int = 1,
    schedule: str = "exponential",
    scope: str = "global",
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    invert: bool = False,
    seed: int = 0,
) -> Masks:
    """Prune ``model`` in place and return its boolean masks.

    Args:
        method: a key of ``SCORERS`` ("random", "magnitude", "snip", "grasp", "synflow", ...).
        compression: N / kept, >= 1; exactly ``round(N / compression)`` weights stay
            (global scope), N = all prunable weights of the unpruned model.
        iterations, schedule: prune in ``iterations`` steps to densities
            ``compression**(-k/n)`` ("exponential") or ``1 - (1 - 1/compression) k/n``
            ("linear"), re-scoring the masked model before each step.
        scope: "global" (one ranking over all layers) or "local" (same density per layer).
        data: iterable of (inputs, targets) batches, needed by snip and grasp.
        input_shape: one sample's shape for synflow (read from ``data`` if omitted).
        invert: keep the lowest scores instead of the highest.
        seed: fixes the random scores (method "random").

    Existing masks are respected: weights already pruned stay pruned. A model wrapped
    in ``nn.DataParallel`` or ``DistributedDataParallel`` is unwrapped: its module is
    pruned (mask names without ``module.``). Scores are computed in at least float32
    (float16 / bfloat16 models too); every decision (finite check, counts, threshold)
    is exact for any dtype.
    """
    check_method(method)
    model = unwrap(model)  # nn.DataParallel / DDP: prune the module they run
    iterations = check_iterations(iterations)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    _scope_slices([], scope)  # validates the scope name
    layers = prunable_layers(model)
    masks = current_masks(model)
    total = sum(mask.numel() for mask in masks.values())
    compression = _check_compression(compression, total)
    data, input_shape = check_inputs(method, data, input_shape)

    # The loop works on its own copy of the effective weights and on flat buffers
    # reused by every iteration; the model itself is masked once, at the end.
    sizes = [mask.numel() for mask in masks.values()]
    flat_weights = torch.cat([effective_weight(m).flatten() for m in layers.values()])
    weights = {
        name: part.view(mask.shape)
        for (name, mask), part in zip(masks.items(), flat_weights.split(sizes))
    }
    alive = torch.cat([mask.flatten() for mask in masks.values()])
    kept = torch.empty_like(alive)
    # alive as 0/1 weights: multiplying by it zeroes the pruned weights in one
    # branch-free pass (masked_fill_ is several times slower on mixed masks)
    keep_factor = torch.empty_like(flat_weights)
    flat = None
    generator = torch.Generator().manual_seed(seed)
    scorer = SCORERS[method]
    for iteration in range(1, iterations + 1):
        if iteration == iterations:
            density = 1.0 / compression
        else:
            density = density_after(iteration, iterations, compression, schedule)
        scores = [
            s.flatten()
            for s in scorer(
                model, layers, weights, data=data, input_shape=input_shape, generator=generator
            ).values()
        ]
        if flat is None or flat.dtype != scores[0].dtype:
            flat = torch.empty(total, dtype=scores[0].dtype, device=alive.device)
        torch.cat(scores, out=flat)
        _select_flat(
            flat,
            alive,
            sizes,
            density,
            scope=scope,
            invert=invert,
            zero_when_pruned=method in ZERO_WHEN_PRUNED,
            out=kept,
        )
        alive, kept = kept, alive
        flat_weights.mul_(keep_factor.copy_(alive))
    masks = {
        name: part.view(mask.shape) for (name, mask), part in zip(masks.items(), alive.split(sizes))
    }
    apply_masks(model, masks)
    return masks
