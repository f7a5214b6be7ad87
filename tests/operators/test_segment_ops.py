"""Segment reductions by ids and lengths, and their gradients, against Python loops."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

REDUCERS = {
    "Sum": lambda rows: np.sum(rows, axis=0),
    "Mean": lambda rows: np.mean(rows, axis=0),
    "Max": lambda rows: np.max(rows, axis=0),
    "LogSumExp": lambda rows: np.log(np.sum(np.exp(rows), axis=0)),
    "LogMeanExp": lambda rows: np.log(np.mean(np.exp(rows), axis=0)),
}


def reduce_by_ids(rows, ids, count, how, weights=None):
    out = np.zeros((count,) + rows.shape[1:])
    for k in range(count):
        picked = [r * (1 if weights is None else weights[i])
                  for i, (r, s) in enumerate(zip(rows, ids)) if s == k]
        if picked:
            out[k] = REDUCERS[how](np.array(picked))
    return out


ids_st = st.lists(st.integers(0, 4), max_size=7)


@given(ids_st, st.booleans(), st.booleans(), st.sampled_from(["Sum", "Mean", "WeightedSum"]))
def test_segment_ops(ids, sort, sparse, name):
    ids = sorted(ids) if sort else ids
    n = len(ids)
    rng = np.random.default_rng(n)
    data = rng.standard_normal((6, 2)).astype(np.float32)
    indices = rng.integers(0, 6, n).astype(np.int64)
    rows = data[indices] if sparse else rng.standard_normal((n, 2)).astype(np.float32)
    weights = rng.random(n).astype(np.float32)
    inputs = {"d": data if sparse else rows}
    if name == "WeightedSum":
        inputs["w"] = weights
    if sparse:
        inputs["i"] = indices
    inputs["s"] = np.array(ids, np.int32)
    op_type = f"{'Sparse' if sparse else ''}{'Sorted' if sort else 'Unsorted'}Segment{name}"
    (out,) = run_op(op_type, inputs, "o")
    want = reduce_by_ids(rows, ids, max(ids, default=-1) + 1,
                         "Mean" if name == "Mean" else "Sum",
                         weights if name == "WeightedSum" else None)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=6).map(sorted),
       st.sampled_from(["Sum", "Mean", "Max", "LogSumExp", "LogMeanExp"]))
def test_sorted_segment_range_ops_and_gradients(ids, name):
    rng = np.random.default_rng(len(ids))
    data = rng.permutation(len(ids) * 2).astype(np.float64).reshape(-1, 2) / 4
    (out,) = run_op(f"SortedSegmentRange{name}", {"d": data, "s": np.array(ids, np.int32)}, "o")
    np.testing.assert_allclose(out, reduce_by_ids(data, ids, ids[-1] + 1, name), rtol=1e-6)
    op = core.CreateOperator(f"SortedSegmentRange{name}", ["d", "s"], ["o"])
    check_gradient(op, [data, np.array(ids, np.int32)], 0)


def test_gradients_of_id_and_lengths_ops():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 3))
    w = rng.random(5).astype(np.float32)
    for op_type, inputs in (
            ("SortedSegmentMean", [data, np.array([0, 0, 1, 3, 3], np.int64)]),
            ("UnsortedSegmentSum", [data, np.array([2, 0, 2, 1, 0], np.int32)]),
            ("UnsortedSegmentWeightedSum", [data, w, np.array([2, 0, 2, 1, 0], np.int32)]),
            ("LengthsWeightedSum", [data, w, np.array([2, 0, 3], np.int32)]),
            ("LengthsMax", [np.arange(15.0).reshape(5, 3)[::-1].copy(),
                            np.array([2, 0, 3], np.int32)])):
        op = core.CreateOperator(op_type, [f"in{i}" for i in range(len(inputs))], ["o"])
        check_gradient(op, inputs, 0)
    # the sparse forms give a GradientSlice over INDICES
    op = core.CreateOperator("SparseSortedSegmentSum", ["d", "i", "s"], ["o"])
    check_gradient(op, [data, np.array([4, 0, 4], np.int64), np.array([0, 1, 1], np.int32)], 0)


def test_lengths_max_and_positional_weights():
    data = np.array([[1, 5], [3, 2], [0, 0], [7, -1]], np.float32)
    (out,) = run_op("LengthsMax", {"d": data, "l": np.array([2, 0, 2], np.int32)}, "o")
    np.testing.assert_array_equal(out, [[3, 5], [0, 0], [7, 0]])
    w = np.array([10.0, 1.0], np.float32)
    (out,) = run_op("SparseLengthsPositionalWeightedSum",
                    {"d": data, "w": w, "i": np.array([3, 0, 1], np.int64),
                     "l": np.array([2, 1], np.int32)}, "o")
    np.testing.assert_allclose(out, [10 * data[3] + data[0], 10 * data[1]])


def test_num_segments_shapes_and_errors():
    data = np.ones((3, 2), np.float32)
    (out,) = run_op("UnsortedSegmentSum", {"d": data, "s": np.array([0, 2, 0], np.int32)},
                    "o", num_segments=5)
    np.testing.assert_array_equal(out, [[2, 2], [0, 0], [1, 1], [0, 0], [0, 0]])
    net = core.Net("seg")
    net.UnsortedSegmentSum(["d", "s"], "o", num_segments=5)
    net.LengthsMax(["d", "l"], "m")
    shapes, _ = workspace.InferShapesAndTypes([net], {"d": [3, 2], "s": [3], "l": [4]})
    assert shapes["o"] == [5, 2] and shapes["m"] == [4, 2]
    op = core.CreateOperator("SortedSegmentSum", ["d", "s"], ["o"])
    assert_fails_unchanged(op, {"d": data, "s": np.array([1, 0, 2], np.int32)}, EnforceError,
                           "must be sorted")
    assert_fails_unchanged(op, {"d": data, "s": np.array([0, 1], np.int32)}, EnforceError,
                           "one per row")
    op = core.CreateOperator("UnsortedSegmentSum", ["d", "s"], ["o"], num_segments=2)
    assert_fails_unchanged(op, {"d": data, "s": np.array([0, 2, 0], np.int32)}, EnforceError,
                           "num_segments")


def test_sorted_segment_range_gradient_reads_output_and_grad_by_their_size():
    # Caffe2 read OUTPUT and dOUT as flat rows of DATA's row size: a recurrent step
    # hands back its (1, D) output as a (1, 1, D) state slice (crf.CRFWithLoss does).
    data = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -2.0], [0.0, 1.0, 1.0]], np.float32)
    ids = np.zeros(3, np.int32)
    out = np.log(np.exp(data).sum(axis=0))
    d_out = np.array([0.3, -0.7, 1.1], np.float32)
    want = d_out * np.exp(data - out)  # d logsumexp / d x = softmax over the segment
    (grad,) = run_op("SortedSegmentRangeLogSumExpGradient",
                     {"d": data, "o": out.reshape(1, 1, 3).astype(np.float32),
                      "g": d_out.reshape(1, 1, 3), "s": ids}, "dd")
    np.testing.assert_allclose(grad, want, rtol=1e-5)
    assert grad.shape == data.shape
