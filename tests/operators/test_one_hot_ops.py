"""OneHot, SegmentOneHot, BatchOneHot, BatchBucketOneHot against loops over Caffe2's
documented semantics."""

import bisect

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import run_op


@given(st.lists(st.integers(0, 4), max_size=6), st.integers(0, 2))
def test_one_hot(indices, pad):
    size = max(indices, default=0) + 1 + pad
    (out,) = run_op("OneHot", {"i": np.array(indices, np.int64),
                               "s": np.array(size, np.int64)}, "o")
    want = np.zeros((len(indices), size), np.float32)
    for row, i in enumerate(indices):
        want[row, i] = 1
    np.testing.assert_array_equal(out, want)
    assert out.dtype == np.float32


@given(st.lists(st.lists(st.integers(0, 3), max_size=4), max_size=4))
def test_segment_one_hot(segments):
    lengths = np.array([len(s) for s in segments], np.int32)
    indices = np.array([i for s in segments for i in s], np.int64)
    (out,) = run_op("SegmentOneHot", {"l": lengths, "i": indices,
                                      "s": np.array(4, np.int64)}, "o")
    want = np.zeros((len(segments), 4), np.float32)
    for row, s in enumerate(segments):
        for i in s:
            want[row, i] = 1
    np.testing.assert_array_equal(out, want)


def test_batch_one_hot_documented_example():
    data = np.array([[2, 3], [4, 1], [2, 5]], np.int32)
    (out,) = run_op("BatchOneHot", {"d": data, "l": np.array([2, 3], np.int32),
                                    "v": np.array([2, 4, 1, 3, 5], np.int32)}, "o")
    np.testing.assert_array_equal(out, [[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])
    assert out.dtype == np.int32


def _bucket_reference(x, edges):
    """(lower_bound + upper_bound) // 2: a value on a repeated edge sits mid-repeats."""
    return (bisect.bisect_left(edges, x) + bisect.bisect_right(edges, x)) // 2


@given(st.lists(st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=4),
                min_size=1, max_size=3), st.data())
def test_batch_bucket_one_hot(edge_lists, data):
    edge_lists = [sorted(e) for e in edge_lists]
    n = data.draw(st.integers(0, 4))
    x = np.array(data.draw(st.lists(st.lists(st.integers(-4, 4).map(float),
                                             min_size=len(edge_lists),
                                             max_size=len(edge_lists)),
                                    min_size=n, max_size=n)), np.float32).reshape(n, len(edge_lists))
    lengths = np.array([len(e) for e in edge_lists], np.int32)
    edges = np.array([v for e in edge_lists for v in e], np.float32)
    (out,) = run_op("BatchBucketOneHot", {"d": x, "l": lengths, "b": edges}, "o")
    want = np.zeros((n, edges.size + lengths.size), np.float32)
    for i in range(n):
        offset = 0
        for j, e in enumerate(edge_lists):
            want[i, offset + _bucket_reference(x[i, j], e)] = 1
            offset += len(e) + 1
    np.testing.assert_array_equal(out, want)


def test_documented_bucket_example_and_shapes():
    data = np.array([[2, 3], [4, 1], [2, 5]], np.float32)
    (out,) = run_op("BatchBucketOneHot", {"d": data, "l": np.array([2, 3], np.int32),
                                          "b": np.array([0.1, 2.5, 1, 3.1, 4.5], np.float32)},
                    "o")
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 1, 0, 0], [0, 0, 1, 1, 0, 0, 0],
                                        [0, 1, 0, 0, 0, 0, 1]])
    net = core.Net("one_hot")
    net.BatchOneHot(["d", "l", "v"], "y")
    net.BatchBucketOneHot(["d", "l", "b"], "z")
    shapes, types = workspace.InferShapesAndTypes([net], {"d": [3, 2], "l": [2], "v": [5],
                                                          "b": [5]})
    assert shapes["y"] == [3, 5] and shapes["z"] == [3, 7]
    workspace.FeedBlob("d", data.astype(np.int32))
    workspace.FeedBlob("l", np.array([2, 3], np.int32))
    workspace.FeedBlob("v", np.zeros(5, np.int32))
    # no flops; reads d (6), l (2), v (5) int32s; writes the (3, 5) int32 output
    assert tuple(workspace.GetOperatorCost(net.Proto().op[0], ["d", "l", "v"])) == \
        (0, 60, 52)


def test_bad_inputs():
    op = core.CreateOperator("OneHot", ["i", "s"], ["o"])
    assert_fails_unchanged(op, {"i": np.array([3], np.int64), "s": np.array(3, np.int64)},
                           EnforceError, "outside \\[0, 3\\)")
    assert_fails_unchanged(op, {"i": np.array([0], np.int32), "s": np.array(3, np.int64)},
                           EnforceError, "int64")
    op = core.CreateOperator("BatchBucketOneHot", ["d", "l", "b"], ["o"])
    assert_fails_unchanged(op, {"d": np.ones((2, 2), np.float32),
                                "l": np.array([1, 0], np.int32),
                                "b": np.ones(1, np.float32)}, EnforceError, "positive")
    op = core.CreateOperator("BatchOneHot", ["d", "l", "v"], ["o"])
    assert_fails_unchanged(op, {"d": np.ones((2, 2), np.int32), "l": np.array([1], np.int32),
                                "v": np.ones(1, np.int32)}, EnforceError, "columns")
