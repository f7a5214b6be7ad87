"""GatherRanges and GatherRangesToDense against NumPy loops and Caffe2's documented examples."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.runtime import NO_GRADIENT, registry
from helpers import run_op


@st.composite
def ranges_case(draw):
    size = draw(st.integers(0, 10))
    n, m = draw(st.integers(0, 4)), draw(st.integers(1, 3))
    pairs = []
    for _ in range(n * m):
        start = draw(st.integers(0, size))
        pairs.append((start, draw(st.integers(0, size - start))))
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    return np.arange(size, dtype=np.float32) * 1.5, np.array(pairs, dtype).reshape(n, m, 2)


@given(ranges_case())
def test_gather_ranges(case):
    data, ranges = case
    pieces = [data[s:s + l] for s, l in ranges.reshape(-1, 2)]
    want = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    out, lengths = run_op("GatherRanges", {"data": data, "ranges": ranges}, ["out", "len"])
    assert out.dtype == data.dtype and lengths.dtype == np.int32
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(lengths, ranges[..., 1].sum(axis=1).astype(np.int32))


def test_gather_ranges_documented_example_and_errors():
    data = np.array([1, 2, 3, 4, 5, 6], np.int64)
    ranges = np.array([[[0, 1], [2, 2]], [[4, 1], [5, 1]]], np.int32)
    out, lengths = run_op("GatherRanges", {"d": data, "r": ranges}, ["o", "l"])
    np.testing.assert_array_equal(out, [1, 3, 4, 5, 6])
    np.testing.assert_array_equal(lengths, [3, 2])
    op = core.CreateOperator("GatherRanges", ["d", "r"], ["o", "l"])
    assert_fails_unchanged(op, {"d": data, "r": np.array([[[5, 2]]], np.int32)}, EnforceError,
                           "'r'.*\\(5, 2\\) of example 0, feature 0.*size 6")
    assert_fails_unchanged(op, {"d": data, "r": np.zeros((2, 2), np.int32)}, EnforceError,
                           "shape \\(N, M, 2\\)")
    assert_fails_unchanged(op, {"d": data.reshape(2, 3), "r": ranges}, EnforceError, "1-D")
    assert registry.get_schema("GatherRanges").gradient is None


def ref_to_dense(data, ranges, widths, key=None):
    outs = [np.zeros((ranges.shape[0], w), data.dtype) for w in widths]
    for i in range(ranges.shape[0]):
        for j, w in enumerate(widths):
            s, n = ranges[i, j]
            if n != w:
                continue
            vals = data[s:s + n]
            if key is not None:
                vals = vals[np.argsort(key[s:s + n], kind="stable")]
            outs[j][i] = vals
    return outs


def test_gather_ranges_to_dense_documented_examples():
    data = np.arange(1, 9, dtype=np.float32)
    ranges = np.array([[[2, 4], [0, 2]], [[0, 0], [6, 2]]], np.int64)
    got = run_op("GatherRangesToDense", {"d": data, "r": ranges}, ["a", "b"], lengths=[4, 2])
    np.testing.assert_array_equal(got[0], [[3, 4, 5, 6], [0, 0, 0, 0]])
    np.testing.assert_array_equal(got[1], [[1, 2], [7, 8]])
    key = np.array([0, 1, 3, 2, 1, 0, 1, 0], np.int64)
    got = run_op("GatherRangesToDense", {"d": data, "r": ranges, "k": key}, ["a", "b"],
                 lengths=[4, 2])
    np.testing.assert_array_equal(got[0], [[6, 5, 4, 3], [0, 0, 0, 0]])
    np.testing.assert_array_equal(got[1], [[1, 2], [8, 7]])


@given(ranges_case(), st.booleans())
def test_gather_ranges_to_dense_random(case, with_key):
    data, ranges = case
    widths = [2] * ranges.shape[1]
    key = np.random.default_rng(int(data.size)).integers(0, 3, data.size) if with_key else None
    inputs = {"d": data, "r": ranges}
    if with_key:
        inputs["k"] = key.astype(np.int64)
    outs = [f"o{j}" for j in range(len(widths))]
    got = run_op("GatherRangesToDense", inputs, outs, lengths=widths, max_mismatched_ratio=1.0)
    for g, w in zip(got, ref_to_dense(data, ranges, widths, key)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_gather_ranges_to_dense_mismatch_ratio_is_a_lifetime_count():
    data = np.arange(10, dtype=np.float32)
    mismatched = np.array([[[0, 3]]], np.int32)
    good = np.array([[[0, 2]]], np.int32)
    workspace.FeedBlob("d", data)
    net = core.Net("ranges")
    net.GatherRangesToDense(["d", "r"], ["o"], lengths=[2], min_observation=4,
                            max_mismatched_ratio=0.5)
    workspace.FeedBlob("r", mismatched)
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())  # 1 mismatch, max(1, 4) * 0.5 = 2 allowed
    workspace.FeedBlob("r", good)
    workspace.RunNet(net.Name())
    workspace.FeedBlob("r", mismatched)
    workspace.RunNet(net.Name())  # 2 mismatches of max(3, 4) * 0.5 = 2 allowed
    with pytest.raises(EnforceError, match="mismatch for feature at index 0.*\\(3/4\\)"):
        workspace.RunNet(net.Name())
    np.testing.assert_array_equal(workspace.FetchBlob("o"), [[0, 0]])  # last good run kept


def test_gather_ranges_to_dense_bad_inputs():
    data, ranges = np.arange(4, dtype=np.float32), np.array([[[0, 2]]], np.int64)
    with pytest.raises(SchemaError, match="'lengths' is required"):
        run_op("GatherRangesToDense", {"d": data, "r": ranges}, ["o"])
    op = core.CreateOperator("GatherRangesToDense", ["d", "r"], ["o", "p"], lengths=[2, 2])
    assert_fails_unchanged(op, {"d": data, "r": ranges}, EnforceError, "1 features.*2 outputs")
    op = core.CreateOperator("GatherRangesToDense", ["d", "r", "k"], ["o"], lengths=[2])
    assert_fails_unchanged(op, {"d": data, "r": ranges, "k": np.ones(4, np.int32)},
                           EnforceError, "'k'.*int64")
    op = core.CreateOperator("GatherRangesToDense", ["d", "r"], ["o"], lengths=[0])
    assert_fails_unchanged(op, {"d": data, "r": ranges}, EnforceError, "positive")
    assert registry.get_schema("GatherRangesToDense").gradient == NO_GRADIENT


def test_gather_ranges_shape_inference_follows_caffe2():
    # Caffe2 inferred OUTPUT as long as all of DATA and one int32 length per example
    from caffe2lite import core, workspace
    net = core.Net("gr")
    net.GatherRanges(["values", "ranges"], ["out", "lengths"])
    shapes, types = workspace.InferShapesAndTypes(
        [net], {"values": [64], "ranges": [3, 5, 2]},
        blob_types={"values": core.DataType.INT64, "ranges": core.DataType.INT32})
    assert shapes["out"] == [64] and types["out"] == core.DataType.INT64
    assert shapes["lengths"] == [3] and types["lengths"] == core.DataType.INT32
