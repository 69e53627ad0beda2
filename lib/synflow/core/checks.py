"""Checks of the public functions' arguments, each written once and made at the boundary.

One rule for numbers, in every numeric argument of the core (compression, density,
densities, iterations, iteration, seed, temperature, input_shape's sizes):

* accepted: ``int``, ``float``, numpy's integer and floating scalars (``np.int64(3)``,
  ``np.float32(0.5)``) and 0-d tensors or arrays of a real dtype (``torch.tensor(10.0)``),
  each the same as the plain number it holds;
* refused, with a ValueError naming the argument, the value and what is allowed:
  ``bool`` (True is not 1), strings and bytes (``"10"`` is not parsed), complex numbers,
  tensors and arrays of any other shape (``torch.tensor([10.0])`` included) and
  anything else; an integer argument also refuses a float (``2.0``).

A flag (``invert``) is a ``bool`` (numpy's and 0-d boolean tensors included) and
nothing else, so that a mistyped ``invert="no"`` is not true. Names (method, scope,
schedule, ...) are checked by :func:`check_choice`.

>>> check_compression(np.float64(10)), check_iterations(torch.tensor(3))
(10.0, 3)
>>> check_density("0.5")
Traceback (most recent call last):
ValueError: density must be a number in (0, 1], got '0.5' (str)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np
import torch


def _plain(value, name: str, what: str):
    """``value`` with a 0-d tensor or array replaced by the number it holds; ValueError
    naming ``name`` for a tensor or array of any other shape."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 0:
            kind = "tensor" if isinstance(value, torch.Tensor) else "numpy array"
            raise ValueError(f"{name} must be {what}, got a {kind} of shape "
                             f"{tuple(value.shape)}: pass a number (or a 0-d tensor)")
        return value.item()
    return value


def _refuse(value, name: str, what: str):
    raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")


def _real_number(value, name: str, what: str = "a real number") -> float:
    """``value`` as a float under the rule for numbers above (NaN and inf pass: the
    caller checks the range). ``what`` describes the allowed values in the error."""
    number = _plain(value, name, what)
    if isinstance(number, (bool, np.bool_)) or not isinstance(number, numbers.Real):
        _refuse(value, name, what)
    return float(number)


def integer(value, name: str, what: str = "an integer") -> int:
    """``value`` as an int under the rule for numbers above (floats refused).

    Raises ValueError naming ``name``, the value and ``what`` otherwise.

    >>> integer(np.int64(3), "width"), integer(torch.tensor(2), "width")
    (3, 2)
    >>> integer(2.0, "width")
    Traceback (most recent call last):
    ValueError: width must be an integer, got 2.0 (float)
    """
    number = _plain(value, name, what)
    if isinstance(number, (bool, np.bool_)) or not isinstance(number, numbers.Integral):
        _refuse(value, name, what)
    return int(number)


def flag(value, name: str) -> bool:
    """``value`` as a bool: ``True``/``False`` (numpy's and 0-d boolean tensors too).

    Raises ValueError naming ``name`` for anything else (``"no"``, ``1``).

    >>> flag(np.bool_(True), "invert"), flag(torch.tensor(False), "invert")
    (True, False)
    >>> flag(1, "invert")
    Traceback (most recent call last):
    ValueError: invert must be True or False, got 1 (int)
    """
    plain = _plain(value, name, "True or False")
    if not isinstance(plain, (bool, np.bool_)):
        _refuse(value, name, "True or False")
    return bool(plain)


