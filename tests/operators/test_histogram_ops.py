"""Histogram and SelfBinningHistogram against loops over Caffe2's documented rules."""

import bisect

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op

values_st = st.lists(st.integers(-8, 8).map(lambda v: v / 2), max_size=12)


@given(values_st, values_st, st.sets(st.integers(-5, 5), min_size=2, max_size=6))
def test_histogram(a, b, edges):
    edges = sorted(float(e) for e in edges)
    (h,) = run_op("Histogram", {"a": np.array(a), "b": np.array(b)}, "h", bin_edges=edges)
    want = [0] * (len(edges) - 1)
    for v in a + b:
        k = bisect.bisect_right(edges, v)  # std::upper_bound
        if 0 < k < len(edges):
            want[k - 1] += 1
    np.testing.assert_array_equal(h, want)
    assert h.dtype == np.int64


def test_histogram_documented_and_errors():
    x = np.array([-2.0, -2.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0])
    (h,) = run_op("Histogram", {"x": x}, "h", bin_edges=[-2.0, -1.0, 0.0, 2.0, 5.0, 9.0])
    np.testing.assert_array_equal(h, [2, 0, 4, 3, 1])
    op = core.CreateOperator("Histogram", ["x", "y"], ["h"], bin_edges=[0.0, 1.0])
    assert_fails_unchanged(op, {"x": x, "y": x.astype(np.float32)}, EnforceError,
                           "same type")
    op = core.CreateOperator("Histogram", ["x"], ["h"], bin_edges=[1.0, 1.0])
    assert_fails_unchanged(op, {"x": x}, EnforceError, "strictly increasing")


@given(st.lists(st.integers(-20, 20).map(float), min_size=1, max_size=20),
       st.integers(1, 6), st.sampled_from(["linear", "logarithmic"]),
       st.sampled_from([np.float32, np.float64]))
def test_self_binning_histogram(values, num_bins, spacing, dtype):
    x = np.array(values, dtype)
    edges, counts = run_op("SelfBinningHistogram", {"x": x}, ["e", "c"], num_bins=num_bins,
                           bin_spacing=spacing)
    assert edges.dtype == dtype and edges.shape == counts.shape == (num_bins + 1,)
    low, high = x.min(), x.max()
    if spacing == "logarithmic":
        low, high = max(low, dtype(1e-24)), max(high, dtype(1e-24))
    top = low + (high - low) * dtype(1.0001)
    assert edges[0] == low and np.isclose(edges[-1], top, rtol=1e-5)
    assert counts.sum() == x.size
    if edges[-1] > high:
        want = np.zeros(num_bins + 1, np.int64)
        for v in x:
            k = bisect.bisect_right(list(edges), v)
            want[max(k - 1, 0)] += 1  # below the first edge counts in bin 0
        np.testing.assert_array_equal(counts, want)
        assert counts[-1] == 0
    else:  # every value equal: bin 0 holds all
        assert counts[0] == x.size


def test_self_binning_empty_and_bad_bins():
    edges, counts = run_op("SelfBinningHistogram", {"x": np.zeros(0)}, ["e", "c"],
                           num_bins=3)
    np.testing.assert_array_equal(counts, [0, 0, 0, 0])
    op = core.CreateOperator("SelfBinningHistogram", ["x"], ["e", "c"], num_bins=0)
    assert_fails_unchanged(op, {"x": np.ones(3)}, EnforceError, "Number of bins")


def test_self_binning_histogram_abs_bins_magnitudes():
    x = np.array([-3.0, -1.0, 0.5, 2.0])
    edges, counts = run_op("SelfBinningHistogram", {"x": x}, ["e", "c"], num_bins=2, abs=True)
    assert edges[0] == 0.5 and np.isclose(edges[-1], 0.5 + 2.5 * 1.0001)
    np.testing.assert_array_equal(counts, [2, 2, 0])  # |x| = 0.5, 1 | 2, 3 around 1.75
