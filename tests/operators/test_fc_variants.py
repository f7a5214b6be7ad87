"""PackedFC, FC_Decomp, FC_Prune, FC_Sparse (and their gradients), DepthSplit and
DepthConcat against NumPy written from Caffe2's sources (packed_fc_op.cc,
experiments/operators/fully_connected_op_*.h, concat_split_op.cc)."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import brew, core, model_helper, workspace
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

F = np.float32
RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.standard_normal(shape).astype(F)


def test_packed_fc_is_fc():
    x, w, b = rand(2, 3, 4), rand(5, 12), rand(5)
    op = core.CreateOperator("PackedFC", ["x", "w", "b"], ["y"])
    check_reference(op, [x, w, b], lambda x, w, b: (x.reshape(2, 12) @ w.T + b,))
    op = core.CreateOperator("PackedFC", ["x", "w", "b"], ["y"], axis=2)
    check_reference(op, [x, rand(5, 4), b], lambda x, w, b: (x @ w.T + b,))
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("w", rand(5, 3, 4))
    workspace.FeedBlob("b", b)
    before = snapshot()
    with pytest.raises(EnforceError, match="2-D"):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)
    net = core.Net("m2_packed")
    net.PackedFC(["x", "w", "b"], "y")
    with pytest.raises(Exception, match="PackedFC"):
        net.AddGradientOperators(["y"])


def test_fc_decomp_is_fc_with_w_equal_to_u_v_transposed():
    x, u, v, b = rand(3, 2, 3), rand(4, 2), rand(6, 2), rand(4)
    op = core.CreateOperator("FC_Decomp", ["x", "u", "v", "b"], ["y"])
    check_reference(op, [x, u, v, b], lambda x, u, v, b: (x.reshape(3, 6) @ (u @ v.T).T + b,))
    check_reference(op, [x[0, 0], u, rand(3, 2), b], lambda x, u, v, b: (x @ (u @ v.T).T + b,))
    for i in range(4):
        check_gradient(op, [x, u, v, b], i, threshold=1e-2)
    dy = rand(3, 4)
    grad = core.CreateOperator("FCGradient_Decomp", ["x", "u", "v", "dy"], ["du", "dv", "db"])
    x2 = x.reshape(3, 6)
    check_reference(grad, [x, u, v, dy], lambda x, u, v, dy: (
        dy.T @ x2 @ v, x2.T @ dy @ u, dy.sum(axis=0)), threshold=1e-5)


def test_fc_prune_forward_and_compression_rate():
    x, w, b = rand(3, 4), rand(2, 4), rand(2)
    mask = (RNG.random((2, 4)) > 0.25).astype(F)
    state = [np.zeros((2, 4), F), np.zeros((2, 4), F), np.array([0.01], F),
             np.array([0.05], F)]
    op = core.CreateOperator("FC_Prune", ["x", "w", "m", "b", "ag", "seq", "thres", "lb"],
                             ["y", "rate"])
    check_reference(op, [x, w, mask, b] + state,
                    lambda x, w, m, b, *_: (x @ w.T + b, np.float32(m.mean())))


def prune_gradient_ref(x, w, mask, dy, ag, thres, lb, runs):
    """Caffe2's FullyConnectedPruneGradientOp for ``runs`` runs (its counter starts at 0)."""
    w, mask, ag, seq = w.copy(), mask.copy(), ag.copy(), None
    for count in range(1, runs + 1):
        dw = (dy.T @ x) * (mask != 0)
        if mask.mean() > lb:
            if count % 100 == 0:
                pruned = [k for k, a in enumerate(ag.reshape(-1)) if a != 0 and abs(a) < thres]
                seq = np.zeros(w.size, F)
                seq[:len(pruned)] = pruned
                for k in pruned:
                    dw.reshape(-1)[k] = w.reshape(-1)[k] = mask.reshape(-1)[k] = 0
                ag = np.zeros_like(ag)
            else:
                ag = ag + dw
    return dw, dy.sum(axis=0), w, mask, ag, seq.reshape(w.shape), dy @ w