def check_choice(value, choices: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``choices``, else ValueError naming it and them.

    >>> check_choice("global", ("global", "local"), "scope")
    'global'
    >>> check_choice("Global", ("global", "local"), "scope")
    Traceback (most recent call last):
    ValueError: unknown scope 'Global'; choose one of: global, local
    """
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_compression(compression, total: int | None = None) -> float:
    """``compression`` (rho = N / kept) as a float: a finite number >= 1 and, when the
    number of prunable weights ``total`` is given, at most ``total`` (one weight kept).

    Raises:
        ValueError: naming the value and the allowed range.

    >>> check_compression(10), check_compression(np.float32(4), total=100)
    (10.0, 4.0)
    >>> check_compression(200, total=100)
    Traceback (most recent call last):
    ValueError: compression 200 keeps N / compression < 1 weight: compression must be in [1, 100] ...
    """
    value = _real_number(compression, "compression", "a finite number >= 1")
    if total is None:
        if not (math.isfinite(value) and value >= 1):
            raise ValueError(f"compression must be a finite number >= 1, got {compression!r}")
        return value
    if not (math.isfinite(value) and 1 <= value <= total):
        leaves = f"compression {compression!r} keeps N / compression < 1 weight: " \
            if value > total else ""
        raise ValueError(
            f"{leaves}compression must be in [1, {total}] (a finite number >= 1 and at most "
            f"{total}, the model's number of prunable weights N), got {compression!r}"
        )
    return value


def check_density(density) -> float:
    """``density`` (fraction of weights kept) as a float in (0, 1].

    Raises:
        ValueError: naming the value and the allowed range.

    >>> check_density(0.1), check_density(torch.tensor(1))
    (0.1, 1.0)
    >>> check_density(0)
    Traceback (most recent call last):
    ValueError: density must be in (0, 1] (kept fraction = 1 / compression), got 0
    """
    value = _real_number(density, "density", "a number in (0, 1]")
    if not 0 < value <= 1:  # NaN fails too
        raise ValueError(
            f"density must be in (0, 1] (kept fraction = 1 / compression), got {density!r}"
        )
    return value


def check_densities(densities) -> list[float]:
    """``densities`` as a non-empty list of floats in (0, 1] (:func:`check_density`).

    Raises ValueError naming the bad value (an empty sequence, a string, a density
    outside (0, 1]).

    >>> check_densities((1, np.float64(0.5)))
    [1.0, 0.5]
    >>> check_densities([])
    Traceback (most recent call last):
    ValueError: densities must be a non-empty sequence of numbers in (0, 1], got none
    """
    if isinstance(densities, (str, bytes)) or not isinstance(densities, Iterable):
        raise ValueError(  # noqa: TRY004 (the library raises ValueError for every bad argument)
            f"densities must be a non-empty sequence of numbers in (0, 1], got {densities!r}")
    try:
        checked = [check_density(d) for d in densities]
    except ValueError as error:
        raise ValueError(f"densities must be a non-empty sequence of numbers in (0, 1]: {error}") from None
    if not checked:
        raise ValueError("densities must be a non-empty sequence of numbers in (0, 1], got none")
    return checked


def check_kept(densities: list[float], total: int) -> None:
    """In global scope, where ``total`` weights (N) are ranked together, every checked
    density must keep one weight at least: round(N * density) >= 1 (an empty mask is
    meaningless).

    Raises ValueError naming the first density that keeps none.

    >>> check_kept([0.5, 0.0125], total=80)
    >>> check_kept([0.5, 0.001], total=80)
    Traceback (most recent call last):
    ValueError: density 0.001 keeps no weight: round(N * density) = 0 with N = 80 ...
    """
    empty = [d for d in densities if round(total * d) < 1]
    if empty:
        raise ValueError(
            f"density {empty[0]!r} keeps no weight: round(N * density) = 0 with N = {total} "
            f"prunable weights; in global scope every density must keep one weight at least "
            f"(density >= 1/{total}), or use scope='local' (one weight per layer at least)")


def check_iterations(iterations) -> int:
    """``iterations`` as an int >= 1; a bool (True is not a count) or a float is refused.

    Raises:
        ValueError: naming the value and what is allowed.

    >>> check_iterations(100)
    100
    >>> check_iterations(True)
    Traceback (most recent call last):
    ValueError: iterations must be a plain integer >= 1, got True (bool)
    """
    value = integer(iterations, "iterations", "a plain integer >= 1")
    if value < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    return value


# the seeds torch.Generator.manual_seed takes
SEED_RANGE = (-(2**63), 2**64 - 1)


def check_seed(seed) -> int:
    """``seed`` as an int that ``torch.Generator.manual_seed`` takes (in ``SEED_RANGE``);
    ValueError naming the value otherwise.

    >>> check_seed(np.int64(0)), check_seed(-1)
    (0, -1)
    >>> check_seed(2**64)
    Traceback (most recent call last):
    ValueError: seed must be an integer in [-9223372036854775808, 18446744073709551615], ...
    """
    low, high = SEED_RANGE
    value = integer(seed, "seed", f"an integer in [{low}, {high}]")
    if not low <= value <= high:
        raise ValueError(f"seed must be an integer in [{low}, {high}], got {seed!r}")
    return value


def check_temperature(temperature) -> float:
    """GraSP's ``temperature`` as a float: a finite number > 0 (Wang et al. 2020 use
    200); ValueError naming the value otherwise.

    >>> check_temperature(200)
    200.0
    >>> check_temperature(float("inf"))
    Traceback (most recent call last):
    ValueError: temperature must be a finite number > 0, got inf
    """
    value = _real_number(temperature, "temperature", "a finite number > 0")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def sample_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` (one sample's shape, no batch dimension) as a tuple of ints.

    Raises:
        ValueError: naming the value, unless it is a non-empty sequence of positive
            integers (bools and floats refused; numpy integers and 0-d tensors taken).

    >>> sample_shape([3, np.int64(32), torch.tensor(32)])
    (3, 32, 32)
    >>> sample_shape((1, 3, 32, 0))
    Traceback (most recent call last):
    ValueError: input_shape must be one sample's shape: ... got (1, 3, 32, 0)
    """
    error = ValueError(
        f"input_shape must be one sample's shape: positive integers without the batch "
        f"dimension, channels first, e.g. (3, 32, 32); got {input_shape!r}"
    )
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Iterable):
        raise error
    try:
        shape = tuple(integer(d, "input_shape") for d in input_shape)
    except ValueError:
        raise error from None
    if not shape or not all(d > 0 for d in shape):
        raise error
    return shape


