"""The main job's fast paths give the bits of the plain NumPy formulas they replace.

* ReluGradient selects dY's bits with a mask instead of ``np.where``;
* Relu compares against a cached zero of the input's dtype;
* FC / FCGradient compute a product over an inner dimension of 1 as a broadcast
  multiply;
* Concat / Split copy large slices as whole records.
Each is checked against the plain NumPy expression, written here, on the values
where a shortcut could differ (signed zeros, NaN, infinities) and on both sides
of the size thresholds.
"""

import numpy as np
import pytest

from caffe2lite import workspace
from helpers import run_op

F = np.float32
SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3e38])


def bits(a):
    return a.dtype, a.shape, a.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_gradient_is_where_bit_for_bit(dtype):
    y, dy = np.meshgrid(SPECIAL, SPECIAL)
    y, dy = y.astype(dtype), dy.astype(dtype)
    (got,) = run_op("ReluGradient", {"Y": y, "dY": dy}, "dX")
    assert bits(got) == bits(np.where(y > 0, dy, dtype(0)))


def test_relu_gradient_scalars():
    for y, dy in ((F(2.0), F(-0.0)), (F(-1.0), F(3.0)), (F(np.nan), F(1.0))):
        (got,) = run_op("ReluGradient", {"Y": np.array(y), "dY": np.array(dy)}, "dX")
        assert bits(got) == bits(np.asarray(np.where(y > 0, dy, F(0))))


def test_relu_gradient_mixed_dtypes_and_views():
    y = np.linspace(-1, 1, 24, dtype=np.float64).reshape(4, 6)[:, ::2]
    dy = np.arange(12, dtype=F).reshape(4, 3) - 5
    (got,) = run_op("ReluGradient", {"Y": y, "dY": dy}, "dX")
    assert bits(got) == bits(np.where(y > 0, dy, F(0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int8, np.uint16])
def test_relu_is_maximum_with_zero_for_every_dtype(dtype):
    x = (SPECIAL if np.dtype(dtype).kind == "f" else np.arange(-3, 4)).astype(dtype)
    for _ in range(2):  # the second run reads the cached zero
        (got,) = run_op("Relu", {"X": x}, "Y")
        assert bits(got) == bits(np.maximum(x, dtype(0)))


@pytest.mark.parametrize("m,k,n", [(7, 1, 5), (300, 4, 1), (2048, 64, 32), (5, 3, 2)])
def test_fc_and_its_gradient_match_matmul(m, k, n):
    """(m, k, n) covers K = 1 and N = 1 (broadcast products) and the main job's large
    shape; the reference is the plain matmul formula."""
    rng = np.random.default_rng(m * k * n)
    x, w, b = (rng.standard_normal(s).astype(F) for s in ((m, k), (n, k), (n,)))
    dy = rng.standard_normal((m, n)).astype(F)
    (y,) = run_op("FC", {"X": x, "W": w, "b": b}, "Y")
    assert bits(y) == bits(x @ w.T + b)
    dw, db, dx = run_op("FCGradient", {"X": x, "W": w, "dY": dy}, ["dW", "db", "dX"])
    assert bits(dw) == bits(dy.T @ x)
    assert bits(db) == bits(dy.sum(axis=0))
    assert bits(dx) == bits(dy @ w)


@pytest.mark.parametrize("shape,axis", [((8192, 32), 1), ((3, 4096, 40), 1), ((64, 8, 600), 2),
                                        ((40, 3), 1)])
def test_concat_and_split_copy_exactly(shape, axis):
    rng = np.random.default_rng(len(shape))
    widths = [shape[axis], 2 * shape[axis] // 3 + 1, 1]
    parts = []
    for width in widths:
        part_shape = list(shape)
        part_shape[axis] = width
        parts.append(rng.standard_normal(part_shape).astype(F))
    names = [f"p{i}" for i in range(len(parts))]
    joined, info = run_op("Concat", dict(zip(names, parts)), ["joined", "info"], axis=axis)
    assert bits(joined) == bits(np.concatenate(parts, axis=axis))
    np.testing.assert_array_equal(info, widths)
    outs = run_op("Split", {"joined": joined, "info": info}, [f"q{i}" for i in names], axis=axis)
    held = workspace.current().blob_dict
    for name, got, want in zip(names, outs, parts):
        assert bits(got) == bits(want) and held["q" + name].flags.c_contiguous
        assert not np.shares_memory(held["q" + name], held["joined"])  # copies, not views


def test_native_dense_helpers_and_their_numpy_twins_agree():
    """The C column sums / relu gradient and the NumPy paths used without the C library."""
    from caffe2lite.operators import _native_dense
    from caffe2lite.operators.relu import _pass_where_positive

    rng = np.random.default_rng(2)
    x = rng.standard_normal((777, 33)).astype(F)
    x[:, 0] = -0.0  # a column of negative zeros sums to +0.0, as NumPy's does
    x[5, 1], x[6, 2], x[7, 3] = np.inf, np.nan, -np.inf
    y, dy = rng.choice(SPECIAL, (2, 50, 20)).astype(F)
    assert bits(_pass_where_positive(y, dy)) == bits(np.where(y > 0, dy, F(0)))
    if not _native_dense._lib:
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    assert bits(_native_dense.column_sums(x)) == bits(x.sum(axis=0))
    assert bits(_native_dense.relu_gradient(y, dy)) == bits(np.where(y > 0, dy, F(0)))
    assert _native_dense.column_sums(x[:, :1]) is None  # one column: NumPy sums pairwise
    assert _native_dense.relu_gradient(y.astype(np.float64), dy) is None


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float16, np.bool_, np.int8])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_of_many_rows_is_take(dtype, index_dtype):
    """Past GATHER_MIN_INDICES the C gather runs: rows of any width, 2-D indices,
    negative indices wrapping (Gather's default on axis 0)."""
    rng = np.random.default_rng(4)
    for shape in ((5000,), (700, 3), (300, 2, 5)):
        data = (rng.standard_normal(shape) * 50).astype(dtype)
        idx = rng.integers(-shape[0], shape[0], (40, 30)).astype(index_dtype)
        (got,) = run_op("Gather", {"DATA": data, "INDICES": idx}, "OUTPUT")
        assert bits(got) == bits(np.take(data, idx, axis=0))


def test_gather_of_many_rows_names_a_bad_index_and_writes_nothing():
    from caffe2lite import core
    from caffe2lite.errors import EnforceError
    from helpers import assert_unchanged, snapshot

    idx = np.arange(1000, dtype=np.int64) % 50
    idx[637] = 50
    workspace.FeedBlob("DATA", np.arange(50, dtype=np.int64))
    workspace.FeedBlob("INDICES", idx)
    before = snapshot()
    with pytest.raises(EnforceError, match=r"'INDICES'.*element 637 is 50, out of range"):
        workspace.RunOperatorOnce(core.CreateOperator("Gather", ["DATA", "INDICES"], ["OUT"]))
    assert_unchanged(before)
