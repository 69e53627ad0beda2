"""The pruning loop: score, keep the top weights, repeat on a schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .diagnostics import check_synflow_network, warn_uninformative
from .masks import (
    Masks,
    apply_masks,
    check_model,
    current_masks,
    effective_weight,
    prunable_layers,
)
from .scores import (
    SCORERS,
    SYNFLOW_METHODS,
    ZERO_WHEN_PRUNED,
    Scorer,
    check_inputs,
    check_method,
)

SCHEDULES = ("exponential", "linear")
SCOPES = ("global", "local")


def density_after(iteration: int, iterations: int, compression: float, schedule: str) -> float:
    """Fraction of weights kept after ``iteration`` of ``iterations`` (1-based)."""
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


def _keep_best(values, alive, target, *, invert, zero_when_pruned, scratch=None):
    """Boolean mask of the ``target`` best alive entries. ``values`` is overwritten."""
    if not math.isfinite(float(values.sum())):
        raise ValueError("the scores contain NaN or inf; cannot rank them")
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

    Args:
        scores: ``{"<layer>.weight": scores}``, any real dtype, each of its weight's
            shape (e.g. from :func:`synflow.compute_scores`); higher = keep.
        density: fraction of weights kept, in [0, 1] (1 / compression).
        masks: boolean masks of the same keys and shapes; only their True entries
            compete, and False entries stay False (default: everything alive).
        scope: "global" keeps ``round(N * density)`` weights in total (the paper's
            global masking, Section 7), "local" ``round(N_l * density)`` per layer;
            never more than are alive.
        invert: keep the lowest scores instead.

    Ties at the threshold go to the lowest index (layers in ``masks`` order, then
    row-major), so the result is deterministic. Cheap for sweeping many compressions
    over one scoring pass. Returns boolean masks of the same keys and shapes.

    Raises ValueError for an unknown scope or scores with NaN or inf.
    """
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


def schedule_densities(compression: float, iterations: int, schedule: str) -> list[float]:
    """The densities ``prune`` steps through: ``density_after(k, ...)`` for
    k = 1..iterations-1, then exactly ``1 / compression``."""
    return [
        density_after(k, iterations, compression, schedule) if k < iterations else 1.0 / compression
        for k in range(1, iterations + 1)
    ]


@dataclass(frozen=True)
class Iteration:
    """What the pruning loop hands its ``callback`` after each iteration.

    ``iteration`` counts from 1 to ``iterations``; ``density`` is this step's target
    (kept / N); ``scores`` are this step's scores as the scorer returned them (before
    ``invert``; pruned weights included), ``before`` and ``after`` the boolean masks
    before and after the step, all keyed by weight name like the masks. The tensors
    are copies: the callback may keep them.
    """

    iteration: int
    iterations: int
    density: float
    scores: Masks
    before: Masks
    after: Masks


Callback = Callable[[Iteration], object]


def _check_densities(densities) -> list[float]:
    densities = [float(d) for d in densities]
    bad = [d for d in densities if not (math.isfinite(d) and 0 < d <= 1)]
    if not densities or bad:
        raise ValueError(
            f"densities must be a non-empty sequence of numbers in (0, 1], got {bad or densities}"
        )
    return densities


