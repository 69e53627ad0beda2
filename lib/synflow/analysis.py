"""Measurements behind the theory notebooks (conservation, layer-collapse, iteration).

Plain functions on top of the library's scoring and masking:

* :func:`saliency`, :func:`synflow_saliency`, :func:`loss_saliency`: synaptic
  saliency dR/dp * p of every parameter (biases included), in float64;
* :func:`neuron_flows`, :func:`layer_statistics`, :func:`fit_slope`,
  :func:`conservation_summary`: Theorems 1 and 2 (Figures 3 and 4);
* :func:`find_critical`, :func:`critical_compression`,
  :func:`exact_critical_compression`: where layer-collapse starts;
* :func:`input_output_paths`: whether a mask still links input to output;
* :func:`synflow_iterations`, :func:`prune_size_ratio`: the SynFlow loop with
  the per-iteration removed score (Theorem 3, Figure 7).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .diagnostics import check_synflow_network
from .masks import (
    Masks,
    current_masks,
    effective_weight,
    empty_layers,
    prunable_layers,
)
from .pathscores import check_precision, checked_pass
from .pruning import Iteration, prune_through, schedule_densities, select
from .scores import compute_scores, scoring_view
from .scoring import buffer_copies

# ------------------------------------------------------------------ saliency


def _parameter_name(name: str) -> str:
    """``x.weight_orig`` (a masked layer's dense weight) is reported as ``x.weight``."""
    return name.removesuffix("_orig")


def saliency(
    model: nn.Module,
    objective: Callable[..., torch.Tensor],
    batches: Iterable[tuple],
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    train: bool = False,
) -> tuple[float, dict[str, torch.Tensor]]:
    """Synaptic saliency ``dR/dp * p`` of every parameter, weights and biases.

    ``R = sum over batches (x, *rest) of objective(model(x), *rest)``, in ``dtype``, with
    every parameter replaced by ``transform(p)`` (e.g. ``abs`` for SynFlow).
    The model runs in eval mode unless ``train`` (BatchNorm then uses batch
    statistics); its parameters, buffers and mode are left untouched.
    Returns ``(R, {name: saliency})`` with masked weights named ``x.weight``.
    """
    leaves = {}
    for name, p in model.named_parameters():
        p = p.detach().to(dtype).clone()
        leaves[name] = (transform(p) if transform else p).requires_grad_(True)
    buffers = buffer_copies(model, dtype)
    R = torch.zeros((), dtype=dtype)
    grads = [torch.zeros_like(p) for p in leaves.values()]
    with scoring_view(model):
        model.train(train)
        for x, *rest in batches:
            output = functional_call(model, {**leaves, **buffers}, (x.to(dtype),))
            value = objective(output, *rest)
            for total, g in zip(grads, torch.autograd.grad(value, list(leaves.values()))):
                total += g
            R += value.detach()
    return float(R), {
        _parameter_name(name): g * p.detach() for (name, p), g in zip(leaves.items(), grads)
    }


def synflow_saliency(model, input_shape: Sequence[int], dtype=torch.float64):
    """R_SF and the SynFlow saliency of every parameter (|p|, all-ones input), in float64."""
    ones = torch.ones((1, *input_shape))
    return saliency(model, torch.sum, [(ones,)], transform=torch.abs, dtype=dtype)


def loss_saliency(model, data, dtype=torch.float64, train: bool = False):
    """Signed loss saliency ``dL/dp * p`` (L = cross-entropy summed over batches)."""
    return saliency(model, F.cross_entropy, data, dtype=dtype, train=train)


def weight_scores(scores: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the prunable weights' entries of ``scores`` (drops biases and BatchNorm)."""
    return {name: scores[name] for name in prunable_layers(model)}


def with_activation(model: nn.Module, activation: Callable[[], nn.Module]) -> nn.Module:
    """Replace every ReLU of ``model`` (in place) by ``activation()``; returns the model."""
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, activation())
    return model


def fill_biases(model: nn.Module, value: float) -> nn.Module:
    """Set every Conv/Linear bias to ``value`` (in place); returns the model."""
    with torch.no_grad():
        for module in prunable_layers(model).values():
            if module.bias is not None:
                module.bias.fill_(value)
    return model


def rescale_layer(model: nn.Module, name: str, factor: float) -> nn.Module:
    """Multiply the prunable weight ``name`` by ``factor`` (in place); returns the model."""
    module = prunable_layers(model)[name]
    with torch.no_grad():
        target = module.weight_orig if hasattr(module, "weight_orig") else module.weight
        target.mul_(factor)
    return model


# ----------------------------------------------------- neuron-wise conservation


def _units(module: nn.Module, side: str) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features if side == "out" else module.in_features
    if getattr(module, "groups", 1) != 1:
        raise ValueError("grouped convolutions are not supported")
    return module.out_channels if side == "out" else module.in_channels


def chain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The prunable layers of a plain feed-forward net (MLP, VGG) in order.

    Checks that each layer reads exactly the previous layer's units (a Linear
    after a flatten reads ``k`` features per channel); raises otherwise, e.g.
    for a ResNet, whose shortcuts make it no chain.
    """
    layers = list(prunable_layers(model).items())
    for (a, first), (b, second) in itertools.pairwise(layers):
        out, into = _units(first, "out"), _units(second, "in")
        flattens = isinstance(second, nn.Linear) and into % out == 0
        if out != into and not flattens:
            raise ValueError(f"{b} does not read {a}'s {out} units: not a chain of layers")
    return layers


def neuron_flows(model: nn.Module, scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Incoming vs outgoing total score of every hidden unit of a chain net.

    For the unit (channel) ``c`` of layer ``l``: incoming = the summed scores of
    its incoming weights (plus its bias's score when ``scores`` holds
    ``"<layer>.bias"``), outgoing = the summed scores of the next layer's
    weights that read it (all spatial positions; after a flatten, all the
    features the channel becomes). Pooling between layers keeps channels, so a
    channel is the unit. Returns one row per unit: layer, depth, unit, incoming, outgoing.
    """
    layers = chain_layers(model)
    rows = []
    for depth, ((name, _), (next_name, _)) in enumerate(itertools.pairwise(layers)):
        incoming = scores[name].double().flatten(1).sum(1)
        bias = name[: -len("weight")] + "bias"
        if bias in scores:
            incoming = incoming + scores[bias].double()
        reading = scores[next_name].double().transpose(0, 1).flatten(1).sum(1)
        outgoing = reading.view(len(incoming), -1).sum(1)  # flatten: k features per channel
        rows.append(
            pd.DataFrame(
                {
                    "layer": name,
                    "depth": depth,
                    "unit": np.arange(len(incoming)),
                    "incoming": incoming.numpy(),
                    "outgoing": outgoing.numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def neuronwise_residual(flows: pd.DataFrame) -> float:
    """max |incoming - outgoing| over units, relative to the largest |flow| (0 = conserved)."""
    scale = max(flows["incoming"].abs().max(), flows["outgoing"].abs().max())
    return float((flows["incoming"] - flows["outgoing"]).abs().max() / scale)


# ------------------------------------------------------ network-wise conservation


def layer_statistics(scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer: size, total score (signed sum) and mean |score|, in float64."""
    return pd.DataFrame(
        [
            {
                "layer": name,
                "size": s.numel(),
                "total": float(s.double().sum()),
                "mean_abs": float(s.double().abs().mean()),
            }
            for name, s in scores.items()
        ]
    )


def total_spread(totals: Iterable[float]) -> float:
    """(max - min) / max |total| of the layer totals (0 = every layer carries the same total)."""
    values = np.asarray(list(totals), dtype=float)
    return float((values.max() - values.min()) / np.abs(values).max())


def fit_slope(sizes: Iterable[float], averages: Iterable[float]) -> float:
    """Least-squares slope of log10(average) against log10(1 / size).

    Slope 1: the average score is proportional to 1/size, i.e. every layer's
    total is the same (Theorem 2); slope 0: the average does not depend on size.
    """
    x = -np.log10(np.asarray(list(sizes), dtype=float))
    y = np.log10(np.asarray(list(averages), dtype=float))
    return float(np.polyfit(x, y, 1)[0])


def conservation_summary(model: nn.Module, scores: dict[str, torch.Tensor]) -> dict[str, float]:
    """The Figure 3/4 numbers of one score: correlation and median relative
    difference of incoming vs outgoing unit flows, worst relative residual,
    fitted slope of mean |score| vs 1/size and the spread of layer totals."""
    flows = neuron_flows(model, scores)
    inc, out = flows["incoming"].to_numpy(), flows["outgoing"].to_numpy()
    scale = (np.abs(inc) + np.abs(out)) / 2
    relative = np.abs(inc - out) / np.where(scale > 0, scale, 1)  # a dead unit: 0 in, 0 out
    stats = layer_statistics(weight_scores(scores, model))
    return {
        "correlation": float(np.corrcoef(inc, out)[0, 1]),
        "median_relative_difference": float(np.median(relative)),
        "neuronwise_residual": neuronwise_residual(flows),
        "slope": fit_slope(stats["size"], stats["mean_abs"]),
        "layer_total_spread": total_spread(stats["total"]),
    }


# ------------------------------------------------------------- layer-collapse


def max_compression(model_or_masks) -> float:
    """rho_max = N / L: one weight left in every prunable layer."""
    masks = model_or_masks if isinstance(model_or_masks, dict) else current_masks(model_or_masks)
    return sum(m.numel() for m in masks.values()) / len(masks)


def layer_fractions(masks: Masks) -> dict[str, float]:
    """Fraction of weights kept in every layer."""
    return {name: float(m.sum()) / m.numel() for name, m in masks.items()}


def kept_weight_signs(model: nn.Module) -> pd.DataFrame:
    """Per prunable layer of a (pruned) model, the signs of the kept weights.

    ``positive``: the fraction of kept weights that are > 0 (about 0.5 for a
    mask that ignores signs on a symmetric initialization); ``unit_bias``: over
    the output units with a kept weight, the mean of |2 p - 1| with p the
    fraction of that unit's kept weights that are > 0 (0: every unit keeps both
    signs equally; 1: every unit keeps weights of one sign only).
    """
    masks = current_masks(model)
    rows = []
    for name, module in prunable_layers(model).items():
        weight = effective_weight(module).reshape(module.weight.shape[0], -1)
        mask = masks[name].reshape(weight.shape)
        kept = mask.sum(1)
        positive = ((weight > 0) & mask).sum(1)
        units = kept > 0
        rows.append({
            "layer": name,
            "kept": int(kept.sum()),
            "positive": float(positive.sum() / kept.sum().clamp(min=1)),
            "unit_bias": float((2 * positive[units] / kept[units] - 1).abs().mean())
            if bool(units.any()) else math.nan,
        })
    return pd.DataFrame(rows).set_index("layer")


@dataclass
class Critical:
    """Result of a critical-compression search.

    ``compression``: the largest compression found without an empty layer;
    ``collapse_at``: the smallest compression found with one (None if even
    rho_max is safe); ``first_empty``: the layers empty at ``collapse_at``;
    ``evaluations``: how many compressions were tried.
    """

    compression: float
    collapse_at: float | None
    first_empty: list[str] = field(default_factory=list)
    evaluations: int = 0
    max_compression: float = math.nan

    @property
    def reaches_max(self) -> bool:
        return self.collapse_at is None


def find_critical(
    empty_at: Callable[[float], list[str]],
    max_compression: float,
    *,
    grid_step: float = 0.25,
    bisection_steps: int = 6,
    search: str = "binary",
) -> Critical:
    """The largest compression in [1, max_compression] with no empty layer.

    ``empty_at(c)`` returns the layers empty at compression ``c``. rho_max is
    tried first; if it collapses, the last safe point of the grid
    10**(k * grid_step) is found, and ``bisection_steps`` log-scale bisections
    refine it (precision 10**(grid_step / 2**steps)). ``search="binary"``
    binary-searches the grid, assuming collapse is monotone in compression
    (exact for single-shot pruning, whose masks are nested); ``"downward"``
    walks the grid down from rho_max to the first safe point, which needs no
    such assumption for the grid (cheap when the answer is near rho_max).
    """
    if search not in ("binary", "downward"):
        raise ValueError(f"search must be 'binary' or 'downward', got {search!r}")
    calls = 0

    def empty(c):
        nonlocal calls
        calls += 1
        return empty_at(c)

    at_max = empty(max_compression)
    if not at_max:
        return Critical(max_compression, None, [], calls, max_compression)
    grid = [10 ** (k * grid_step) for k in range(int(math.log10(max_compression) / grid_step) + 1)]
    grid = [c for c in grid if c < max_compression] + [max_compression]
    low, high, high_empty = 0, len(grid) - 1, at_max  # grid[low] assumed safe (1 = no pruning)
    while search == "downward" and high > 0:
        layers = empty(grid[high - 1])
        if not layers:
            low = high - 1
            break
        high, high_empty = high - 1, layers
    while high - low > 1:
        middle = (low + high) // 2
        layers = empty(grid[middle])
        if layers:
            high, high_empty = middle, layers
        else:
            low = middle
    safe, collapse = grid[low], grid[high]
    for _ in range(bisection_steps):
        middle = math.sqrt(safe * collapse)
        layers = empty(middle)
        if layers:
            collapse, high_empty = middle, layers
        else:
            safe = middle
    return Critical(safe, collapse, high_empty, calls, max_compression)


def critical_compression(
    model_factory: Callable[[], nn.Module],
    method: str,
    *,
    iterations: int = 1,
    schedule: str = "exponential",
    data=None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    grid_step: float = 0.25,
    bisection_steps: int = 6,
    search: str | None = None,
) -> Critical:
    """Critical compression of ``method`` on the model ``model_factory()`` builds.

    Single-shot (``iterations=1``): one scoring pass, then ``select`` per
    compression. Iterative: a fresh model pruned per compression by
    :func:`iterative_masks` (``synflow.prune``'s loop, stopped as soon as a
    layer is empty); ``model_factory`` must build the same weights every call.
    ``search`` (see :func:`find_critical`) defaults to "binary" for single-shot
    and "downward" for iterative pruning.
    """
    if search is None:
        search = "binary" if iterations == 1 else "downward"
    model = model_factory()
    rho_max = max_compression(model)
    if iterations == 1:
        scores = compute_scores(model, method, data=data, input_shape=input_shape, seed=seed)

        def empty_at(c):
            return empty_layers(select(scores, 1.0 / c))
    else:

        def empty_at(c):
            densities = schedule_densities(c, iterations, schedule)
            masks = iterative_masks(
                model_factory(), method, densities, data=data, input_shape=input_shape, seed=seed
            )
            return empty_layers(masks)

    return find_critical(
        empty_at, rho_max, grid_step=grid_step, bisection_steps=bisection_steps, search=search
    )


def exact_critical_compression(scores: dict[str, torch.Tensor]) -> tuple[float, str]:
    """Closed form for single-shot global selection: ``(N / k*, layer)``.

    ``k*`` is the smallest number of kept weights at which every layer keeps
    one: the worst layer's best weight's rank in the global order (ties to the
    lowest index, as ``select`` breaks them). ``layer`` is the one that
    empties first, the one that sets ``k*``.
    """
    flat = torch.cat([s.flatten() for s in scores.values()])
    ranks, start = {}, 0
    for name, s in scores.items():
        best = s.max()
        first = start + int(torch.nonzero(s.flatten() == best)[0])
        ranks[name] = int((flat > best).sum()) + int((flat[:first] == best).sum()) + 1
        start += s.numel()
    layer = max(ranks, key=ranks.get)
    return flat.numel() / ranks[layer], layer


def input_output_paths(
    model: nn.Module, masks: Masks | None = None, input_shape: Sequence[int] = (3, 32, 32)
) -> float:
    """Weighted count of input-to-output paths through the kept weights (float64).

    The net is evaluated on an all-ones input with every prunable weight
    replaced by its 0/1 mask, biases set to 0 and every other parameter by its
    absolute value (BatchNorm at its running statistics). The result is > 0
    exactly when some path from input to output survives: 0 means the mask
    disconnects the net, whether or not a layer is empty.
    """
    masks = current_masks(model) if masks is None else masks
    layers = prunable_layers(model)
    biases = {name[: -len("weight")] + "bias" for name in layers}
    params = {}
    for name, p in model.named_parameters():
        base = _parameter_name(name)
        if base in masks:
            params[name] = masks[base].to(torch.float64)
        elif base in biases:
            params[name] = torch.zeros_like(p, dtype=torch.float64)
        else:
            params[name] = p.detach().to(torch.float64).abs()
    buffers = buffer_copies(model, torch.float64)
    for name in list(buffers):  # a masked layer's mask buffer: keep it as the mask
        if name.endswith("weight_mask"):
            buffers[name] = masks[name[: -len("_mask")]].to(torch.float64)
    ones = torch.ones((1, *input_shape), dtype=torch.float64)
    with torch.no_grad(), scoring_view(model):
        return float(functional_call(model, {**params, **buffers}, (ones,)).sum())


# ----------------------------------------------------- the SynFlow loop, traced


@dataclass
class Step:
    """One SynFlow iteration: target density, R_SF before pruning, the SynFlow
    score removed by this step, and the weights kept per layer afterwards."""

    density: float
    R: float
    removed: float
    kept: dict[str, int]

    @property
    def ratio(self) -> float:
        """Prune size / cut size: removed score over R_SF (each layer's total in a plain net)."""
        return self.removed / self.R if self.R > 0 else math.inf


def synflow_iterations(
    model: nn.Module,
    densities: Iterable[float],
    input_shape: Sequence[int],
    precision: str = "float64",
) -> list[Step]:
    """Iterative SynFlow through ``densities`` (global masking), pruning ``model`` in place.

    ``synflow.prune``'s loop (:func:`synflow.pruning.prune_through`) with the SynFlow
    pass at ``precision`` ("float64", the default and ``prune``'s, or "float32":
    :func:`synflow.pathscores.checked_pass`), recording each step: the same masks as
    ``synflow.prune(model, "synflow", ..., precision=precision)``. Returns one Step
    per density. Raises ValueError for an unknown precision.
    """
    check_synflow_network(model)
    shape = tuple(input_shape)
    R_before: list[float] = []

    check_precision(precision)

    def scorer(model, layers, weights, **_):
        R, scores = checked_pass(model, layers, weights, shape, precision)
        R_before.append(float(R))
        return scores

    steps = []

    def record(step: Iteration):
        removed = sum(
            float(step.scores[n][step.before[n] & ~step.after[n]].sum()) for n in step.after
        )
        kept = {n: int(m.sum()) for n, m in step.after.items()}
        steps.append(Step(step.density, R_before[-1], removed, kept))

    prune_through(model, scorer, list(densities), input_shape=shape, callback=record)
    return steps


def prune_size_ratio(
    model_factory: Callable[[], nn.Module],
    compression: float,
    iterations: int,
    *,
    schedule: str = "exponential",
    input_shape: Sequence[int] = (3, 32, 32),
    precision: str = "float64",
) -> float:
    """Figure 7: the largest, over iterations, of the SynFlow score removed in
    one iteration divided by R_SF. Below 1 in every iteration, no step can
    remove a whole layer (each layer's total score is R_SF; Theorem 3).
    ``precision`` as in :func:`synflow_iterations`."""
    if compression == 1:
        return 0.0
    steps = synflow_iterations(
        model_factory(), schedule_densities(compression, iterations, schedule), input_shape,
        precision,
    )
    return max(step.ratio for step in steps)


def iterative_masks(
    model: nn.Module,
    method: str,
    densities: Iterable[float],
    *,
    data=None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    stop_on_collapse: bool = True,
) -> Masks:
    """``synflow.prune``'s loop (:func:`synflow.pruning.prune_through`) through
    ``densities`` (global masking), pruning ``model`` in place: score the masked
    model, keep the best alive weights, repeat. With ``stop_on_collapse`` it stops
    once a layer is empty (masks only shrink, so the final mask would be collapsed
    too: use it to ask *whether* a layer collapses, not how many) and returns that mask."""
    return prune_through(
        model,
        method,
        list(densities),
        data=data,
        input_shape=input_shape,
        seed=seed,
        callback=(lambda step: bool(empty_layers(step.after))) if stop_on_collapse else None,
    )


def single_removal_iterations(compression: float, layers: int) -> int:
    """Exponential-schedule iterations after which the last steps remove at most
    one weight each: ``ceil(ln(compression) / ln(1 + 1/L))``. Then a positive,
    conserved score (SynFlow) can never empty a layer: a layer's last weight
    carries all of R_SF, more than any weight of a layer with two."""
    return math.ceil(math.log(compression) / math.log1p(1 / layers))