def is_binary(mask: torch.Tensor) -> bool:
    """Whether ``mask`` is boolean or holds only 0s and 1s (what a mask may hold).

    >>> is_binary(torch.tensor([0.0, 1.0])), is_binary(torch.tensor([2.0]))
    (True, False)
    """
    return mask.dtype == torch.bool or bool(((mask == 0) | (mask == 1)).all())


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of a floating tensor is finite. One sum decides where it is
    finite (a NaN or inf makes it NaN or inf), in the tensor's dtype for float32 and
    float64 (a float64 sum of float32 values is about 10x slower on a CPU) and in float64
    for narrower dtypes (65,536 values of 1.0 overflow float16); each entry is tested
    only when the sum is not finite (it may have overflowed).

    >>> all_finite(torch.full((65536,), 1.0, dtype=torch.float16))  # its float16 sum is inf
    True
    >>> all_finite(torch.tensor([1.0, float("nan")]))
    False
    """
    tensor = tensor.detach()
    wide = tensor.dtype in (torch.float32, torch.float64)
    total = tensor.sum() if wide else tensor.sum(dtype=torch.float64)
    return math.isfinite(float(total)) or bool(tensor.isfinite().all())


def describe_non_finite(name: str, tensor: torch.Tensor, unit: str) -> str:
    """``"name (a NaN, b inf of n unit)"``: the counts an error about a non-finite tensor
    names.

    >>> describe_non_finite("w", torch.tensor([1.0, float("nan"), float("inf")]), "scores")
    'w (1 NaN, 1 inf of 3 scores)'
    """
    return (f"{name} ({int(tensor.isnan().sum())} NaN, {int(tensor.isinf().sum())} inf of "
            f"{tensor.numel()} {unit})")
