"""SynFlow's pruning loop on the alive weights only: the path :func:`synflow.prune` and
:func:`synflow.prune_through` take for "synflow" and "synflow_l2" (Algorithm 1 of Tanaka
et al. 2020).

A pruned weight scores exactly 0 and stays pruned, and the alive weights shrink
geometrically over the schedule (a mean density of 0.21 over 100 iterations to
compression 100), so each iteration scores and ranks the alive weights only. The loop
keeps, per layer, the flat positions of the alive weights (ascending) and the pass's
leaves |w|**power in the pass's dtype, and zeroes a leaf when its weight is pruned,
instead of building full-size copies, concatenations and masks every iteration. The
masks are the general loop's bit for bit: the same pass on the same values gives the
same scores, and the k best alive scores (ties to the lowest position) are the same
whether the pruned weights' zeros are ranked with them or not
(tests/test_synflow_loop.py checks it against a full ranking).
"""

from __future__ import annotations

import itertools
import math

import torch

from .alive_selection import _drop_alive
from .checks import all_finite
from .diagnostics import warn_uninformative_counts
from .flat_ops import count, nonzero, put
from .gradient_bound import gradient_bound, grads_finite, largest
from .masks import Masks, effective_weight, layer_masks
from .scorers import synflow as paths
from .scorers.functional import check_materialized, fresh_leaves

POWERS = {"synflow": 1, "synflow_l2": 2}  # the methods this loop runs: |w| or w**2
# the largest set of gradients (bytes) the loop holds from one pass to the next forward
HOLD_BYTES = 1 << 28


def _gather(tensors, positions, counts, dtype) -> torch.Tensor:
    """The entries of ``tensors`` (one per layer) at ``positions`` (flat positions within
    each layer, ``counts[l]`` of them for layer l, concatenated), in one flat tensor."""
    out = torch.empty(positions.numel(), dtype=dtype, device=positions.device)
    for t, p, part in zip(tensors, positions.split(counts), out.split(counts)):
        torch.index_select(_flat(t), 0, p, out=part)
    return out


def _flat(tensor) -> torch.Tensor:
    """The tensor's entries in row-major order, one dimension (a copy only when its
    strides are not row-major, as in a channels-last model)."""
    return tensor.detach().reshape(-1)


def _zero_at(tensor, where) -> None:
    """Set the entries at row-major flat positions ``where`` to 0, in place, whatever the
    tensor's strides."""
    tensor = tensor.detach()
    if tensor.is_contiguous():
        tensor.view(-1).index_fill_(0, where, 0)
    else:
        tensor.index_put_(torch.unravel_index(where, tensor.shape), tensor.new_zeros(()))


def _scores(grads, leaves, positions, counts, values, dtype, out=None) -> torch.Tensor:
    """The scores dR/dw * w at ``positions`` in one flat tensor (``out`` if given, a
    buffer of ``dtype`` holding at least as many), w the leaves there (``values``, one
    flat tensor like the result, if given). A layer whose positions are all of its weights
    (none pruned since the last compaction) is multiplied in place of a gather."""
    if values is None:
        values = _gather(leaves, positions, counts, dtype)
    if out is None or out.dtype != dtype:
        out = torch.empty(positions.numel(), dtype=dtype, device=positions.device)
    out = out[:positions.numel()]
    for g, p, part, w in zip(grads, positions.split(counts), out.split(counts),
                             values.split(counts)):
        if p.numel() == g.numel():  # p is every position, in order
            torch.mul(_flat(g), w, out=part)
        else:
            torch.index_select(_flat(g), 0, p, out=part).mul_(w)
    return out


def _ends(counts, device) -> torch.Tensor:
    """Where each layer's part of the flat tensors ends (the cumulative ``counts``)."""
    return torch.tensor(counts, device=device).cumsum(0)


def _alive_positions(mask) -> torch.Tensor:
    """The flat positions of a layer's True mask entries, ascending, as int32 where they
    fit (half the index bytes the gathers read)."""
    flat = mask.flatten()
    dtype = torch.int32 if flat.numel() <= torch.iinfo(torch.int32).max else torch.int64
    if bool(flat.all()):  # an unpruned layer: no scan for its positions
        return torch.arange(flat.numel(), device=flat.device, dtype=dtype)
    return nonzero(flat).to(device=flat.device, dtype=dtype)


