"""SparseToDenseMask and its gradient against a dict-based loop over Caffe2's semantics."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.testing import check_gradient
from helpers import run_op

MASK = [7, 2, 11]


def reference(indices, values, default, lengths):
    """Row by row, entry by entry: a later id overwrites an earlier one."""
    rows = []
    offset = 0
    for n in lengths:
        row = {MASK.index(i): v for i, v in zip(indices[offset:offset + n],
                                                values[offset:offset + n]) if i in MASK}
        rows.append(([row.get(j, default) for j in range(len(MASK))],
                     [j in row for j in range(len(MASK))]))
        offset += n
    return rows


@given(st.lists(st.lists(st.sampled_from([7, 2, 11, 5, 2]), max_size=4), min_size=1,
                max_size=4), st.booleans(), st.booleans())
def test_matches_reference(rows, batched, flag):
    # A named second output holds the presence mask with or without
    # return_presence_mask (Caffe2 left it unwritten without the flag).
    if not batched:
        rows = rows[:1]
    indices = np.array([i for r in rows for i in r], np.int64)
    lengths = np.array([len(r) for r in rows], np.int32)
    values = np.arange(indices.size * 2, dtype=np.float32).reshape(-1, 2)
    default = np.array([-1.0, -2.0], np.float32)
    inputs = {"i": indices, "v": values, "d": default}
    if batched:
        inputs["l"] = lengths
    out, present = run_op("SparseToDenseMask", inputs, ["o", "p"], mask=MASK,
                          return_presence_mask=flag)
    want = reference(list(indices), list(values), default, lengths)
    want_out = np.array([[list(c) for c in r] for r, _ in want], np.float32)
    want_present = np.array([p for _, p in want])
    if not batched:
        want_out, want_present = want_out[0], want_present[0]
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(present, want_present)


def test_gradient_goes_to_the_winning_entry():
    indices = np.array([2, 7, 2, 5], np.int64)
    values = np.random.default_rng(0).standard_normal((4, 3))
    op = core.CreateOperator("SparseToDenseMask", ["i", "v", "d"], ["o"], mask=MASK)
    check_gradient(op, [indices, values, np.zeros(3)], 1)
    d_out = np.arange(9, dtype=np.float64).reshape(3, 3)
    (grad,) = run_op("SparseToDenseMaskGradient", {"i": indices, "g": d_out}, "dv", mask=MASK)
    np.testing.assert_array_equal(grad, [np.zeros(3), d_out[0], d_out[1], np.zeros(3)])


def test_shape_inference_and_errors():
    net = core.Net("stdm")
    net.SparseToDenseMask(["i", "v", "d", "l"], ["o", "p"], mask=MASK, return_presence_mask=1)
    shapes, types = workspace.InferShapesAndTypes([net], {"i": [5], "v": [5, 2], "d": [2],
                                                          "l": [3]})
    assert shapes["o"] == [3, 3, 2] and shapes["p"] == [3, 3]
    net.SparseToDenseMask(["i", "v", "d"], ["o2", "p2"], mask=MASK)  # no flag: mask all the same
    shapes, types = workspace.InferShapesAndTypes([net], {"i": [5], "v": [5, 2], "d": [2],
                                                          "l": [3]})
    assert shapes["p2"] == [3] and types["p2"] == caffe2_pb2.TensorProto.BOOL
    ok = {"i": np.array([2, -1, -1], np.int64), "v": np.ones((3, 2), np.float32),
          "d": np.zeros(2, np.float32)}
    op = core.CreateOperator("SparseToDenseMask", list(ok), ["o"], mask=MASK,
                             max_skipped_indices=3)
    assert_fails_unchanged(op, {**ok, "d": np.zeros(3, np.float32)}, EnforceError, "row shape")
    for name, value in ok.items():
        workspace.FeedBlob(name, value)
    workspace.CreateNet(_one_op_net(op))
    workspace.RunNet("skip")  # two negative ids skipped: under the limit of 3
    try:
        workspace.RunNet("skip")  # four skipped over the op's lifetime
    except EnforceError as e:
        assert "Too many sparse indices skipped" in str(e)
    else:
        raise AssertionError("the skip limit was not enforced over the op's lifetime")
    assert_fails_unchanged(core.CreateOperator("SparseToDenseMask", list(ok), ["o"],
                                               mask=[1, 1]), ok, EnforceError, "duplicated")


def _one_op_net(op):
    net = core.Net("skip")
    net.Proto().op.extend([op])
    return net
