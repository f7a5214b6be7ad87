"""Do, CreateScope, HasScope and While, and brew.cond / brew.loop over them, against the
semantics of Caffe2's do_op.h, create_scope_op.h, while_op.h and control_ops_util.py:
results computed here in NumPy / plain Python, and failures that change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import brew, core, model_helper, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError, LimitExceeded
from helpers import assert_unchanged, snapshot

F = np.float32


def _net(name, *ops):
    net = core.Net("m2_" + name)  # a name no other test claims
    for op_type, inputs, outputs, args in ops:
        net.Proto().op.add().CopyFrom(core.CreateOperator(op_type, inputs, outputs, **args))
    return net.Proto()


def _stack(name="ws"):
    return workspace.current().blob_dict[name]


def test_do_binds_outer_blobs_and_keeps_its_own_private():
    body = _net("body", ("Add", ["X", "Y"], ["T"], {}),  # T is the body's own blob
                ("Mul", ["T", "T"], ["Z"], {}))
    workspace.FeedBlob("outer_x", np.array([1.0, 2.0], F))
    workspace.FeedBlob("outer_y", np.array([3.0, -4.0], F))
    net = core.Net("m2_outer")
    net.CreateScope([], "ws")
    net.Do(["outer_x", "outer_y", "ws"], ["outer_z", "ws"], net=body,
           inner_blobs=["X", "Y", "Z"], outer_blobs_idx=[0, 1, 2])
    workspace.RunNetOnce(net)
    x, y = np.array([1.0, 2.0], F), np.array([3.0, -4.0], F)
    np.testing.assert_array_equal(workspace.FetchBlob("outer_z"), (x + y) * (x + y))
    assert not workspace.HasBlob("T") and not workspace.HasBlob("Z")  # private / inner
    stack = _stack()
    assert stack.top == 0 and stack.workspaces[0].local.keys() == {"T"}
    workspace.RunOperatorOnce(core.CreateOperator("HasScope", ["ws"], ["has"]))
    assert workspace.FetchBlob("has").tolist() == [True]
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["ws"]))
    workspace.RunOperatorOnce(core.CreateOperator("HasScope", ["ws"], ["has"]))
    assert workspace.FetchBlob("has").tolist() == [False]
    assert _stack() is stack and len(stack.workspaces) == 1  # kept for reuse, as Caffe2


def test_do_sees_only_bound_blobs():
    workspace.FeedBlob("a", np.ones(2, F))
    workspace.FeedBlob("hidden", np.ones(2, F))
    body = _net("body", ("Add", ["A", "hidden"], ["B"], {}))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["ws"]))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match="hidden"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "Do", ["a", "ws"], ["b", "ws"], net=body, inner_blobs=["A", "B"],
            outer_blobs_idx=[0, 1]))
    assert_unchanged(before)
    assert _stack().top == -1 and not _stack().workspaces


def test_reuse_workspace_and_private_blobs_persist_between_runs():
    init = _net("init", ("ConstantFill", [], ["count"], {"shape": [1], "value": 0.0}))
    step = _net("step", ("Add", ["count", "one"], ["count"], {}),
                ("Copy", ["count"], ["out"], {}))
    workspace.FeedBlob("outer_one", np.ones(1, F))
    net = core.Net("m2_counting")
    net.CreateScope([], "ws")
    net.Do(["ws"], ["ws"], net=init, inner_blobs=[], outer_blobs_idx=[])
    for _ in range(3):  # runs in the same child workspace, where "count" lives
        net.Do(["outer_one", "ws"], ["outer_out", "ws"], net=step, inner_blobs=["one", "out"],
               outer_blobs_idx=[0, 1], reuse_workspace=True)
    workspace.RunNetOnce(net)
    assert workspace.FetchBlob("outer_out").tolist() == [3.0]
    assert _stack().top == 0 and len(_stack().workspaces) == 1


def test_gradient_do_pops_the_forward_workspace_with_its_blobs():
    forward = _net("fwd", ("Scale", ["x"], ["t"], {"scale": 3.0}),
                   ("Mul", ["t", "t"], ["y"], {}))
    backward = _net("bwd", ("Mul", ["t", "dy"], ["dx"], {}))  # reads the forward's t
    workspace.FeedBlob("x", np.array([2.0], F))
    workspace.FeedBlob("dy", np.array([0.5], F))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["ws"]))
    workspace.RunOperatorOnce(core.CreateOperator(
        "Do", ["x", "ws"], ["y", "ws"], net=forward, inner_blobs=["x", "y"],
        outer_blobs_idx=[0, 1]))
    grad_op = core.CreateOperator("Do", ["dy", "ws"], ["dx", "ws"], net=backward,
                                  inner_blobs=["dy", "dx"], outer_blobs_idx=[0, 1])
    grad_op.is_gradient_op = True
    workspace.RunOperatorOnce(grad_op)
    assert workspace.FetchBlob("dx").tolist() == [6.0 * 0.5]
    assert _stack().top == -1
    before = snapshot()
    with pytest.raises(EnforceError, match="Failed to initialize Do op workspace"):
        workspace.RunOperatorOnce(grad_op)  # nothing left to pop
    assert_unchanged(before)


def test_copy_external_blobs_keeps_each_runs_values():
    body = _net("body", ("Add", ["v", "v"], ["v"], {}))
    workspace.FeedBlob("v", np.array([1.0], F))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["ws"]))
    op = core.CreateOperator("Do", ["v", "ws"], ["v", "ws"], net=body, inner_blobs=["v"],
                             outer_blobs_idx=[0], copy_external_blobs=True)
    for _ in range(3):
        workspace.RunOperatorOnce(op)
    assert workspace.FetchBlob("v").tolist() == [8.0]
    kept = [child.local["v"].tolist() for child in _stack().workspaces]
    assert kept == [[2.0], [4.0], [8.0]] and _stack().top == 2


@pytest.mark.parametrize("args, inputs, outputs, match", [
    ({"inner_blobs": ["a"], "outer_blobs_idx": [0, 1]}, ["x", "ws"], ["y", "ws"],
     "different inner/outer blobs lengths"),
    ({"inner_blobs": ["a", "b"], "outer_blobs_idx": [0, 5]}, ["x", "ws"], ["y", "ws"],
     r"outer blob index \(5, inner name: b\) is out of bounds \[0, 1\]"),
    ({"inner_blobs": ["a", "b"], "outer_blobs_idx": [0, 0]}, ["x", "ws"], ["y", "ws"],
     "Reusage of outer name: x"),
    ({"inner_blobs": ["a"], "outer_blobs_idx": [0]}, ["x", "ws"], ["y", "ws"],
     "Not all outer names are used"),
    ({"inner_blobs": ["a", "b"], "outer_blobs_idx": [0, 1]}, ["x", "ws"], ["y", "other"],
     "Expected same input/output workspace blob"),
    ({"inner_blobs": ["a", "b"], "outer_blobs_idx": [0, 1], "reuse_workspace": True,
      "copy_external_blobs": True}, ["x", "ws"], ["y", "ws"], "simultaneously"),
])
def test_do_refuses_bad_bindings(args, inputs, outputs, match):
    workspace.FeedBlob("x", np.ones(1, F))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["ws"]))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["other"]))
    before = snapshot()
    body = _net("body", ("Copy", ["a"], ["b"], {}))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("Do", inputs, outputs, net=body, **args))
    assert_unchanged(before)


def test_do_and_has_scope_need_a_scope_blob():
    workspace.FeedBlob("x", np.ones(1, F))
    with pytest.raises(EnforceError, match="scope made by CreateScope"):
        workspace.RunOperatorOnce(core.CreateOperator("HasScope", ["x"], ["h"]))
    with pytest.raises(EnforceError, match="scope made by CreateScope"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "Do", ["x"], ["x"], net=_net("b", ("Copy", ["x"], ["y"], {})),
            inner_blobs=[], outer_blobs_idx=[]))


def test_while_runs_the_loop_until_the_condition_net_says_stop():
    # Python reference: count = 0; total = 1; while count < 5: total *= 3; count += 1
    cond = _net("cond", ("LT", ["count", "five"], ["go"], {}))
    body = _net("body", ("Mul", ["total", "three"], ["total"], {}),
                ("Add", ["count", "one"], ["count"], {}))
    for name, value in (("count", 0), ("five", 5), ("one", 1), ("total", 1), ("three", 3)):
        workspace.FeedBlob(name, np.array([value], np.int64))
    workspace.FeedBlob("go", np.array([False]))
    workspace.RunOperatorOnce(core.CreateOperator(
        "While", ["go", "count", "total"], ["count", "total"], loop_net=body, cond_net=cond))
    count, total = 0, 1
    while count < 5:
        total, count = total * 3, count + 1
    assert workspace.FetchBlob("total").tolist() == [total]
    assert workspace.FetchBlob("count").tolist() == [count]


def test_while_without_cond_net_and_failures_that_change_nothing():
    body = _net("body", ("Sub", ["n", "one"], ["n"], {}), ("GT", ["n", "zero"], ["go"], {}))
    workspace.FeedBlob("n", np.array([4], np.int32))
    workspace.FeedBlob("one", np.array([1], np.int32))
    workspace.FeedBlob("zero", np.array([0], np.int32))
    workspace.FeedBlob("go", np.array([True]))
    workspace.RunOperatorOnce(core.CreateOperator("While", ["go"], [], loop_net=body))
    assert workspace.FetchBlob("n").tolist() == [0] and workspace.FetchBlob("go").tolist() == [False]
    # a body failing on its third iteration: the two before leave no trace
    failing = _net("failing", ("Sub", ["n", "one"], ["n"], {}),
                   ("GT", ["n", "zero"], ["go"], {}),
                   ("Reshape", ["n"], ["r", "old_shape"], {"shape": [2]}))
    workspace.FeedBlob("n", np.array([5], np.int32))
    workspace.FeedBlob("go", np.array([True]))
    workspace.RunOperatorOnce(core.CreateOperator("CreateScope", [], ["unused"]))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match="Reshape"):
        workspace.RunOperatorOnce(core.CreateOperator("While", ["go"], [], loop_net=failing))
    assert_unchanged(before)
    for bad, match in ((np.array([1], np.int32), "bool tensor"),
                       (np.array([True, True]), "single value expected")):
        workspace.FeedBlob("go", bad)
        with pytest.raises(EnforceError, match=match):
            workspace.RunOperatorOnce(core.CreateOperator("While", ["go"], [], loop_net=body))


def test_while_stops_at_the_workspace_iteration_limit():
    spin = _net("spin", ("Add", ["n", "one"], ["n"], {}))
    workspace.FeedBlob("n", np.zeros(1, np.int64))
    workspace.FeedBlob("one", np.ones(1, np.int64))
    workspace.FeedBlob("go", np.array([True]))
    workspace.SetLimits(max_plan_iterations=50)
    try:
        before = snapshot()
        with pytest.raises(LimitExceeded, match="50 iterations"):
            workspace.RunOperatorOnce(core.CreateOperator("While", ["go"], [], loop_net=spin))
        assert_unchanged(before)
    finally:
        workspace.current().limits = None  # ResetWorkspace keeps limits


def test_brew_cond_runs_one_branch_in_its_own_scope():
    then_model = model_helper.ModelHelper(name="m2_then")
    then_model.net.Scale("x", "tmp", scale=2.0)  # tmp stays inside the branch
    then_model.net.Add(["tmp", "x"], "y")
    else_model = model_helper.ModelHelper(name="m2_else")
    else_model.net.Negative("x", "y")
    model = model_helper.ModelHelper(name="m2_cond")
    brew.cond(model, "c", ["x", "y"], then_model, else_model)
    types = [op.type for op in model.net.Proto().op]
    assert types == ["CreateScope", "CreateScope", "If"]
    x = np.array([1.5, -2.0], F)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("y", np.zeros(2, F))
    for flag, expected in ((True, 2 * x + x), (False, -x)):
        workspace.FeedBlob("c", np.array(flag))
        workspace.RunNetOnce(model.net)
        np.testing.assert_array_equal(workspace.FetchBlob("y"), expected)
    assert not workspace.HasBlob("tmp")


def test_brew_loop_sums_with_a_condition_model():
    # Python reference: i = 0; s = 0; while i < 4: i += 1; s += i * i
    cond_model = model_helper.ModelHelper(name="m2_loop_cond")
    cond_model.net.LT(["i", "four"], "c")
    body = model_helper.ModelHelper(name="m2_loop_body")
    body.net.Add(["i", "one"], "i")
    body.net.Mul(["i", "i"], "sq")  # local to each iteration's workspace
    body.net.Add(["s", "sq"], "s")
    model = model_helper.ModelHelper(name="m2_loop")
    brew.loop(model, "c", ["i", "s", "one", "four", "c"], body, cond_model)
    for name, value in (("i", 0), ("s", 0), ("one", 1), ("four", 4)):
        workspace.FeedBlob(name, np.array(value, np.int64))
    workspace.FeedBlob("c", np.array(False))
    workspace.RunNetOnce(model.net)
    i = s = 0
    while i < 4:
        i += 1
        s += i * i
    assert int(workspace.FetchBlob("s")) == s and int(workspace.FetchBlob("i")) == i
    assert not workspace.HasBlob("sq")
    workspace.FeedBlob("i", np.array(0, np.int64))  # the net runs again, reusing its scopes
    workspace.FeedBlob("s", np.array(0, np.int64))
    workspace.RunNetOnce(model.net)
    assert int(workspace.FetchBlob("s")) == s


def _feed(**blobs):
    for name, value in blobs.items():
        workspace.FeedBlob(name, value)


def test_gradient_through_brew_cond_takes_the_branch_that_ran():
    then_model = model_helper.ModelHelper(name="m2_then_g")
    then_model.net.Mul(["x", "w"], "y")
    else_model = model_helper.ModelHelper(name="m2_else_g")
    else_model.net.Add(["x", "x"], "y")
    model = model_helper.ModelHelper(name="m2_cond_g")
    brew.cond(model, "c", ["x", "w", "y"], then_model, else_model)
    loss = model.net.SumElements("y", "loss")
    grads = model.net.AddGradientOperators([loss])
    assert str(grads["x"]) == "x_grad" and str(grads["w"]) == "w_grad"
    x, w = np.array([1.0, 2.0], F), np.array([3.0, -1.0], F)
    for flag, dx, dw in ((True, w, x), (False, np.full(2, 2.0, F), np.zeros(2, F))):
        _feed(x=x, w=w, y=np.zeros(2, F), c=np.array(flag))
        workspace.RunNetOnce(model.net)  # d(sum(y))/dx and /dw of the branch taken
        np.testing.assert_array_equal(workspace.FetchBlob("x_grad"), dx)
        np.testing.assert_array_equal(workspace.FetchBlob("w_grad"), dw)


def test_gradient_through_brew_loop_chains_the_iterations():
    # s = s0 + n * w after n iterations: ds/ds0 = 1, ds/dw = n (summed over iterations)
    cond_model = model_helper.ModelHelper(name="m2_cond_lg")
    cond_model.net.LT(["i", "n"], "c")
    body = model_helper.ModelHelper(name="m2_body_lg")
    body.net.Add(["i", "one"], "i")
    body.net.Add(["s", "w"], "s")
    model = model_helper.ModelHelper(name="m2_loop_g")
    model.net.Copy("s0", "s")
    brew.loop(model, "c", ["i", "s", "w", "one", "n", "c"], body, cond_model)
    loss = model.net.SumElements("s", "loss")
    model.AddGradientOperators([loss])
    s0, w = np.array([1.0, 3.0], F), np.array([2.0, -1.5], F)
    for n in (3, 0):
        _feed(i=np.array(0, np.int64), one=np.array(1, np.int64), n=np.array(n, np.int64),
              w=w, s0=s0, c=np.array(False))
        workspace.RunNetOnce(model.net)
        np.testing.assert_array_equal(workspace.FetchBlob("s"), s0 + n * w)
        np.testing.assert_array_equal(workspace.FetchBlob("s0_grad"), np.ones(2, F))
        np.testing.assert_array_equal(workspace.FetchBlob("w_grad"), np.full(2, n, F))


def test_gradient_of_a_do_reads_the_forward_workspace():
    body = core.Net("m2_sq_body")
    body.Scale("a", "t", scale=3.0)  # private: the gradient Do reads it back
    body.Mul(["t", "t"], "b")
    net = core.Net("m2_do_grad")
    net.CreateScope([], "ws")
    net.Do(["x", "ws"], ["y", "ws"], net=body.Proto(), inner_blobs=["a", "b"],
           outer_blobs_idx=[0, 1])
    loss = net.SumElements("y", "loss")
    net.AddGradientOperators([loss])
    grad_do = [op for op in net.Proto().op if op.type == "Do" and op.is_gradient_op]
    assert len(grad_do) == 1
    x = np.array([0.5, -2.0], F)
    _feed(x=x)
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("x_grad"), 18 * x)  # d(9x^2)/dx
