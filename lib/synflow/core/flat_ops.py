"""Bookkeeping on long flat tensors: comparisons with a number, counts (of True entries, of
entries equal to a number), the positions of True entries, an assignment at positions and
the k-th smallest values, through NumPy for CPU tensors and torch elsewhere.

The pruning loop does these on millions of scores every iteration (and the analyses on
the 143.7M scores of the ImageNet VGG-19), and on the CPU torch's kernels for most of them
are several times slower than NumPy's, most of all on one thread (the way ``make
reproduce`` runs); ``python benchmarks/flat_ops_speed.py`` prints the ratio of each. The
results are the same: IEEE comparisons of the same values (the number rounded to the
values' dtype, as torch does; integer and bool values are compared by torch), positions
ascending. Inputs are 1-D and contiguous or strided; NumPy takes CPU tensors of the
dtypes it has (bool, float32, float64, int32, int64) outside autograd, and torch the rest
(bfloat16, float16, CUDA).
"""

from __future__ import annotations

import numpy as np
import torch

_NUMPY_DTYPES = {torch.bool, torch.float32, torch.float64, torch.int32, torch.int64}


def _array(tensor):
    """The tensor's NumPy view (no copy), or None where NumPy cannot take it."""
    if tensor.device.type == "cpu" and tensor.dtype in _NUMPY_DTYPES and not tensor.requires_grad:
        return tensor.numpy()
    return None


def _floating_array(tensor):
    """:func:`_array` for floating tensors only: NumPy would compare integers and bools
    with a float after converting the float to their dtype, torch in floating point."""
    return _array(tensor) if tensor.is_floating_point() else None


def nonzero(mask: torch.Tensor) -> torch.Tensor:
    """The positions of ``mask``'s True entries, ascending, as int64 (``mask`` 1-D bool).

    >>> nonzero(torch.tensor([False, True, True, False])).tolist()
    [1, 2]
    """
    array = _array(mask)
    if array is None:
        return torch.nonzero(mask).flatten()
    return torch.from_numpy(np.flatnonzero(array))


def greater(values: torch.Tensor, threshold: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """``values > threshold`` as a bool tensor (written into ``out``, a bool tensor like
    ``values``, if given); ``threshold`` is compared in ``values``' dtype, as torch does
    (integer and bool values go to torch, which compares them with a float as floats).

    >>> greater(torch.tensor([0.5, 2.0, 1.0]), 1.0).tolist()
    [False, True, False]
    """
    array, target = _floating_array(values), None if out is None else _array(out)
    if array is None or (out is not None and target is None):
        return torch.gt(values, threshold, out=out) if out is not None else values > threshold
    if out is None:
        out = torch.empty(values.shape, dtype=torch.bool)
        target = out.numpy()
    with np.errstate(over="ignore"):  # 1e300 is inf in float32, as in torch
        np.greater(array, array.dtype.type(threshold), out=target)
    return out


def put(target: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> None:
    """``target[positions] = values`` in place (``target`` 1-D, ``positions`` int32 or
    int64, ``values`` of ``target``'s dtype and ``positions``' length); other arguments
    take torch's path and its errors (another dtype of ``values`` is refused, not cast).

    >>> target = torch.zeros(4, dtype=torch.bool)
    >>> put(target, torch.tensor([0, 2, 3]), torch.tensor([True, False, True]))
    >>> target.tolist()
    [True, False, False, True]
    """
    arrays = _array(target), _array(positions), _array(values)
    if any(array is None for array in arrays) or values.dtype != target.dtype \
            or positions.dtype not in (torch.int32, torch.int64):
        target[positions.long() if positions.dtype == torch.int32 else positions] = values
    else:
        arrays[0][arrays[1]] = arrays[2]


def count(mask: torch.Tensor) -> int:
    """The number of nonzero (True) entries of a 1-D tensor.

    >>> count(torch.tensor([True, False, True]))
    2
    """
    array = _array(mask)
    return int(np.count_nonzero(array)) if array is not None else int(torch.count_nonzero(mask))


def count_equal(values: torch.Tensor, value: float) -> int:
    """The number of entries of a 1-D tensor equal to ``value`` (compared as :func:`greater`
    compares).

    >>> count_equal(torch.tensor([1.0, 2.0, 1.0]), 1.0)
    2
    """
    array = _floating_array(values)
    if array is None:
        return int(torch.count_nonzero(values == value))
    with np.errstate(over="ignore"):
        return int(np.count_nonzero(array == array.dtype.type(value)))


def kth_smallest(values: torch.Tensor, k: int) -> float:
    """The ``k``-th smallest entry (1-based) of a 1-D tensor, without sorting it.

    >>> kth_smallest(torch.tensor([3.0, 1.0, 2.0]), 2)
    2.0
    """
    return order_statistics(values, [k])[0]


def order_statistics(values: torch.Tensor, ks: list[int]) -> list[float]:
    """The ``ks``-th smallest entries (1-based) of a 1-D tensor, in one partial sort.

    >>> order_statistics(torch.tensor([3.0, 1.0, 2.0, 0.0]), [1, 4])
    [0.0, 3.0]
    """
    array = _array(values)
    if array is None or not ks:
        return [float(torch.kthvalue(values, k).values) for k in ks]
    parted = np.partition(array, [k - 1 for k in ks])
    return [float(parted[k - 1]) for k in ks]
