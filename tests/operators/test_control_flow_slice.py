"""If, IsEmpty and Slice against Caffe2's documented semantics (if_op.h, utility_ops,
slice_op.h), with the failures that must leave the workspace as it was."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

F = np.float32


def _branch(name, op_type, value):
    net = core.Net(name)
    net.Proto().op.add().CopyFrom(core.CreateOperator(op_type, ["x"], ["y"], **value))
    return net.Proto()


@pytest.mark.parametrize("cond,expected", [(True, 2.0), (False, -1.0)])
def test_if_runs_the_branch_in_the_workspace(cond, expected):
    workspace.FeedBlob("x", np.array([1.0, -1.0], F))
    workspace.FeedBlob("c", np.array(cond))
    op = core.CreateOperator("If", ["c", "x"], ["y"],
                             then_net=_branch("then", "Scale", {"scale": 2.0}),
                             else_net=_branch("else", "Scale", {"scale": -1.0}))
    workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.array([1.0, -1.0], F) * expected)


def test_if_without_else_and_a_failing_branch_changes_nothing():
    workspace.FeedBlob("x", np.array([1.0], F))
    workspace.FeedBlob("c", np.array([False]))
    workspace.RunOperatorOnce(core.CreateOperator(
        "If", ["c"], [], then_net=_branch("then", "Scale", {"scale": 2.0})))
    assert not workspace.HasBlob("y")
    bad = core.Net("bad")
    bad.Proto().op.add().CopyFrom(core.CreateOperator("Scale", ["x"], ["y"], scale=3.0))
    bad.Proto().op.add().CopyFrom(core.CreateOperator("Reshape", ["y"], ["z", "s"],
                                                      shape=[5]))  # 1 element -> 5: fails
    workspace.FeedBlob("c", np.array(True))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match="Reshape"):
        workspace.RunOperatorOnce(core.CreateOperator("If", ["c"], [], then_net=bad.Proto()))
    assert_unchanged(before)  # the Scale that ran inside the branch left nothing behind
    workspace.FeedBlob("c", np.array([1.0], F))
    with pytest.raises(EnforceError, match="bool tensor"):
        workspace.RunOperatorOnce(core.CreateOperator("If", ["c"], [], then_net=bad.Proto()))
    workspace.FeedBlob("c", np.array([True, False]))
    with pytest.raises(EnforceError, match="single value expected"):
        workspace.RunOperatorOnce(core.CreateOperator("If", ["c"], [], then_net=bad.Proto()))


def test_is_empty():
    for value, expected in ((np.zeros((0, 4), F), True), (np.ones(3, np.int64), False),
                            (workspace.Int8Tensor(np.zeros(0, np.uint8), 1.0, 0), True)):
        workspace.FeedBlob("x", value)
        workspace.RunOperatorOnce(core.CreateOperator("IsEmpty", ["x"], ["e"]))
        got = workspace.FetchBlob("e")
        assert got.dtype == np.bool_ and got.shape == () and bool(got) is expected


def slice_ref(data, starts, ends):
    index = []
    for i, size in enumerate(data.shape):
        if i >= len(starts):
            index.append(slice(None))
            continue
        s, e = starts[i], ends[i]
        s = size + 1 + s if s < 0 else s
        e = size + 1 + e if e < 0 else e
        index.append(slice(min(s, size), min(e, size)))
    return data[tuple(index)]


@pytest.mark.parametrize("starts,ends", [([0, 2], [-1, -1]), ([1], [3]), ([0, 1, 0], [-1, 4, -1]),
                                         ([0, -3], [-1, -2]), ([0, 5], [-1, 9])])
def test_slice_arguments_and_inputs(starts, ends):
    data = np.arange(2 * 5 * 3, dtype=F).reshape(2, 5, 3)
    expected = slice_ref(data, starts, ends)
    op = core.CreateOperator("Slice", ["data"], ["out"], starts=starts, ends=ends)
    check_reference(op, [data], lambda d: (expected,))
    op = core.CreateOperator("Slice", ["data", "s", "e"], ["out"])
    check_reference(op, [data, np.array(starts, np.int32), np.array(ends, np.int64)],
                    lambda *a: (expected,))


def test_slice_gradient_and_refusals():
    data = np.random.default_rng(0).standard_normal((3, 4)).astype(F)
    op = core.CreateOperator("Slice", ["data"], ["out"], starts=[0, 1], ends=[-1, 3])
    check_gradient(op, [data], input_index=0)
    workspace.FeedBlob("d", data)
    before = snapshot()
    for starts, ends, message in (([1, 1], [2, 2], "only possible to slice in 1 dimension"),
                                  ([3], [1], "not a range"), ([0, 0, 0], [1, 1, 1], "more entries")):
        with pytest.raises(EnforceError, match=message):
            workspace.RunOperatorOnce(core.CreateOperator("Slice", ["d"], ["o"], starts=starts,
                                                          ends=ends))
    assert_unchanged(before)
