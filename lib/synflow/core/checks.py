"""Checks of the public functions' arguments, each written once and made at the boundary."""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def sample_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` (one sample's shape, no batch dimension) as a tuple of ints.

    Raises:
        ValueError: naming the value, unless it is a non-empty sequence of positive
            integers (bools refused).
    """
    shape = tuple(input_shape)
    if not shape or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"input_shape must be one sample's shape: positive integers without the batch "
            f"dimension, channels first, e.g. (3, 32, 32); got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)
