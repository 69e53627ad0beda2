"""Pruning schedules: the densities the pruning loop steps through (Tanaka et al. 2020,
Section 6: exponential, compression**(-k/n); linear as the authors' option), and the
checks of ``iterations`` and ``compression``."""

from __future__ import annotations

import math
import numbers

SCHEDULES = ("exponential", "linear")


def check_iterations(iterations) -> int:
    """``iterations`` as an int >= 1; a bool (True is not a count) or a float is refused.

    Raises:
        ValueError: naming the value and what is allowed.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral):
        raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
            f"iterations must be a plain integer >= 1, got {iterations!r} "
            f"({type(iterations).__name__})"
        )
    if iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    return int(iterations)


def density_after(iteration: int, iterations: int, compression: float, schedule: str) -> float:
    """Fraction of weights kept after ``iteration`` of ``iterations`` (1-based).

    Raises:
        ValueError: for an unknown schedule, ``iterations`` not an int >= 1,
            ``iteration`` outside 0..iterations or a compression not a finite number >= 1.
    """
    iterations = check_iterations(iterations)
    if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral) or not (
        0 <= iteration <= iterations
    ):
        raise ValueError(f"iteration must be an integer in [0, {iterations}], got {iteration!r}")
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real) or not (
        math.isfinite(compression) and compression >= 1
    ):
        raise ValueError(f"compression must be a finite number >= 1, got {compression!r}")
    if schedule == "exponential":
        return compression ** (-iteration / iterations)
    if schedule == "linear":
        return 1.0 - (1.0 - 1.0 / compression) * iteration / iterations
    raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _check_compression(compression, total: int) -> float:
    if isinstance(compression, bool):
        raise ValueError(f"compression must be a number >= 1, got {compression!r}")  # noqa: TRY004
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
