"""TopK / TopKGradient against a NumPy reference written from Caffe2's documentation."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.testing import check_gradient
from helpers import run_op


def top_k_reference(x, k, axis):
    """Per column along axis: sort by (value desc, index asc), keep k, pad 0 / -1."""
    x = np.moveaxis(x, axis, -1)
    lead, n = x.shape[:-1], x.shape[-1]
    values = np.zeros(lead + (k,), x.dtype)
    indices = np.full(lead + (k,), -1, np.int64)
    for idx in np.ndindex(*lead):
        ranked = sorted(range(n), key=lambda i: (-float(x[idx + (i,)]), i))[:k]
        values[idx + (slice(0, len(ranked)),)] = [x[idx + (i,)] for i in ranked]
        indices[idx + (slice(0, len(ranked)),)] = ranked
    return np.moveaxis(values, -1, axis), np.moveaxis(indices, -1, axis)


def flat_reference(shape, indices, axis):
    """Position in X.reshape(-1) of each picked entry, -1 for padding."""
    grid = np.indices(indices.shape)
    grid[axis] = indices
    flat = np.ravel_multi_index(tuple(np.where(indices >= 0, g, 0) for g in grid), shape)
    return np.where(indices >= 0, flat, -1).reshape(-1)


@settings(max_examples=40)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.integers(-3, 3).map(float)),
       st.integers(1, 7), st.data())
def test_top_k_matches_reference(x, k, data):
    axis = data.draw(st.integers(-1, x.ndim - 1))
    values, indices, flat = run_op("TopK", {"X": x}, ["v", "i", "f"], k=k, axis=axis)
    want_v, want_i = top_k_reference(x, k, axis % x.ndim)
    np.testing.assert_array_equal(values, want_v)
    np.testing.assert_array_equal(indices, want_i)
    assert indices.dtype == np.int64 and flat.dtype == np.int64
    np.testing.assert_array_equal(flat, flat_reference(x.shape, want_i, axis % x.ndim))


def test_documented_example_ties_and_ints():
    x = np.array([[6, 7, 0], [8, 7, 7], [1, 5, 6]], np.int32)
    values, indices = run_op("TopK", {"X": x}, ["v", "i"], k=2)
    np.testing.assert_array_equal(values, [[7, 6], [8, 7], [6, 5]])
    np.testing.assert_array_equal(indices, [[1, 0], [0, 1], [2, 1]])  # tie: lower index first
    u = np.array([0, 255, 3], np.uint8)  # no negation overflow for unsigned ints
    np.testing.assert_array_equal(run_op("TopK", {"X": u}, ["v", "i"], k=3)[1], [1, 2, 0])


def test_top_k_gradient_scatters_values():
    rng = np.random.default_rng(0)
    x = rng.permutation(24).astype(np.float64).reshape(2, 3, 4) / 5
    for axis in (0, 1, -1):
        op = core.CreateOperator("TopK", ["X"], ["v", "i"], k=2, axis=axis)
        check_gradient(op, [x], 0, 0)
    dv = np.array([[1.0, 2.0, 3.0]], np.float32)
    idx = np.array([[2, 0, -1]], np.int64)
    (dx,) = run_op("TopKGradient", {"dv": dv, "i": idx, "x": np.zeros((1, 4), np.float32)},
                   "dx")
    np.testing.assert_array_equal(dx, [[2.0, 0.0, 1.0, 0.0]])


def test_shape_inference():
    net = core.Net("topk")
    net.Proto().op.extend([core.CreateOperator("TopK", ["X"], ["v", "i", "f"], k=3, axis=1)])
    shapes, types = workspace.InferShapesAndTypes([net], {"X": [2, 5, 4]})
    assert shapes["v"] == [2, 3, 4] and shapes["i"] == [2, 3, 4] and shapes["f"] == [24]


def test_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises((SchemaError, EnforceError)):
        workspace.RunOperatorOnce(core.CreateOperator("TopK", ["X"], ["v"], k=1))
    assert_fails_unchanged(core.CreateOperator("TopK", ["X"], ["v", "i"], k=0), {"X": x},
                           EnforceError, "'k' must be >= 1")
    assert_fails_unchanged(core.CreateOperator("TopK", ["X"], ["v", "i"], k=1, axis=2),
                           {"X": x}, EnforceError, "'axis' = 2 is out of range")
    assert_fails_unchanged(core.CreateOperator("TopK", ["X"], ["v", "i"], k=1),
                           {"X": np.array([b"a"], dtype=object)}, EnforceError, "numeric")