def prune_through(
    model: nn.Module,
    method: str | Scorer,
    densities: Sequence[float],
    *,
    scope: str = "global",
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    invert: bool = False,
    seed: int = 0,
    callback: Callback | None = None,
) -> Masks:
    """The pruning loop: for each density, score the masked model, keep the best
    ``round(N * density)`` alive weights; mask ``model`` in place and return the masks.

    :func:`prune` is this loop through its schedule's densities; ``densities`` may be
    any sequence in (0, 1] (e.g. the 4**(-j/m) steps of Figure 2). ``method`` is a key
    of ``SCORERS`` or a scorer function with their signature (no shortcut is then
    taken and no score check is made). ``callback(Iteration)`` is called after every
    step; a true return value stops the loop there (early stop): the masks after that
    step are installed and returned. The other arguments are ``prune``'s.

    Raises ValueError for an unknown method, scope, bad densities, missing data or
    input shape, scores with NaN or inf, and a network SynFlow cannot score.
    """
    named = isinstance(method, str)
    if named:
        check_method(method)
    elif not callable(method):
        raise ValueError(f"method must be a name in SCORERS or a scorer function, got {method!r}")
    _scope_slices([], scope)  # validates the scope name
    densities = _check_densities(densities)
    layers = prunable_layers(model)
    check_model(model, layers)
    masks = current_masks(model)
    total = sum(mask.numel() for mask in masks.values())
    if named:
        data, input_shape = check_inputs(method, data, input_shape)
    else:
        data = list(data) if data is not None else None
        if input_shape is None and data:
            input_shape = data[0][0].shape[1:]
        input_shape = tuple(input_shape) if input_shape is not None else None
    if named and method in SYNFLOW_METHODS:
        check_synflow_network(model)

    # The loop works on its own copy of the effective weights and on flat buffers
    # reused by every iteration; the model itself is masked once, at the end.
    names = list(masks)
    sizes = [mask.numel() for mask in masks.values()]
    shapes = [mask.shape for mask in masks.values()]
    flat_weights = torch.cat([effective_weight(m).flatten() for m in layers.values()])
    weights = {name: part.view(shape) for name, shape, part in zip(names, shapes, flat_weights.split(sizes))}
    alive = torch.cat([mask.flatten() for mask in masks.values()])
    kept = torch.empty_like(alive)
    # alive as 0/1 weights: multiplying by it zeroes the pruned weights in one
    # branch-free pass (masked_fill_ is several times slower on mixed masks)
    keep_factor = torch.empty_like(flat_weights)
    flat = None
    generator = torch.Generator().manual_seed(seed)
    scorer = SCORERS[method] if named else method
    zero_when_pruned = named and method in ZERO_WHEN_PRUNED

    def unflatten(flat_tensor):
        return {n: p.view(s) for n, s, p in zip(names, shapes, flat_tensor.split(sizes))}

    for iteration, density in enumerate(densities, start=1):
        scores = [
            s.flatten()
            for s in scorer(
                model, layers, weights, data=data, input_shape=input_shape, generator=generator
            ).values()
        ]
        if flat is None or flat.dtype != scores[0].dtype:
            flat = torch.empty(total, dtype=scores[0].dtype, device=alive.device)
        torch.cat(scores, out=flat)
        if zero_when_pruned:
            warn_uninformative(flat, alive, names, sizes)
        record = flat.clone() if callback is not None else None
        _select_flat(
            flat,
            alive,
            sizes,
            density,
            scope=scope,
            invert=invert,
            zero_when_pruned=zero_when_pruned,
            out=kept,
        )
        alive, kept = kept, alive
        flat_weights.mul_(keep_factor.copy_(alive))
        if callback is not None:
            step = Iteration(
                iteration, len(densities), density, unflatten(record),
                unflatten(kept.clone()), unflatten(alive.clone()),
            )
            if callback(step):
                break
    masks = unflatten(alive)
    apply_masks(model, masks)
    return masks


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
    callback: Callback | None = None,
) -> Masks:
    """Prune ``model`` in place and return its boolean masks.

    Score, keep the best weights, repeat: Algorithm 1 of Tanaka et al. (2020) for
    ``method="synflow"``, the same loop (single-shot by default) for the other scores.

    Args:
        model: any ``nn.Module``; its Conv1d/2d/3d and Linear weights are pruned
            (see :func:`synflow.masks.prunable_layers`), on their own device and in
            their own dtype. Modules that would bypass a mask are refused
            (:func:`synflow.masks.check_model`).
        method: a key of ``SCORERS``: "random", "magnitude", "snip", "grasp",
            "synflow", "synflow_l2", "random_erk" (see each scorer's docstring).
        compression: rho = N / kept, a number >= 1 (10 keeps 1 weight in 10; the paper
            plots log10 rho); exactly ``round(N / compression)`` weights stay with
            global scope, N = every prunable weight of the model.
        iterations, schedule: prune in ``iterations`` steps to densities
            ``compression**(-k/n)`` ("exponential", the paper's Section 6) or
            ``1 - (1 - 1/compression) k/n`` ("linear"), re-scoring the masked model
            before each step; the last step is exactly 1 / compression.
        scope: "global" (one ranking over all layers, the paper's) or "local" (the
            same density in every layer).
        data: iterable of (inputs, targets) batches: inputs float (B, *input_shape),
            targets int64 class indices (B,); needed by snip and grasp, read once.
        input_shape: one sample's shape without the batch axis, e.g. (3, 32, 32),
            for synflow (read from ``data`` if omitted).
        invert: keep the lowest scores instead of the highest (Frankle et al. 2021's
            inversion check). The sign convention is "higher score = keep".
        seed: fixes the random scores (methods "random" and "random_erk"); one
            random stream runs through all iterations.
        callback: called with an :class:`Iteration` after each step; a true return
            value stops early (the masks after that step are installed and returned).

    Returns:
        ``{"<module path>.weight": mask}``, boolean tensors of the weights' shapes on
        their devices, True = kept. The model is masked in place (torch's
        ``weight_orig`` * ``weight_mask``); existing masks are respected: weights
        already pruned stay pruned.

    Scoring puts the model in eval mode (BatchNorm uses its running statistics)
    and restores every module's mode afterwards; weights, buffers and ``.grad`` are
    left untouched.

    Raises:
        ValueError: unknown method/schedule/scope, compression outside
            [1, N], iterations not an integer >= 1, missing data (snip, grasp) or
            input shape (synflow), scores with NaN or inf, a network SynFlow cannot
            score (BatchNorm without running statistics).
            Also a layer a mask cannot govern: a weight shared with another module,
            computed by a parametrization or weight norm, or read by a module without
            calling the layer (:func:`synflow.masks.check_model`).

    Warns:
        ScoreWarning: a layer's alive weights all score 0 while other layers' do not
            (the tie-break would decide its mask), or SynFlow on a network with
            activations that are not positively homogeneous (ReLU6, Tanh, GELU, ...).
    """
    check_method(method)
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    _scope_slices([], scope)  # validates the scope name
    total = sum(mask.numel() for mask in current_masks(model).values())
    compression = _check_compression(compression, total)
    return prune_through(
        model,
        method,
        schedule_densities(compression, iterations, schedule),
        scope=scope,
        data=data,
        input_shape=input_shape,
        invert=invert,
        seed=seed,
        callback=callback,
    )
