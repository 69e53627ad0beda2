"""The SynFlow loop, traced (Theorem 3, Figure 7): the score each iteration removes
against R_SF (prune size / cut size), and the iterations that avoid layer-collapse."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from ..core.counts import LayerCollapseWarning
from ..core.flat_ops import count, nonzero
from ..core.loop import Iteration, prune_through
from ..core.masks import Masks, current_masks, empty_layers
from ..core.schedules import schedule_densities


@contextlib.contextmanager
def collapse_expected():
    """No :class:`synflow.LayerCollapseWarning` inside: for the analyses that prune to
    layer-collapse on purpose and report it in their result (other warnings pass).

    >>> import torch
    >>> from synflow.core.loop import prune
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    >>> _ = net[1].weight.data.fill_(1e-3)  # the smallest weights: magnitude empties layer 1
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")  # any warning would raise
    ...     with collapse_expected():
    ...         masks = prune(net, "magnitude", 10.0)
    >>> int(masks["1.weight"].sum())
    0
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)
        yield


@dataclass
class Step:
    """One SynFlow iteration: target density, R_SF before pruning, the SynFlow
    score removed by this step, and the weights kept per layer afterwards.

    >>> Step(density=0.5, R=4.0, removed=1.0, kept={"0.weight": 2}).ratio
    0.25
    """

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

    ``synflow.prune``'s loop (:func:`synflow.core.loop.prune_through` with "synflow": the
    loop on the alive weights, :mod:`synflow.core.synflow_loop`) at ``precision``
    ("float64", the default and ``prune``'s, or "float32"), recording each step from its
    callback: the same masks as ``synflow.prune(model, "synflow", ..., precision=precision)``.
    Returns one Step per density; a layer it empties has a kept count of 0 there and is not
    warned of (no LayerCollapseWarning: :func:`collapse_expected`). Raises ValueError for
    an unknown precision.

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> steps = synflow_iterations(net, [0.5, 0.25], (4,))
    >>> [(step.density, step.kept) for step in steps]
    [(0.5, {'0.weight': 12, '2.weight': 12}), (0.25, {'0.weight': 4, '2.weight': 8})]
    """
    steps = []

    def record(step: Iteration):
        removed = sum(  # the scores of the weights pruned now, in row-major order
            float(step.scores[n].flatten().index_select(
                0, nonzero((step.before[n] & ~step.after[n]).flatten())).sum())
            for n in step.after
        )
        kept = {n: count(m.flatten()) for n, m in step.after.items()}
        steps.append(Step(step.density, step.R, removed, kept))

    with collapse_expected():  # an emptied layer is in the steps: its kept count is 0
        prune_through(model, "synflow", list(densities), input_shape=tuple(input_shape),
                      precision=precision, callback=record)
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
    ``precision`` as in :func:`synflow_iterations`. ``inf`` once a step starts from a
    net an earlier step disconnected (R_SF = 0: the ratio is 0/0; a log plot leaves
    the point out); 0.0 at compression 1. ValueError for a compression below 1 or
    above the model's N prunable weights (it would keep less than one weight).

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> factory = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> ratio = prune_size_ratio(factory, 4.0, 2, input_shape=(4,))
    >>> 0 < ratio < 1
    True
    """
    model = model_factory()
    total = sum(m.numel() for m in current_masks(model).values())
    if not 1 <= compression <= total:
        raise ValueError(f"compression must be in [1, {total}] (the model's prunable weights), "
                         f"got {compression!r}")
    if compression == 1:
        return 0.0
    steps = synflow_iterations(
        model, schedule_densities(compression, iterations, schedule), input_shape, precision)
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
    """``synflow.prune``'s loop (:func:`synflow.core.loop.prune_through`) through
    ``densities`` (global masking), pruning ``model`` in place: score the masked
    model, keep the best alive weights, repeat. With ``stop_on_collapse`` it stops
    once a layer is empty (masks only shrink, so the final mask would be collapsed
    too: use it to ask *whether* a layer collapses, not how many) and returns that mask,
    without a LayerCollapseWarning (:func:`collapse_expected`).

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> masks = iterative_masks(net, "magnitude", [0.5, 0.25])
    >>> {name: int(mask.sum()) for name, mask in masks.items()}
    {'0.weight': 11, '2.weight': 1}
    """
    with collapse_expected() if stop_on_collapse else contextlib.nullcontext():
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
    """Exponential-schedule iterations whose step factor is at most 1 + 1/L:
    ``ceil(ln(compression) / ln(1 + 1/L))``. At ``compression`` = rho_max = N/L the
    last step then keeps L of at most L + 1 weights, so the last steps remove at most
    one weight each, and a positive score conserved layer to layer (SynFlow on a chain
    without biases: Theorem 3's conditions) can never empty a layer: a layer's last
    weight carries all of R_SF, more than any weight of a layer with two. Biases break
    the conservation (they add flow past a layer), and a net with non-zero biases can
    still collapse. Below rho_max the last step removes about N / (compression * L)
    weights. ValueError unless compression >= 1 and layers >= 1.

    >>> single_removal_iterations(100.0, 19)
    90
    """
    if not (compression >= 1 and isinstance(layers, int) and layers >= 1):
        raise ValueError(f"single_removal_iterations needs compression >= 1 and layers >= 1, "
                         f"got {compression!r} and {layers!r}")
    return max(1, math.ceil(math.log(compression) / math.log1p(1 / layers)))
