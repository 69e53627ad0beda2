"""Critical compression: the largest compression a method reaches without an empty layer
(Figure 1's arrows, Section 4), by search or in closed form."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ..core.masks import empty_layers
from ..core.schedules import schedule_densities
from ..core.scorers import ITERATIVE_METHODS, PAPER_METHODS
from ..core.scoring import compute_scores
from ..core.selection import select
from .collapse import data_for, max_compression
from .iteration import iterative_masks


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


def measured_critical(
    model_factory: Callable[[], object],
    methods: Sequence[str] = PAPER_METHODS,
    *,
    synflow_iterations: int = 100,
    data=None,
    input_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
    bisection_steps: int = 2,
) -> pd.DataFrame:
    """Critical compression of each method on ``model_factory()`` (data-free
    search of :func:`synflow.analysis.critical_compression`, no training): the
    largest compression without an empty layer, SynFlow iterative, the others
    single-shot. Columns: method, log10_critical, log10_collapse (None when
    rho_max is reached), log10_rho_max, first_empty."""
    rows = []
    for method in methods:
        found = critical_compression(
            model_factory,
            method,
            iterations=synflow_iterations if method in ITERATIVE_METHODS else 1,
            data=data_for(method, data),
            input_shape=input_shape,
            seed=seed,
            bisection_steps=bisection_steps,
        )
        rows.append(
            {
                "method": method,
                "log10_critical": math.log10(found.compression),
                "log10_collapse": math.log10(found.collapse_at) if found.collapse_at else None,
                "log10_rho_max": math.log10(found.max_compression),
                "first_empty": ", ".join(found.first_empty),
            }
        )
    return pd.DataFrame(rows)
