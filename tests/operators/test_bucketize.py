"""Bucketize, Percentile and PiecewiseLinearTransform against loops over Caffe2's
documented semantics (bisect for std::lower_bound)."""

import bisect

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op

small = st.integers(-6, 6).map(lambda v: v / 2)


@given(st.lists(small, max_size=5), st.lists(small, min_size=1, max_size=8))
def test_bucketize(edges, values):
    edges = sorted(edges)
    x = np.array(values, np.float32).reshape(-1, 1)
    (out,) = run_op("Bucketize", {"x": x}, "o", boundaries=edges)
    assert out.dtype == np.int32 and out.shape == x.shape
    np.testing.assert_array_equal(out[:, 0], [bisect.bisect_left(edges, v) for v in values])


def test_bucketize_documented_and_unsorted():
    (out,) = run_op("Bucketize", {"x": np.array([2, 4, 1], np.float32)}, "o",
                    boundaries=[0.1, 2.5])
    np.testing.assert_array_equal(out, [1, 2, 1])
    assert_fails_unchanged(core.CreateOperator("Bucketize", ["x"], ["o"], boundaries=[2, 1]),
                           {"x": np.ones(2, np.float32)}, EnforceError, "increasing")


def _percentile_reference(x, samples, pcts):
    k = bisect.bisect_left(samples, x)
    if k == len(samples):
        return 1.0
    if x == samples[k]:
        return pcts[k]
    if k == 0:
        return 0.0
    t = (x - samples[k - 1]) / (samples[k] - samples[k - 1])
    return pcts[k - 1] + t * (pcts[k] - pcts[k - 1])


@given(st.lists(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 10)), min_size=0,
                         max_size=4), min_size=1, max_size=3), st.data())
def test_percentile(columns, data):
    columns = [sorted({v: p / 10 for v, p in c}.items()) for c in columns]
    n = data.draw(st.integers(1, 3))
    x = np.array(data.draw(st.lists(st.integers(-1, 9), min_size=n * len(columns),
                                    max_size=n * len(columns))), np.float32).reshape(n, -1)
    pairs = np.array([p for c in columns for p in c], np.float32).reshape(-1, 2)
    lengths = np.array([len(c) for c in columns], np.int32)
    (out,) = run_op("Percentile", {"x": x, "p": pairs, "l": lengths}, "o")
    want = [[_percentile_reference(float(x[i, j]), [v for v, _ in c], [p for _, p in c])
             for j, c in enumerate(columns)] for i in range(n)]
    np.testing.assert_allclose(out, np.array(want, np.float32), rtol=1e-6, atol=1e-6)


def test_percentile_documented_example():
    (out,) = run_op("Percentile", {"x": np.array([[3, 5, 3], [5, 1, 6]], np.float32),
                                   "p": np.array([[3, .2], [5, .5], [1, .3], [3, .6]],
                                                 np.float32),
                                   "l": np.array([2, 1, 1], np.int32)}, "o")
    np.testing.assert_allclose(out, [[0.2, 1.0, 0.6], [0.5, 0.3, 1.0]])


def _piecewise_reference(x, bounds, slopes, intercepts):
    if x <= bounds[0]:
        return slopes[0] * bounds[0] + intercepts[0]
    if x >= bounds[-1]:
        return slopes[-1] * bounds[-1] + intercepts[-1]
    k = bisect.bisect_left(bounds, x) - 1
    return slopes[k] * x + intercepts[k]


@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 99), st.booleans())
def test_piecewise_linear_transform(groups, pieces, seed, as_inputs):
    rng = np.random.default_rng(seed)
    bounds = np.sort(rng.integers(0, 5, (groups, pieces + 1)), axis=1).astype(np.float32)
    slopes = rng.standard_normal((groups, pieces)).astype(np.float32)
    intercepts = rng.standard_normal((groups, pieces)).astype(np.float32)
    x = (rng.integers(-1, 6, (4, groups)) + 0.5 * rng.integers(0, 2)).astype(np.float32)
    if as_inputs:
        (y,) = run_op("PiecewiseLinearTransform", {"x": x, "b": bounds, "s": slopes,
                                                   "i": intercepts}, "y")
    else:
        (y,) = run_op("PiecewiseLinearTransform", {"x": x}, "y", bounds=bounds.ravel().tolist(),
                      slopes=slopes.ravel().tolist(), intercepts=intercepts.ravel().tolist())
    want = [[_piecewise_reference(x[i, j], bounds[j], slopes[j], intercepts[j])
             for j in range(groups)] for i in range(4)]
    np.testing.assert_allclose(y, np.array(want, np.float32), rtol=1e-5, atol=1e-6)


def test_piecewise_binary_and_errors():
    bounds, slopes, intercepts = [0.0, 0.5, 1.0], [1.0, 2.0], [0.0, -0.5]
    x = np.array([[0.8, 0.2], [0.3, 0.7]], np.float32)
    (y,) = run_op("PiecewiseLinearTransform", {"x": x}, "y", bounds=bounds, slopes=slopes,
                  intercepts=intercepts, binary=True)
    pos = [_piecewise_reference(v, bounds, slopes, intercepts) for v in (0.2, 0.7)]
    np.testing.assert_allclose(y, [[1 - pos[0], pos[0]], [1 - pos[1], pos[1]]], rtol=1e-6)
    op = core.CreateOperator("PiecewiseLinearTransform", ["x"], ["y"], bounds=[1.0, 0.0],
                             slopes=[1.0], intercepts=[0.0])
    assert_fails_unchanged(op, {"x": x[:, :1]}, EnforceError, "sorted")
    op = core.CreateOperator("PiecewiseLinearTransform", ["x"], ["y"], bounds=[0.0, 1.0])
    assert_fails_unchanged(op, {"x": x}, EnforceError, "all set or all not set")