def test_fc_prune_gradient_prunes_every_hundredth_run():
    x = rand(4, 3)
    dy = rand(4, 2) * np.array([1.0, 1e-4], F)  # the second output's weights barely move
    w, mask = rand(2, 3), np.ones((2, 3), F)
    net = core.Net("m2_prune")
    net.FC_Prune(["x", "w", "m", "b", "ag", "seq", "thres", "lb"], "y")
    net.AddGradientOperators({"y": "dy"})
    grad_op = net.Proto().op[-1]
    assert grad_op.type == "FCGradient_Prune"
    assert list(grad_op.output) == ["w_grad", "b_grad", "w", "m", "ag", "seq", "x_grad"]
    step = core.Net("m2_step")
    step.Proto().op.extend([grad_op])
    for name, value in (("x", x), ("w", w), ("m", mask), ("dy", dy), ("ag", np.zeros((2, 3), F)),
                        ("seq", np.zeros((2, 3), F)), ("thres", np.array([0.05], F)),
                        ("lb", np.array([0.1], F))):
        workspace.FeedBlob(name, value)
    workspace.CreateNet(step)
    workspace.RunNet(step.Name(), num_iter=100)
    want = prune_gradient_ref(x, w, mask, dy, np.zeros((2, 3), F), 0.05, 0.1, 100)
    for name, expected in zip(["w_grad", "b_grad", "w", "m", "ag", "seq", "x_grad"], want):
        np.testing.assert_allclose(workspace.FetchBlob(name), expected, rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    assert workspace.FetchBlob("m")[1].sum() == 0 and workspace.FetchBlob("m")[0].all()


def test_fc_sparse_against_the_dense_product():
    dense = rand(4, 5) * (RNG.random((4, 5)) > 0.5)
    rows, cols = np.nonzero(dense)
    iw = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=4))]).astype(np.int32)
    xt, b = rand(5, 3), rand(4)
    op = core.CreateOperator("FC_Sparse", ["xt", "w", "iw", "jw", "b"], ["yt"])
    check_reference(op, [xt, dense[rows, cols], iw, cols.astype(np.int32), b],
                    lambda xt, *_: (dense @ xt + b[:, None],))
    workspace.FeedBlob("xt", xt)
    workspace.FeedBlob("w", dense[rows, cols])
    workspace.FeedBlob("iw", iw)
    workspace.FeedBlob("jw", np.full(cols.size, 5, np.int32))
    workspace.FeedBlob("b", b)
    before = snapshot()
    with pytest.raises(EnforceError, match="column indices outside"):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)


def test_depth_split_and_depth_concat_are_split_and_concat():
    x = rand(2, 6, 3)
    parts = np.split(x, [2, 6], axis=1)[:2]
    op = core.CreateOperator("DepthSplit", ["x"], ["a", "b"], split=[2, 4])
    check_reference(op, [x], lambda x: (x[:, :2], x[:, 2:]))
    check_gradient(op, [x], 0, output_index=1)
    op = core.CreateOperator("DepthConcat", ["a", "b"], ["y", "info"], order="NCHW")
    check_reference(op, [x[:, :2], x[:, 2:]], lambda a, b: (x, np.array([2, 4], np.int32)))
    check_gradient(op, parts, 1)


def test_brew_helpers_build_nets_that_run():
    model = model_helper.ModelHelper(name="m2_fcs")
    brew.packed_fc(model, "x", "packed", dim_in=4, dim_out=3)
    brew.fc_decomp(model, "x", "decomp", dim_in=4, dim_out=3, rank_approx=2)
    brew.fc_prune(model, "x", "pruned", dim_in=4, dim_out=3, need_compress_rate=True)
    brew.max_pool_with_index(model, "img", "pool", kernel=2, stride=2)
    brew.group_conv_deprecated(model, "img", "gconv", dim_in=4, dim_out=4, kernel=1, group=2)
    workspace.RunNetOnce(model.param_init_net)
    x = rand(2, 4)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("img", rand(1, 4, 4, 4))
    workspace.RunNetOnce(model.net)
    w, b = workspace.FetchBlob("packed_w"), workspace.FetchBlob("packed_b")
    np.testing.assert_allclose(workspace.FetchBlob("packed"), x @ w.T + b, rtol=1e-5)
    u, v = workspace.FetchBlob("decomp_u"), workspace.FetchBlob("decomp_v")
    np.testing.assert_allclose(workspace.FetchBlob("decomp"),
                               x @ v @ u.T + workspace.FetchBlob("decomp_b"), rtol=1e-5)
    assert workspace.FetchBlob("pruned_compress_rate") == 1.0
    assert workspace.FetchBlob("pool").shape == (1, 4, 2, 2)
    assert workspace.FetchBlob("gconv").shape == (1, 4, 4, 4)


def test_gradient_ops_refuse_the_wrong_counts():
    with pytest.raises(SchemaError):
        workspace.RunOperatorOnce(core.CreateOperator("FCGradient_Decomp", ["x", "u", "v"],
                                                      ["du", "dv", "db"]))