def _alive_pass(model, layers, leaves, positions, counts, input_shape, dtype, transform,
                values=None, top=math.inf, out=None, after_forward=None):
    """One SynFlow pass: ``(R, gradients, alive scores, finite)``; the alive scores are
    dR/dw * w at ``positions``, one flat tensor in flat order (layer after layer; w the
    leaves there, ``values`` if given), ``finite`` says that every score, the pruned
    weights' ``gradient * 0`` included, is finite. ``top`` bounds every leaf: with the
    gradients' bound B, B * top < ``dtype``'s largest value * 2**-20 (room for rounding
    and for convolution algorithms' intermediate sums) proves the scores finite unread.
    The scores are written into ``out`` where it is a buffer of ``dtype``;
    ``after_forward`` is called between the forward and the backward pass."""
    with gradient_bound(layers) as bounds:
        R, grads = paths.path_gradients(model, layers, leaves, input_shape, dtype, transform,
                                        after_forward)
    scores = _scores(grads, leaves.values(), positions, counts, values, dtype, out)
    limit = torch.finfo(dtype).max * 2.0 ** -20
    finite, bound = grads_finite(layers, grads, bounds, limit)
    return R, grads, scores, finite and (bound * top < limit or all_finite(scores))


def _full(grads, leaves) -> dict[str, torch.Tensor]:
    """Every weight's score, pruned ones included: what the general loop ranks."""
    return {name: g.mul(w.detach()) for (name, w), g in zip(leaves.items(), grads)}


def _checked_scores(model, layers, leaves, values, unpruned, positions, counts, input_shape,
                    precision, power, top, out, after_forward=None):
    """:func:`synflow.core.scorers.synflow.checked_pass` on the alive weights:
    ``(R, grads, alive scores, leaves used)``, with the same float32 fallback (on the weights
    ``unpruned()`` returns) and the same overflow error (decided on every score when the
    quick test fails); ``top`` bounds every leaf; ``out``: a buffer for the scores;
    ``after_forward`` is called between each pass's forward and backward."""
    transform = paths.path_transform(power)
    if precision == "float32":
        R, grads, scores, finite = _alive_pass(model, layers, leaves, positions, counts,
                                               input_shape, torch.float32, transform, values, top,
                                               out, after_forward)
        low, high = paths.FLOAT32_SAFE_RANGE
        if (finite and low < float(R) < high) or paths.safe_in_float32(R, _full(grads, leaves)):
            return R, grads, scores, leaves
        # new leaves: gathered afresh, and top, the float32 leaves' bound, is not theirs
        leaves, values, top = fresh_leaves(unpruned(), transform, torch.float64), None, math.inf
    R, grads, scores, finite = _alive_pass(model, layers, leaves, positions, counts,
                                           input_shape, torch.float64, transform, values, top,
                                           out, after_forward)
    if not (finite and math.isfinite(float(R))):
        paths.check_finite(R, _full(grads, leaves), len(layers), power)
    return R, grads, scores, leaves


def _masks(names, shapes, positions, counts, live) -> Masks:
    """The boolean masks: True at the ``positions`` whose ``live`` entry is True."""
    masks = {}
    for name, shape, where, part in zip(names, shapes, positions.split(counts),
                                        live.split(counts)):
        mask = torch.zeros(shape.numel(), dtype=torch.bool, device=where.device)
        put(mask, where, part)
        masks[name] = mask.view(shape)
    return masks


