"""The pruning loop: score, keep the top weights, repeat on a schedule."""

from __future__ import annotations

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
    unwrap,
)
from .schedules import SCHEDULES, _check_compression, check_iterations, schedule_densities
from .scorers import SCORERS, SYNFLOW_METHODS, ZERO_WHEN_PRUNED, Scorer
from .scorers.functional import check_bn_mode
from .scorers.gradient import GRASP_TEMPERATURE
from .scorers.synflow import check_precision
from .scoring import check_inputs, check_method, check_options
from .selection import _scope_slices, _select_flat, check_density


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
    try:
        densities = [check_density(d) for d in densities]
    except ValueError as error:
        raise ValueError(f"densities must be a non-empty sequence of numbers in (0, 1]: {error}") from None
    if not densities:
        raise ValueError("densities must be a non-empty sequence of numbers in (0, 1], got none")
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
    bn_mode: str = "eval",
    temperature: float = GRASP_TEMPERATURE,
    precision: str = "float64",
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
    model = unwrap(model)  # nn.DataParallel / DDP: prune the module they run
    named = isinstance(method, str)
    if named:
        check_method(method)
        options = check_options(method, bn_mode, temperature, precision)
    elif not callable(method):
        raise ValueError(f"method must be a name in SCORERS or a scorer function, got {method!r}")
    else:  # a scorer function gets the options only when they are set
        defaults = {"bn_mode": "eval", "temperature": GRASP_TEMPERATURE, "precision": "float64"}
        options = {key: value for key, value in (("bn_mode", check_bn_mode(bn_mode)),
                                                  ("temperature", temperature),
                                                  ("precision", check_precision(precision)))
                   if value != defaults[key]}
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
                model, layers, weights, data=data, input_shape=input_shape,
                generator=generator, alive=unflatten(alive), **options,
            ).values()
        ]
        if flat is None or flat.dtype != scores[0].dtype:
            flat = torch.empty(total, dtype=scores[0].dtype, device=alive.device)
        torch.cat(scores, out=flat)
        if zero_when_pruned and iteration in (1, len(densities)):
            # the first and the last step only: a per-layer pass costs about as much
            # as a selection pass on VGG-16, too much for every one of 100 iterations
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
    bn_mode: str = "eval",
    temperature: float = GRASP_TEMPERATURE,
    precision: str = "float64",
) -> Masks:
    """Prune ``model`` in place and return its boolean masks.

    Score, keep the best weights, repeat: Algorithm 1 of Tanaka et al. (2020) for
    ``method="synflow"``, the same loop (single-shot by default) for the other scores.

    Args:
        model: any ``nn.Module``; its Conv1d/2d/3d and Linear weights are pruned
            (see :func:`synflow.core.masks.prunable_layers`), on their own device and in
            their own dtype. Modules that would bypass a mask are refused
            (:func:`synflow.core.masks.check_model`).
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
        bn_mode: "eval" (default; BatchNorm with its running statistics, the SynFlow
            authors' figures) or "train" (each batch's statistics, Wang et al.'s GraSP
            code), for snip and grasp only; running statistics are never updated.
        temperature: GraSP's logit temperature (default 200, the authors' code; 1 =
            none), a finite number > 0, for grasp only.
        precision: the dtype of SynFlow's passes, "float64" (default, the oracle) or
            "float32" (about 4x faster on a CPU; masks can differ from float64's among
            near-tied scores), for synflow and synflow_l2 only
            (:func:`synflow.core.scorers.synflow.synflow_scores`).

    Returns:
        ``{"<module path>.weight": mask}``, boolean tensors of the weights' shapes on
        their devices, True = kept. The model is masked in place (torch's
        ``weight_orig`` * ``weight_mask``); existing masks are respected: weights
        already pruned stay pruned. A model wrapped in ``nn.DataParallel`` or
        ``DistributedDataParallel`` is unwrapped: its module is pruned (mask names
        without ``module.``).

    Scoring puts the model in eval mode (BatchNorm uses its running statistics, or
    batch statistics with ``bn_mode="train"``) and restores every module's mode afterwards; weights, buffers and ``.grad`` are
    left untouched.

    Raises:
        ValueError: unknown method/schedule/scope, compression outside
            [1, N], iterations not an integer >= 1, missing data (snip, grasp) or
            input shape (synflow), scores with NaN or inf, a network SynFlow cannot
            score (BatchNorm without running statistics), a ``bn_mode`` other than
            "eval"/"train" or "train" for a method without data, a ``temperature``
            that is not a finite number > 0 or set for a method other than grasp, a
            ``precision`` other than "float64"/"float32" or "float32" for a method
            other than synflow/synflow_l2.
            Also a layer a mask cannot govern: a weight shared with another module,
            computed by a parametrization or weight norm, or read by a module without
            calling the layer (:func:`synflow.core.masks.check_model`).

    Warns:
        ScoreWarning: a layer's alive weights all score 0 while other layers' do not
            (the tie-break would decide its mask; checked at the first and the last
            iteration), or SynFlow on a network with
            activations that are not positively homogeneous (ReLU6, Tanh, GELU, ...).
    """
    check_method(method)
    check_options(method, bn_mode, temperature, precision)
    model = unwrap(model)  # nn.DataParallel / DDP: prune the module they run
    iterations = check_iterations(iterations)
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
        bn_mode=bn_mode,
        temperature=temperature,
        precision=precision,
    )
