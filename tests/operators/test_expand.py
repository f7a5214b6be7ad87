"""Expand / ExpandGradient and ExpandDims / Squeeze against NumPy broadcasting."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op


@given(st.lists(st.integers(1, 3), max_size=3), st.data())
def test_expand_matches_numpy_ones_product(x_shape, data):
    # a target shape that broadcasts: per right-aligned dim, 1, -1, or X's dim; extra leading dims
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    tail = [data.draw(st.sampled_from([1, -1, d])) for d in x_shape]
    shape = np.array(lead + tail, np.int64)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    (y,) = run_op("Expand", {"X": x, "shape": shape}, "Y")
    want = x * np.ones(np.abs(shape))
    assert y.shape == want.shape
    np.testing.assert_array_equal(y, want)
    (dx,) = run_op("ExpandGradient", {"dY": np.ones_like(y), "X": x}, "dX")
    np.testing.assert_allclose(dx, np.full(x.shape, y.size / max(x.size, 1)))


def test_expand_gradient_and_errors():
    x = np.random.default_rng(1).standard_normal((3, 1)).astype(np.float64)
    check_gradient(core.CreateOperator("Expand", ["X", "s"], ["Y"]),
                   [x, np.array([2, 3, 4], np.int64)], 0)
    assert_fails_unchanged(core.CreateOperator("Expand", ["X", "s"], ["Y"]),
                           {"X": x, "s": np.array([2, 4], np.int64)}, EnforceError,
                           "cannot be broadcast")


@given(st.lists(st.integers(1, 3), max_size=3), st.data())
def test_expand_dims_then_squeeze(shape, data):
    n = len(shape)
    dims = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=3))
    x = np.zeros(shape, np.float32)
    unique = sorted(set(dims))
    if unique[-1] >= n + len(unique):
        return
    (y,) = run_op("ExpandDims", {"X": x}, "Y", dims=dims)
    assert y.shape == np.expand_dims(x, tuple(unique)).shape
    (z,) = run_op("Squeeze", {"Y": y}, "Z", dims=dims)
    assert z.shape == x.shape


def test_squeeze_checks_and_gradients():
    x = np.random.default_rng(3).standard_normal((2, 1, 3)).astype(np.float64)
    check_gradient(core.CreateOperator("Squeeze", ["X"], ["Y"], dims=[1]), [x], 0)
    check_gradient(core.CreateOperator("ExpandDims", ["X"], ["Y"], dims=[0, 4]), [x], 0)
    assert_fails_unchanged(core.CreateOperator("Squeeze", ["X"], ["Y"], dims=[0]), {"X": x},
                           EnforceError, "dim 0 .* must be 1 instead of 2")
    assert_fails_unchanged(core.CreateOperator("Squeeze", ["X"], ["Y"], dims=[5]), {"X": x},
                           EnforceError, "at least 6 dims")
    assert_fails_unchanged(core.CreateOperator("ExpandDims", ["X"], ["Y"], dims=[-1]),
                           {"X": x}, EnforceError, "non-negative")
    net = core.Net("dims")
    net.ExpandDims("X", "Y", dims=[0])
    net.Squeeze("Y", "Z", dims=[0, 2])
    shapes, _ = workspace.InferShapesAndTypes([net], {"X": [2, 1, 3]})
    assert shapes["Y"] == [1, 2, 1, 3] and shapes["Z"] == [2, 3]
