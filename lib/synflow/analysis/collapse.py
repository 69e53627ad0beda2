"""Layer-collapse (Section 4): when a mask empties a layer, and rho_max (whether a mask still
links input to output: :mod:`synflow.core.paths`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core.flat_ops import count, count_equal, greater
from ..core.loop import prune
from ..core.masks import Masks, current_masks, effective_weight, empty_layers, prunable_layers
from ..core.scorers import DATA_METHODS, ITERATIVE_METHODS
from ..core.scoring import compute_scores
from ..core.selection import check_finite_scores, check_score_dict, ranking_dtype, select
from .iteration import collapse_expected


def max_compression(model_or_masks) -> float:
    """rho_max = N / L: one weight left in every prunable layer (a model or its masks;
    ValueError when there is no prunable weight).

    >>> import torch
    >>> max_compression({"a.weight": torch.ones(6, 4), "b.weight": torch.ones(2, 6)})
    18.0
    """
    masks = model_or_masks if isinstance(model_or_masks, dict) else current_masks(model_or_masks)
    layers = [m for m in masks.values() if m.numel()]
    if not layers:
        raise ValueError("max_compression needs at least one prunable weight, got none")
    return sum(m.numel() for m in layers) / len(layers)


def layer_fractions(masks: Masks) -> dict[str, float]:
    """Fraction of weights kept in every layer (NaN for a layer of no weights).

    >>> import torch
    >>> layer_fractions({"a.weight": torch.tensor([1.0, 0.0, 0.0, 1.0]), "b.weight": torch.zeros(2)})
    {'a.weight': 0.5, 'b.weight': 0.0}
    """
    return {name: float(m.sum()) / m.numel() if m.numel() else math.nan
            for name, m in masks.items()}


def first_collapse(fractions: pd.DataFrame) -> tuple[float | None, list[str]]:
    """The first compression of ``fractions`` (rows: compressions in increasing order,
    columns: layers, values: fraction kept, as :func:`layer_fractions` per compression) at
    which some layer keeps nothing, and the layers empty there; ``(None, [])`` if none.

    >>> first_collapse(pd.DataFrame({"a": [1.0, 0.5, 0.0], "b": [1.0, 0.0, 0.0]}, index=[1, 4, 16]))
    (4, ['b'])
    """
    empty = fractions.eq(0)
    for compression, row in empty.iterrows():
        if row.any():
            return compression, list(empty.columns[row])
    return None, []


def kept_weight_signs(model: nn.Module) -> pd.DataFrame:
    """Per prunable layer of a (pruned) model, the signs of the kept weights.

    ``positive``: the fraction of kept weights that are > 0 (about 0.5 for a
    mask that ignores signs on a symmetric initialization); ``unit_bias``: over
    the output units with a kept weight, the mean of |2 p - 1| with p the
    fraction of that unit's kept weights that are > 0 (0: every unit keeps both
    signs equally; 1: every unit keeps weights of one sign only).

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 3.0]]))
    >>> kept_weight_signs(net).to_dict("index")
    {'0.weight': {'kept': 4, 'positive': 0.75, 'unit_bias': 0.5}}
    """
    masks = current_masks(model)
    rows = []
    for name, module in prunable_layers(model).items():
        weight, mask = (_by_output_unit(module, t) for t in (effective_weight(module), masks[name]))
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


def _by_output_unit(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """A weight-shaped ``tensor`` as (output units, weights of each): a ConvTranspose's
    weight is (in, out / groups, *kernel), every other layer's (out, ...)."""
    if not isinstance(module, nn.modules.conv._ConvTransposeNd):
        return tensor.reshape(tensor.shape[0], -1)
    groups, (inputs, outputs) = module.groups, tensor.shape[:2]
    grouped = tensor.reshape(groups, inputs // groups, outputs, -1).transpose(1, 2)
    return grouped.reshape(groups * outputs, -1)


def exact_critical_compression(scores: dict[str, torch.Tensor]) -> tuple[float, str]:
    """Closed form for single-shot global selection: ``(N / k*, layer)``.

    ``k*`` is the smallest number of kept weights at which every layer keeps
    one: the worst layer's best weight's rank in the global order (ties to the
    lowest index, as ``select`` breaks them; scores ranked in ``select``'s dtype, float64
    for integers). ``layer`` is the one that empties first, the one that sets ``k*``.
    Raises ValueError for an empty dict, a layer without weights, or NaN/inf scores.

    >>> import torch
    >>> exact_critical_compression({"a.weight": torch.tensor([4.0, 3.0, 2.0]),
    ...                             "b.weight": torch.tensor([1.0])})
    (1.0, 'b.weight')
    """
    check_score_dict(scores)
    empty = [name for name, s in scores.items() if s.numel() == 0]
    if empty:
        raise ValueError(f"layers without weights have no critical compression: {empty}")
    check_finite_scores(scores)
    dtype = ranking_dtype(s.dtype for s in scores.values())  # as select ranks them
    parts = [s.detach().flatten().to(dtype) for s in scores.values()]
    ranks = {}
    for position, (name, part) in enumerate(zip(scores, parts)):
        best = float(part.max())
        # better: every larger score, and the ties in earlier layers (none earlier in its own)
        better = sum(count(greater(other, best)) for other in parts)
        tied = sum(count_equal(other, best) for other in parts[:position])
        ranks[name] = better + tied + 1
    layer = max(ranks, key=ranks.get)
    return sum(part.numel() for part in parts) / ranks[layer], layer


def data_for(method: str, data):
    """``data`` if ``method`` scores with data (SNIP, GraSP), else None.

    >>> data_for("snip", ["batches"]), data_for("synflow", ["batches"])
    (['batches'], None)
    """
    return data if method in DATA_METHODS else None


def unpruned(model, function: str):
    """``model`` if no weight of it is pruned, else ValueError naming ``function``: the
    single-shot analyses score a built model and select among all its weights, so an
    installed mask would be ignored and its pruned weights could come back.

    >>> from torch import nn
    >>> unpruned(nn.Linear(2, 1), "critical_compression")
    Linear(in_features=2, out_features=1, bias=True)
    """
    masks = current_masks(model)
    pruned = sum(int(m.numel() - m.sum()) for m in masks.values())
    if pruned:
        raise ValueError(
            f"{function} measures a freshly built model, and the factory's model already has "
            f"masks installed ({pruned} of {sum(m.numel() for m in masks.values())} weights "
            "pruned): they would be ignored. Build the model without masks")
    return model


def empty_layer_counts(
    model_factory: Callable[[], object],
    methods: Sequence[str],
    log10_compressions: Iterable[float],
    *,
    synflow_iterations: int = 100,
    data=None,
    input_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
) -> pd.DataFrame:
    """Number of empty layers of each method's mask at each compression (no
    training). Single-shot methods score once and select per compression;
    SynFlow (``synflow_iterations`` > 1) prunes a fresh model iteratively per
    compression, which is costly. Compressions above N are clipped to N (one
    weight left). Columns: method, log10_compression, empty_layers. An emptied layer is
    counted, not warned of (no LayerCollapseWarning).

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> factory = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> counts = empty_layer_counts(factory, ["magnitude", "synflow"], [0.5, 1.0],
    ...                             synflow_iterations=2, input_shape=(4,))
    >>> counts
          method  log10_compression  empty_layers
    0  magnitude                0.5             0
    1  magnitude                1.0             1
    2    synflow                0.5             0
    3    synflow                1.0             0
    """
    model = unpruned(model_factory(), "empty_layer_counts")
    total = sum(m.numel() for m in current_masks(model).values())
    rows = []
    for method in methods:
        single = None
        for exponent in log10_compressions:
            compression = min(10.0**exponent, float(total))
            if method in ITERATIVE_METHODS and synflow_iterations > 1:
                # the whole schedule: the final mask, whose empty layers are counted
                with collapse_expected():  # counted, not warned of
                    masks = prune(
                        model_factory(), method, compression, iterations=synflow_iterations,
                        input_shape=input_shape, seed=seed,
                    )
            else:
                if single is None:
                    single = compute_scores(
                        model, method, data=data_for(method, data), input_shape=input_shape,
                        seed=seed,
                    )
                masks = select(single, 1.0 / compression)
            rows.append(
                {"method": method, "log10_compression": float(exponent),
                 "empty_layers": len(empty_layers(masks))}
            )
    return pd.DataFrame(rows)
