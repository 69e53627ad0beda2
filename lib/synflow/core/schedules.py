"""Pruning schedules: the densities the pruning loop steps through (Tanaka et al. 2020,
Section 6: exponential, compression**(-k/n); linear as the authors' option). Their
arguments are checked by :mod:`synflow.core.checks` (one rule per argument)."""

from __future__ import annotations

from .checks import check_choice, check_compression, check_iterations, integer

SCHEDULES = ("exponential", "linear")


def density_after(iteration: int, iterations: int, compression: float, schedule: str) -> float:
    """Fraction of weights kept after ``iteration`` of ``iterations`` (1-based).

    Raises:
        ValueError: for an unknown schedule, ``iterations`` not an int >= 1,
            ``iteration`` outside 0..iterations or a compression not a finite number >= 1.

    >>> density_after(5, 10, 100, "exponential")
    0.1
    """
    iterations = check_iterations(iterations)
    what = f"an integer in [0, {iterations}]"
    iteration = integer(iteration, "iteration", what)
    if not 0 <= iteration <= iterations:
        raise ValueError(f"iteration must be {what}, got {iteration!r}")
    compression = check_compression(compression)
    return _density_after(iteration, iterations, compression, check_choice(schedule, SCHEDULES, "schedule"))


def _density_after(iteration: int, iterations: int, compression: float, schedule: str) -> float:
    if schedule == "exponential":
        return compression ** (-iteration / iterations)
    return 1.0 - (1.0 - 1.0 / compression) * iteration / iterations


def schedule_densities(compression: float, iterations: int, schedule: str) -> list[float]:
    """The densities ``prune`` steps through: ``density_after(k, ...)`` for
    k = 1..iterations-1, then exactly ``1 / compression``.

    Raises ValueError as :func:`density_after`.

    >>> schedule_densities(100, 2, "exponential")
    [0.1, 0.01]
    """
    return _schedule_densities(check_compression(compression), check_iterations(iterations),
                               check_choice(schedule, SCHEDULES, "schedule"))


def _schedule_densities(compression: float, iterations: int, schedule: str) -> list[float]:
    """:func:`schedule_densities` on checked arguments."""
    return [
        _density_after(k, iterations, compression, schedule) if k < iterations else 1.0 / compression
        for k in range(1, iterations + 1)
    ]
