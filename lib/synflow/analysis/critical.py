"""Critical compression: the largest compression a method reaches without an empty layer
(Figure 1's arrows, Section 4), by search or in closed form."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ..core.masks import current_masks, empty_layers
from ..core.schedules import schedule_densities
from ..core.scorers import ITERATIVE_METHODS, PAPER_METHODS
from ..core.scoring import compute_scores
from ..core.selection import select
from .collapse import data_for, exact_critical_compression, max_compression, unpruned
from .iteration import iterative_masks


@dataclass
class Critical:
    """Result of a critical-compression search.

    ``compression``: the largest compression found without an empty layer; ``collapse_at``:
    the smallest found with one (None if even rho_max is safe); ``first_empty``: the layers
    empty there; ``evaluations``: compressions tried; ``reaches_max``: no collapse.

    >>> Critical(10.0, None).reaches_max, Critical(3.0, 4.0, ["2.weight"]).reaches_max
    (True, False)
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
    such assumption for the grid (cheap when the answer is near rho_max). ValueError for
    another ``search``, a ``grid_step`` not > 0, or layers empty at compression 1.

    >>> found = find_critical(lambda c: ["0.weight"] if c > 50 else [], 1000.0)
    >>> round(found.compression, 1), round(found.collapse_at, 1), found.first_empty
    (49.6, 50.0, ['0.weight'])
    """
    if search not in ("binary", "downward") or not 0 < grid_step < math.inf:
        raise ValueError(f"search must be 'binary' or 'downward' and grid_step a finite number "
                         f"> 0 (log10), got {search!r} and {grid_step!r}")
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
    low, high, high_empty = 0, len(grid) - 1, at_max  # grid[0] = 1: pruning nothing
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
    if low == 0 and (layers := empty(1.0)):  # never tested: empty before any pruning?
        raise ValueError(f"{layers} are empty at compression 1: no critical compression")
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
    """Critical compression of ``method`` on the (unpruned) model ``model_factory()`` builds.

    Single-shot (``iterations=1``): one scoring pass, then ``select`` per
    compression. Iterative: a fresh model pruned per compression by
    :func:`iterative_masks` (``synflow.prune``'s loop, stopped as soon as a
    layer is empty); ``model_factory`` must build the same weights every call.
    ``search`` (see :func:`find_critical`) defaults to "binary" for single-shot
    and "downward" for iterative pruning. Raises ValueError like :func:`synflow.prune`.

    >>> from synflow.models import build_model
    >>> net = lambda: build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> found = critical_compression(net, "magnitude", input_shape=(1, 8, 8))
    >>> round(found.compression, 1), found.first_empty, round(found.max_compression, 1)
    (3.8, ['1.weight'], 190.0)
    """
    if search is None:
        search = "binary" if iterations == 1 else "downward"
    model = unpruned(model_factory(), "critical_compression")
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
    rho_max is reached), log10_rho_max, first_empty.

    >>> from synflow.models import build_model
    >>> net = lambda: build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> measured_critical(net, ["magnitude", "synflow"], synflow_iterations=10,
    ...                   input_shape=(1, 8, 8)).round(2)
          method  log10_critical  log10_collapse  log10_rho_max first_empty
    0  magnitude            0.56            0.62           2.28    1.weight
    1    synflow            1.12            1.19           2.28    1.weight
    """
    rows = []
    for method in methods:
        found = critical_compression(
            model_factory, method, data=data_for(method, data), input_shape=input_shape,
            iterations=synflow_iterations if method in ITERATIVE_METHODS else 1, seed=seed,
            bisection_steps=bisection_steps)
        rows.append({"method": method, **_critical_columns(found, found.max_compression)})
    return pd.DataFrame(rows)


