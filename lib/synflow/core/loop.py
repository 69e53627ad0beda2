"""The pruning loop: score, keep the top weights, repeat on a schedule.

:func:`prune` and :func:`prune_through` check every argument once (with
:mod:`synflow.core.checks`, :func:`synflow.core.scoring.checked_model` and
:func:`synflow.core.scoring.check_inputs`), then run :func:`_prune_through`, which trusts
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_choice, check_compression, check_densities, check_iterations, check_kept
from .diagnostics import warn_far_from, warn_uninformative
from .masked import install
from .masks import Masks, effective_weight, layer_masks, weight_count
from .paths import warn_cut
from .schedules import SCHEDULES, _schedule_densities
from .scorers import Scorer
from .scorers.gradient import GRASP_TEMPERATURE
from .scoring import check_data, check_inputs, check_run, checked_model, scoring_context
from .selection import _select_flat, check_finite_scores, ranking_dtype
from .synflow_loop import POWERS, synflow_loop


@dataclass(frozen=True)
class Iteration:
    """What the pruning loop hands its ``callback`` after each iteration.

    ``iteration`` counts from 1 to ``iterations``; ``density`` is this step's target
    (kept / N); ``scores`` are this step's scores as the scorer returned them (before
    ``invert``; pruned weights included), ``before`` and ``after`` the boolean masks
    before and after the step, all keyed by weight name like the masks. The tensors
    are copies: the callback may keep them. ``R`` is R_SF of the step's SynFlow pass (a
    float, in the pass's dtype's value) for "synflow" and "synflow_l2", None for the
    other methods.

    >>> steps = []
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> _ = prune(model, "magnitude", 4, iterations=2, callback=steps.append)
    >>> [(s.iteration, s.iterations, round(s.density, 3)) for s in steps]
    [(1, 2, 0.5), (2, 2, 0.25)]
    >>> [sum(int(mask.sum()) for mask in s.after.values()) for s in steps]  # of N = 24
    [12, 6]
    """

    iteration: int
    iterations: int
    density: float
    scores: Masks
    before: Masks
    after: Masks
    R: float | None = None


Callback = Callable[[Iteration], object]


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
    taken, and of the score checks only the one for NaN and inf is made).
    ``callback(Iteration)`` is called after every step; a true return value stops the
    loop there (early stop): the masks after that step are installed and returned. The
    other arguments are ``prune``'s, checked alike.

    Raises ValueError for an unknown method, scope, bad densities (in global scope, one
    that keeps no weight: round(N * density) = 0), missing data or input shape, scores
    with NaN or inf, and a network SynFlow cannot score; warns as :func:`prune` does.

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> masks = prune_through(model, "magnitude", [0.5, 0.25])
    >>> sum(int(m.sum()) for m in masks.values())  # round(24 / 4)
    6
    """
    run = check_run(method, scope, invert, seed, callback, bn_mode, temperature, precision)
    densities = check_densities(densities)
    model, layers = checked_model(model, method if isinstance(method, str) else None)
    if run["scope"] == "global":
        check_kept(densities, weight_count(layers))
    data, input_shape = check_data(method, data, input_shape)
    return _prune_through(model, layers, densities, data=data, input_shape=input_shape, **run)


def _prune_through(model, layers, densities, *, method, scorer, options, zero_when_pruned,
                   scope, data, input_shape, invert, seed, callback) -> Masks:
    """:func:`prune_through` on checked arguments (``layers``: the model's
    ``prunable_layers``; ``method`` the scorer's name, None for a function). Warnings
    point at the first caller outside synflow (:mod:`synflow.core.stack`)."""
    with scoring_context():  # gradients and ordinary tensors, whatever the caller's context
        if method in POWERS:  # SynFlow's passes: scored and ranked on the alive weights only
            masks, stopped = synflow_loop(
                model, layers, densities, method=method, precision=options["precision"],
                scope=scope, invert=invert, input_shape=input_shape, callback=callback,
                iteration_type=Iteration)
        else:
            masks, stopped = _general_loop(
                model, layers, densities, scorer=scorer, options=options,
                zero_when_pruned=zero_when_pruned, scope=scope, data=data,
                input_shape=input_shape, invert=invert, seed=seed, callback=callback)
        # before install: as errors, the model is as it was
        warn_cut(model, layers, masks, input_shape, data)
        if not stopped:
            warn_far_from(sum(int(m.count_nonzero()) for m in masks.values()),
                          weight_count(layers), densities[-1], scope, len(layers))
        install(layers, masks)
    return masks


