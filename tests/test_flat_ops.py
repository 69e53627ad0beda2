"""synflow.core.flat_ops: NumPy's kernels for CPU tensors give exactly torch's results."""

import math

import pytest
import torch

from synflow.core import flat_ops


def values_with_ties(dtype, n=10_000):
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 20, (n,), generator=g).to(dtype)  # heavy ties
    values[: n // 2] = torch.randn(n // 2, generator=g).to(dtype)
    values[::97] = math.inf
    values[1::89] = -math.inf
    return values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("threshold", [0.0, 0.1, 7.0, 1e300, -math.inf, math.inf])
def test_greater_is_torchs_comparison(dtype, threshold):
    """Same booleans as torch's ``values > threshold``: the threshold compared in the
    values' dtype (0.1 rounds to float32's 0.1 there; 1e300 is inf), NumPy or not."""
    values = values_with_ties(dtype)
    expected = values > threshold
    assert torch.equal(flat_ops.greater(values, threshold), expected)
    out = torch.empty(values.numel(), dtype=torch.bool)
    assert flat_ops.greater(values, threshold, out=out) is out
    assert torch.equal(out, expected)
    strided = values[::3]
    assert torch.equal(flat_ops.greater(strided, threshold), strided > threshold)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("value", [0.0, 0.1, 7.0, 1e300, -math.inf, math.inf])
def test_count_equal_is_torchs_comparison(dtype, value):
    values = values_with_ties(dtype)
    assert flat_ops.count_equal(values, value) == int((values == value).sum())
    assert flat_ops.count_equal(values[::3], value) == int((values[::3] == value).sum())


@pytest.mark.parametrize("dtype", [torch.bool, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_put_is_torchs_index_assignment(dtype, index):
    g = torch.Generator().manual_seed(2)
    positions = torch.randperm(1000, generator=g)[:600].sort().values.to(index)
    values = (torch.rand(600, generator=g) < 0.5).to(dtype)
    target, expected = torch.zeros(1000, dtype=dtype), torch.zeros(1000, dtype=dtype)
    expected[positions.long()] = values
    flat_ops.put(target, positions, values)
    assert torch.equal(target, expected)


@pytest.mark.parametrize("values", [torch.tensor([0, 1, -1, 2]), torch.tensor([0, 3], dtype=torch.int32),
                                    torch.tensor([True, False])])
@pytest.mark.parametrize("number", [0.1, -1.5, 0.5, -1.0, 1.0, math.nan, math.inf, 1e300])
def test_integer_and_bool_values_are_compared_as_torch_does(values, number):
    """torch compares integers and bools with a float in floating point (NumPy would
    convert the float to their dtype first: 0.1 -> 0, or an error for NaN)."""
    assert torch.equal(flat_ops.greater(values, number), values > number)
    assert flat_ops.count_equal(values, number) == int((values == number).sum())


def test_put_refuses_values_of_another_dtype():
    with pytest.raises(RuntimeError, match="dtype"):
        flat_ops.put(torch.zeros(3, dtype=torch.bool), torch.tensor([0, 1]),
                     torch.tensor([0.5, 0.0]))


def test_greater_rounds_the_threshold_to_the_values_dtype():
    values = torch.tensor([0.1, 0.2], dtype=torch.float32)  # 0.1f > 0.1 in float64
    assert flat_ops.greater(values, 0.1).tolist() == [False, True]


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 1.0])
def test_nonzero_and_count_are_torchs(fraction):
    mask = torch.rand(100_003, generator=torch.Generator().manual_seed(1)) < fraction
    positions = flat_ops.nonzero(mask)
    assert positions.dtype == torch.int64
    assert torch.equal(positions, torch.nonzero(mask).flatten())
    assert flat_ops.count(mask) == int(mask.sum())
    assert torch.equal(flat_ops.nonzero(mask[1::2]), torch.nonzero(mask[1::2]).flatten())
    assert flat_ops.nonzero(torch.zeros(0, dtype=torch.bool)).numel() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kth_smallest_is_kthvalue(dtype):
    values = values_with_ties(dtype, 5_001)
    for k in (1, 2, 2_500, 5_000, 5_001):
        assert flat_ops.kth_smallest(values, k) == float(torch.kthvalue(values, k).values), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_order_statistics_are_kthvalues_in_one_call(dtype):
    values = values_with_ties(dtype, 5_001)
    ks = [1, 2, 2_500, 5_000, 5_001]
    assert flat_ops.order_statistics(values, ks) == [
        float(torch.kthvalue(values, k).values) for k in ks]
    assert flat_ops.order_statistics(values, [4_000, 3]) == [
        float(torch.kthvalue(values, k).values) for k in (4_000, 3)]  # any order
    assert flat_ops.order_statistics(values, []) == []


def test_tensors_that_require_grad_take_torchs_path():
    values = torch.tensor([1.0, 3.0], requires_grad=True)
    assert flat_ops.greater(values, 2.0).tolist() == [False, True]