def critical_table(
    models: Mapping[str, Callable[[], nn.Module]],
    methods: Sequence[str] = PAPER_METHODS,
    *,
    data=None,
    input_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
    random_seeds: Sequence[int] = (0,),
    grid_step: float = 0.25,
    bisection_steps: int = 6,
    iterative_models: Collection[str] = (),
    synflow_iterations: int = 100,
    iterative_bisection_steps: int = 0,
    iterative_search: str = "binary",
) -> pd.DataFrame:
    """Critical compressions of every model and method, single-shot search checked
    against the closed form, plus iterative SynFlow (notebook 02; Figure 1's arrows).

    ``models``: name -> a factory building the same initialized network every call.
    Each method scores the model once (``data`` for SNIP/GraSP; random once per seed
    of ``random_seeds``, the others with ``seed``); :func:`find_critical` searches the
    nested single-shot masks, and :func:`synflow.analysis.exact_critical_compression`
    cross-checks it. Models in ``iterative_models`` add a row for SynFlow pruned
    ``synflow_iterations`` times per compression (:func:`critical_compression`).

    Returns one row per (model, method, iterations, seed) with columns model, method,
    iterations, seed, log10_critical, log10_collapse (None when rho_max is reached),
    log10_rho_max, first_empty (comma-separated layer names), and for single-shot rows
    log10_closed_form and search_matches_closed_form (the search's bracket holds the
    closed form's kept count and its first empty layer is the closed form's).

    >>> import torch
    >>> net = lambda: torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(),
    ...                                   torch.nn.Linear(3, 2, bias=False))
    >>> table = critical_table({"toy": net}, ["magnitude"], input_shape=(4,))
    >>> table[["model", "method", "iterations", "search_matches_closed_form"]].to_dict("records")
    [{'model': 'toy', 'method': 'magnitude', 'iterations': 1, 'search_matches_closed_form': True}]
    """
    rows = []
    for name, factory in models.items():
        net = unpruned(factory(), "critical_table")
        rho_max = max_compression(net)
        total = sum(m.numel() for m in current_masks(net).values())
        for method in methods:
            for method_seed in random_seeds if method == "random" else [seed]:
                scores = compute_scores(net, method, data=data, input_shape=input_shape,
                                        seed=method_seed)
                found = find_critical(
                    lambda c, s=scores: empty_layers(select(s, 1 / c)), rho_max,
                    grid_step=grid_step, bisection_steps=bisection_steps)
                closed, closed_layer = exact_critical_compression(scores)
                rows.append({
                    "model": name, "method": method, "iterations": 1, "seed": method_seed,
                    **_critical_columns(found, rho_max),
                    "log10_closed_form": math.log10(closed),
                    "search_matches_closed_form": _brackets(found, total, closed, closed_layer),
                })
        if name in iterative_models:
            found = critical_compression(
                factory, "synflow", iterations=synflow_iterations, input_shape=input_shape,
                grid_step=grid_step, bisection_steps=iterative_bisection_steps,
                search=iterative_search)
            rows.append({"model": name, "method": "synflow", "iterations": synflow_iterations,
                         "seed": seed, **_critical_columns(found, rho_max)})
    return pd.DataFrame(rows)


def _critical_columns(found: Critical, rho_max: float) -> dict:
    return {
        "log10_critical": math.log10(found.compression),
        "log10_collapse": math.log10(found.collapse_at) if found.collapse_at else None,
        "log10_rho_max": math.log10(rho_max),
        "first_empty": ", ".join(found.first_empty),
    }


def _brackets(found: Critical, total: int, closed: float, closed_layer: str) -> bool:
    """Whether the search agrees with the closed form N / k*: k* kept weights lie in the
    search's bracket (at least the safe point's count, more than the collapse point's)
    and the closed form's first empty layer is among the search's."""
    k_star = round(total / closed)
    if found.collapse_at is None:  # rho_max is safe: the closed form must say so too
        return k_star <= round(total / found.compression)
    return (round(total / found.compression) >= k_star > round(total / found.collapse_at)
            and closed_layer in found.first_empty)


def iterations_table(
    model_factory: Callable[[], nn.Module],
    methods: Sequence[str],
    iterations: Sequence[int],
    *,
    max_iterations: Mapping[str, int] | None = None,
    data=None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    grid_step: float = 0.25,
    bisection_steps: int = 2,
    search: str = "downward",
) -> pd.DataFrame:
    """Critical compression against the number of pruning iterations (notebook 03, the
    reviewers' ablation of Theorem 3): every method pruned with the exponential schedule
    in each ``n`` of ``iterations`` (up to ``max_iterations[method]`` where given) by
    :func:`critical_compression`. Columns: method, iterations, log10_critical,
    reaches_rho_max, first_empty.

    >>> import torch
    >>> net = lambda: torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(),
    ...                                   torch.nn.Linear(3, 2, bias=False))
    >>> iterations_table(net, ["magnitude"], [1, 2], input_shape=(4,))["iterations"].tolist()
    [1, 2]
    """
    limits = dict(max_iterations or {})
    rows = []
    for method in methods:
        for n in [n for n in iterations if n <= limits.get(method, n)]:
            found = critical_compression(
                model_factory, method, iterations=n, data=data, input_shape=input_shape,
                seed=seed, grid_step=grid_step, bisection_steps=bisection_steps, search=search)
            rows.append({"method": method, "iterations": n,
                         "log10_critical": math.log10(found.compression),
                         "reaches_rho_max": found.reaches_max,
                         "first_empty": ", ".join(found.first_empty)})
    return pd.DataFrame(rows)