def _general_loop(model, layers, densities, *, scorer, options, zero_when_pruned, scope, data,
                  input_shape, invert, seed, callback) -> tuple[Masks, bool]:
    """The loop for every scorer but SynFlow's own path: ``(masks, stopped early)``, the
    model not yet masked."""
    masks = layer_masks(layers)
    names = list(masks)
    sizes = [mask.numel() for mask in masks.values()]
    shapes = [mask.shape for mask in masks.values()]
    total = sum(sizes)
    # the loop works on its own copies of the effective weights (each layer in its own
    # dtype) and on flat buffers reused by every iteration; the caller masks the model
    weights = {name: effective_weight(module).clone() for name, module in layers.items()}
    # alive as 0/1 weights: multiplying by it zeroes the pruned weights in one
    # branch-free pass (a float * bool product or masked_fill_ is several times slower)
    factors = [torch.empty_like(weight) for weight in weights.values()]
    alive = torch.cat([mask.flatten() for mask in masks.values()])
    kept = torch.empty_like(alive)
    flat = None
    generator = torch.Generator().manual_seed(seed)
    stopped = False

    def unflatten(flat_tensor):
        return {n: p.view(s) for n, s, p in zip(names, shapes, flat_tensor.split(sizes))}

    for iteration, density in enumerate(densities, start=1):
        result = scorer(model, layers, weights, data=data, input_shape=input_shape,
                        generator=generator, alive=unflatten(alive), **options)
        result = {name: s.detach() for name, s in result.items()}
        check_finite_scores(result)
        scores = [s.flatten() for s in result.values()]
        dtype = ranking_dtype(s.dtype for s in scores)
        if flat is None or flat.dtype != dtype:
            flat = torch.empty(total, dtype=dtype, device=alive.device)
        torch.cat(scores, out=flat)
        if zero_when_pruned and iteration in (1, len(densities)):
            # the first and the last step only: a per-layer pass costs about as much
            # as a selection pass on VGG-16, too much for every one of 100 iterations
            warn_uninformative(flat, alive, names, sizes)
        record = flat.clone() if callback is not None else None
        _select_flat(flat, alive, sizes, density, scope=scope, invert=invert,
                     zero_when_pruned=zero_when_pruned, out=kept)
        alive, kept = kept, alive
        for weight, factor, keep in zip(weights.values(), factors, alive.split(sizes)):
            weight.mul_(factor.copy_(keep.view(weight.shape)))
        if callback is not None:
            step = Iteration(iteration, len(densities), density, unflatten(record),
                             unflatten(kept.clone()), unflatten(alive.clone()))
            if callback(step):
                stopped = True
                break
    return unflatten(alive), stopped


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

    Score, keep the best weights, repeat: Algorithm 1 of Tanaka et al. (2020) with
    ``method="synflow", iterations=100``; single-shot by default, SynFlow included.

    Args:
        model: any ``nn.Module``; its Linear, Conv and ConvTranspose weights are pruned
            on their own device and in their own dtype; what is left dense (LSTM,
            embeddings, ...) or refused, and why, is the table of
            :mod:`synflow.core.masks`.
        method: a key of ``SCORERS``: "random", "magnitude", "snip", "grasp",
            "synflow", "synflow_l2", "random_erk" (see each scorer's docstring), or a
            scorer function with their signature (as :func:`prune_through` takes it).
        compression: rho = N / kept, a number in [1, N] (10 keeps 1 weight in 10; the
            paper plots log10 rho); exactly ``round(N / compression)`` weights stay with
            global scope, N = every prunable weight of the model, pruned ones included.
        iterations, schedule: prune in ``iterations`` steps to densities
            ``compression**(-k/n)`` ("exponential", the paper's Section 6) or
            ``1 - (1 - 1/compression) k/n`` ("linear"), re-scoring the masked model
            before each step; the last step is exactly 1 / compression.
        scope: "global" (one ranking over all layers, the paper's) or "local" (the
            same density in every layer: ``max(1, round(n_l / compression))`` weights
            of each layer's n_l, so no layer is emptied by rounding; the total then
            exceeds ``round(N / compression)`` by at most one weight per layer beyond
            the layers' own rounding).
        data: iterable of (inputs, targets) batches: inputs float (B, *input_shape),
            targets int64 class indices (B,); needed by snip and grasp, read once.
        input_shape: one sample's shape without the batch axis, e.g. (3, 32, 32),
            for synflow (read from ``data`` if omitted); with any method, the shape of
            the check that the masks leave an input-output path (see Warns).
        invert: keep the lowest scores instead of the highest (Frankle et al. 2021's
            inversion check), True or False. The sign convention is "higher = keep".
        seed: an integer; fixes the random scores ("random" and "random_erk"); one
            random stream runs through all iterations.
        callback: called with an :class:`Iteration` after each step; a true return
            value stops early (the masks after that step are installed and returned).
        bn_mode: "eval" (default; BatchNorm with its running statistics, the SynFlow
            authors' figures) or "train" (each batch's statistics, Wang et al.'s GraSP
            code), for snip and grasp only; running statistics are never updated.
        temperature: GraSP's logit temperature (default 200, the authors' code; 1 =
            none), a finite number > 0, for grasp only.
        precision: the dtype of SynFlow's passes, "float64" (default, the oracle) or
            "float32" (faster on a CPU: up to about 4x a pass for a large network and
            input such as VGG-19 at 224, far less for small ones; masks can differ from
            float64's among near-tied scores), for synflow and synflow_l2 only
            (:func:`synflow.core.scorers.synflow.synflow_scores`).

    Numbers follow one rule (:mod:`synflow.core.checks`): ints, floats, numpy scalars
    and 0-d tensors are taken as the number they hold; bools, strings and other
    tensors are refused.

    Returns:
        ``{"<module path>.weight": mask}``, boolean tensors of the weights' shapes on
        their devices, True = kept. The model is masked in place (torch's
        ``weight_orig`` * ``weight_mask``, ``weight_orig`` being the layer's own
        ``weight`` Parameter, so an optimizer built before keeps training it). A model
        wrapped in ``nn.DataParallel``, ``DistributedDataParallel`` or ``torch.compile``
        is unwrapped: its module is pruned (mask names without ``module.`` or
        ``_orig_mod.``); a module reachable under two names is pruned once.

    A second call prunes further: masks only shrink (weights already pruned stay
    pruned) and densities are fractions of ALL N weights, so ``prune(m, ..., 50)`` then
    ``prune(m, ..., 100)`` keeps ``round(N / 100)``. In local scope each layer keeps its
    share of all its weights among its alive ones: after a global pruning, layers
    already below that share keep all they have, and the model ends sparser than
    asked (global 50 then local 60 can end at 148.6); a ``CompressionWarning`` says so
    whenever the result is more than 10 % from the asked compression.

    Scoring puts the model in eval mode (BatchNorm uses its running statistics, or
    batch statistics with ``bn_mode="train"``) and restores every module's mode
    afterwards; weights, buffers, ``.grad`` and the modules' parameters (the same
    objects) are left untouched until the masks are installed. ``prune`` works inside
    ``torch.no_grad()`` and ``torch.inference_mode()``: scoring turns gradients on, and
    the masks are ordinary tensors that train.

    Raises:
        ValueError: unknown method/schedule/scope ("local" for random_erk), compression
            outside [1, N], iterations not an integer >= 1, a number refused by the rule
            above, missing data (snip, grasp) or input shape (synflow), a weight or
            scores with NaN or inf, BatchNorm without running statistics (synflow), a
            forward that casts to a dtype of its own (snip and grasp: also parameters of
            several dtypes), a ``bn_mode``, ``temperature`` or ``precision`` not allowed
            or set for a method without it (:func:`synflow.core.scoring.check_options`).
            Also a model a mask cannot govern (the table of :mod:`synflow.core.masks`:
            tied, parametrized, hook-computed, meta-device, lazy or inference weights,
            torch.jit modules), or a layer read by a module without being called.

    Warns:
        ScoreWarning: a layer's alive weights all score 0 while other layers' do not
            (the tie-break would decide its mask), or every alive weight scores 0 (a
            zero-initialised classifier: the whole mask would be decided by position);
            checked at the first and the last iteration. Also SynFlow on a network
            with activations that are not positively homogeneous (ReLU6, Tanh, GELU).
        CompressionWarning: weights of rank >= 2 that no mask can govern are left
            dense (LSTM, embeddings, ...: named, with their share of the weights), or
            the masks end more than 10 % away from the asked compression.
        LayerCollapseWarning: the masks prune every weight of a layer (named; whether
            input-output paths remain is said where known), or its subclass
            ``synflow.core.paths.DisconnectedWarning``: with no layer empty, they cut
            every input-output path (:func:`synflow.core.paths.warn_cut`: two float64
            forwards at batch one, where an input shape is given or read from data).
            Both before the masks are installed (as errors: the model as it was).

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> masks = prune(model, "synflow", 4, iterations=2, input_shape=(8,))
    >>> sum(int(m.sum()) for m in masks.values())  # round(80 / 4)
    20
    """
    run = check_run(method, scope, invert, seed, callback, bn_mode, temperature, precision)
    iterations = check_iterations(iterations)
    check_choice(schedule, SCHEDULES, "schedule")
    model, layers = checked_model(model, method)
    total = weight_count(layers)
    compression = check_compression(compression, total)
    data, input_shape = check_inputs(method, data, input_shape)
    densities = _schedule_densities(compression, iterations, schedule)
    return _prune_through(model, layers, densities, data=data, input_shape=input_shape, **run)
