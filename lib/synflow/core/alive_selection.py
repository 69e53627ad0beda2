"""The SynFlow loop's selection over the alive weights (:mod:`synflow.core.synflow_loop`):
the scores of a subset of the weights that holds every alive one, the others exactly 0;
the same choice as :func:`synflow.core.selection.select` over every weight.
"""

from __future__ import annotations

import torch

from .flat_ops import count, greater, nonzero
from .selection import SAMPLE_SIZE, _bracket, _choose, _keep_best, scope_targets


def _select_alive(values, live, counts, sizes, density, *, scope, invert):
    """:func:`synflow.core.selection._select_flat` given part of the weights: ``values``
    are the scores of a subset of the weights holding every alive one, in flat order
    (``counts[l]`` of them in layer l of ``sizes[l]`` weights), ``live`` says which are
    alive; the others must score exactly 0, like every pruned weight. Returns the boolean
    keep mask over the subset: the same choice as over every weight (the
    :func:`scope_targets` of the full sizes, the best alive scores, ties to the lowest
    position). ``values`` is overwritten; every value must be finite (the caller checks
    it)."""
    groups = [(values, live)] if scope == "global" else zip(values.split(counts),
                                                            live.split(counts))
    kept = [_keep_best(group, alive, target, invert=invert, zero_when_pruned=True)
            if group.numel() else torch.zeros(0, dtype=torch.bool, device=values.device)
            for (group, alive), target in zip(groups, scope_targets(sizes, density, scope))]
    return kept[0] if len(kept) == 1 else torch.cat(kept)


def _drop_alive(values, live, counts, sizes, density, *, scope, invert):
    """:func:`_select_alive` and the positions it drops: ``(kept, gone)``, ``gone`` the
    ascending positions (int64) where ``live`` is True and ``kept`` False; ``live`` is
    left as it was. In global scope, not inverted, on many scores, one comparison with
    the bracket's top and one scan of the scores at or below it (the pruned weights, those
    pruned now and the few near the threshold) find both; elsewhere, or when that cannot
    decide, :func:`_select_alive` and a scan of ``live ^ kept``."""
    if scope == "global" and not invert and values.numel() > 4 * SAMPLE_SIZE:
        target = scope_targets(sizes, density, scope)[0]
        found = _drop_in_band(values, live, min(target, count(live)))
        if found is not None:
            return found
    kept = _select_alive(values, live, counts, sizes, density, scope=scope, invert=invert)
    return kept, nonzero(live.bitwise_xor(kept))


def _drop_in_band(values, live, k):
    """``(kept, gone)`` of :func:`_drop_alive` for the ``k`` best of ``values`` (their
    pruned entries exactly 0), or None when the bracket misses or the k-th best is not
    above 0 (a pruned weight could then be chosen: the general path masks them)."""
    n = values.numel()
    if not 0 < k < n:
        return None
    low, high = _bracket(values, k)
    if not high > 0:  # the k-th best is at most 0
        return None
    kept = greater(values, high)  # alive: the pruned score 0 <= high
    above = count(kept)
    rest = nonzero(kept.bitwise_xor(live))  # alive, at or below high
    rest_values = values.index_select(0, rest)
    in_band = nonzero(greater(rest_values, low))  # positions within rest
    if not above < k <= above + in_band.numel():
        return None
    chosen, kth = _choose(torch.zeros(rest.numel(), dtype=torch.bool, device=values.device),
                          in_band, rest_values.index_select(0, in_band), k - above)
    if kth <= 0:
        return None
    kept.index_fill_(0, rest.index_select(0, nonzero(chosen)), True)
    return kept, rest.index_select(0, nonzero(chosen.logical_not_()))