def synflow_loop(model, layers, densities, *, method, precision, scope, invert, input_shape,
                 callback, iteration_type) -> tuple[Masks, bool]:
    """The pruning loop for ``method`` ("synflow" or "synflow_l2") on checked arguments
    (:func:`synflow.core.loop._prune_through`'s), inside its scoring context: returns
    ``(masks, stopped early)``, the model not yet masked (the caller installs them, as
    for the general loop). ``iteration_type`` builds what ``callback`` gets.

    ``positions`` hold the flat positions, within their layer, of a superset of the alive
    weights (``counts[l]`` of them for layer l, concatenated) and ``live`` which of them
    are alive: the weights pruned since the last compaction
    score exactly 0 (their leaf is 0) and are excluded from the ranking by ``live``
    (:func:`synflow.core.alive_selection._drop_alive`); positions are compacted once a
    quarter of them are dead (a compaction is a full scan, the slowest step).

    >>> import torch.nn as nn
    >>> from synflow.core.loop import Iteration
    >>> from synflow.core.prunable import prunable_layers
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> masks, stopped = synflow_loop(
    ...     model, prunable_layers(model), [0.7, 0.5], method="synflow", precision="float64",
    ...     scope="global", invert=False, input_shape=(4,), callback=None,
    ...     iteration_type=Iteration)
    >>> sum(int(mask.sum()) for mask in masks.values()), stopped  # 18 weights * 0.5
    (9, False)
    """
    if input_shape is None:  # the scorer's own error
        paths.synflow_scores(model, layers, {}, input_shape=None)
    power = POWERS[method]
    names, masks = list(layers), layer_masks(layers)
    shapes = [mask.shape for mask in masks.values()]
    sizes = [mask.numel() for mask in masks.values()]
    parts = [_alive_positions(mask) for mask in masks.values()]
    positions, counts = torch.cat(parts), [p.numel() for p in parts]
    del parts
    live = torch.ones(positions.numel(), dtype=torch.bool, device=positions.device)
    weights = {name: effective_weight(module) for name, module in layers.items()}
    check_materialized(weights)
    dtype = torch.float32 if precision == "float32" else torch.float64
    leaves = fresh_leaves(weights, paths.path_transform(power), dtype)
    # the float64 fallback of precision="float32" starts again from the (masked) weights
    originals = {name: w.clone() for name, w in weights.items()} if dtype != torch.float64 \
        else None

    def unpruned():  # the original weights, 0 where pruned by now
        alive = _masks(names, shapes, positions, counts, live)
        return {name: w.masked_fill(~alive[name], 0) for name, w in originals.items()}

    values = _gather(leaves.values(), positions, counts, dtype)  # the leaves at positions
    top = max(float(largest(leaf)) for leaf in leaves.values())  # pruning only lowers it
    buffer = torch.empty_like(values)  # for the scores: the same pages every iteration
    stopped = False
    # the last pass's gradients, up to HOLD_BYTES: released once the next pass's forward
    # is done, so that its backward reuses their memory; released earlier, the allocator
    # returned their pages to the system and the backward took them back one page fault
    # at a time (CIFAR VGG-16, float64: 1-4 s of 10 over 100 passes). Held through the
    # selection they add a set to the peak: a larger set (ImageNet VGG-19: 1.1 GB more,
    # no fewer faults, its largest blocks are mapped afresh anyway) and a compaction
    # release them first
    held = []
    hold = sum(leaf.numel() * leaf.element_size() for leaf in leaves.values()) <= HOLD_BYTES
    for iteration, density in enumerate(densities, start=1):
        R, grads, scores, used = _checked_scores(model, layers, leaves, values, unpruned,
                                              positions, counts, input_shape, precision, power,
                                              top, buffer, held.clear)
        if iteration in (1, len(densities)):
            warn_uninformative_counts([int(torch.count_nonzero(s)) for s in scores.split(counts)],
                                      [bool(part.any()) for part in live.split(counts)], names)
        # new tensors of the weights' shapes, kept by the callback if it likes
        record = _full(grads, used) if callback is not None else None
        if hold:
            held.append(grads)
        del grads  # held alone keeps them
        before = _masks(names, shapes, positions, counts, live) if callback is not None else None
        live, gone = _drop_alive(scores, live, counts, sizes, density, scope=scope, invert=invert)
        if gone.numel():
            values.index_fill_(0, gone, 0)
            where = positions.index_select(0, gone).long()  # ascending per layer
            cuts = [0, *torch.searchsorted(gone, _ends(counts, gone.device)).tolist()]
            for i, name in enumerate(names):
                if cuts[i + 1] > cuts[i]:
                    _zero_at(leaves[name], where[cuts[i]:cuts[i + 1]])
        if 4 * (live.numel() - count(live)) > live.numel():  # compact
            held.clear()  # its new arrays, not the gradients, are then the peak
            alive = nonzero(live)
            positions, values = positions.index_select(0, alive), values.index_select(0, alive)
            cuts = [0, *torch.searchsorted(alive, _ends(counts, alive.device)).tolist()]
            counts = [b - a for a, b in itertools.pairwise(cuts)]
            live = torch.ones(positions.numel(), dtype=torch.bool, device=live.device)
        if callback is not None:
            step = iteration_type(iteration, len(densities), density, record, before,
                                  _masks(names, shapes, positions, counts, live), R=float(R))
            if callback(step):
                stopped = True
                break
            del record, before, step  # ours: the callback keeps what it likes
    return _masks(names, shapes, positions, counts, live), stopped
