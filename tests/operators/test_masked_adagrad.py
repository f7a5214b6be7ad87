"""MaskedAdagrad, MaskedSparseAdagrad and MaskedRowWiseSparseAdagrad against per-index
NumPy loops written from Caffe2's sgd_masked_ops, and build_adagrad's pruning options."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, model_helper, optimizer, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot

F = np.float32
RNG = np.random.default_rng(11)
EPS = 1e-3


def test_masked_adagrad_dense():
    p, h, g = RNG.standard_normal((3, 4)).astype(F), RNG.random((3, 4)).astype(F), \
        RNG.standard_normal((3, 4)).astype(F)
    mask = (RNG.random((3, 4)) > 0.4).astype(F)
    lr = np.array([-0.1], F)
    for name, value in (("p", p), ("h", h), ("g", g), ("lr", lr), ("m", mask)):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(
        "MaskedAdagrad", ["p", "h", "g", "lr", "m"], ["p", "h"], epsilon=EPS, decay=0.9))
    new_h = 0.9 * h.astype(np.float64) + g.astype(np.float64) ** 2
    want_p = mask * (p + lr[0] * g / (np.sqrt(new_h) + EPS))
    np.testing.assert_allclose(workspace.FetchBlob("p"), want_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob("h"), mask * new_h, rtol=1e-5)


def sparse_ref(param, moment, idx, grad, lr, keep, changed, row_wise):
    """One index at a time, as Caffe2's loop: keep is a bool (rows, width) mask or None."""
    p = param.reshape(param.shape[0], -1).astype(np.float64)
    h = moment.astype(np.float64).reshape(p.shape[0] if row_wise else p.shape)
    g2 = grad.reshape(len(idx), -1).astype(np.float64)
    if changed and keep is not None:
        p[~keep] = 0
        if not row_wise:
            h[~keep] = 0
    for i, r in enumerate(idx):
        g = g2[i]
        if row_wise:
            h[r] += (g * g).mean()
            step = lr / (np.sqrt(h[r]) + EPS) * g
        else:
            h[r] += g * g
            step = lr * g / (np.sqrt(h[r]) + EPS)
        p[r] = p[r] + step
        if keep is not None:
            p[r][~keep[r]] = 0
            if not row_wise:
                h[r][~keep[r]] = 0
    return p.reshape(param.shape), h.reshape(moment.shape)


def unpack(bits, width, block):
    keep = np.zeros((bits.shape[0], width), bool)
    for r in range(bits.shape[0]):
        for j in range(width):
            b = j // block
            keep[r, j] = bool(bits[r, b // 8] >> (b % 8) & 1)
    return keep


@pytest.mark.parametrize("row_wise", [False, True])
@pytest.mark.parametrize("changed", [False, True])
def test_masked_sparse_adagrad_with_a_given_bit_mask(row_wise, changed):
    rows, width, block = 5, 10, 3
    param = RNG.standard_normal((rows, 2, 5)).astype(F)
    moment = RNG.random(rows if row_wise else (rows, 2, 5)).astype(F)
    idx = np.array([3, 0, 3, 3, 1], np.int64)  # repeats: updates in index order
    grad = RNG.standard_normal((5, 2, 5)).astype(F)
    bits = RNG.integers(0, 256, (rows, 1), dtype=np.uint8)  # 4 blocks of 3 columns
    op_type = "MaskedRowWiseSparseAdagrad" if row_wise else "MaskedSparseAdagrad"
    feeds = dict(p=param, h=moment, i=idx, g=grad, lr=np.array([-0.2], F), m=bits,
                 c=np.array([changed]))
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(
        op_type, list(feeds), ["p", "h"], epsilon=EPS, block_size=block))
    want_p, want_h = sparse_ref(param, moment, idx, grad, -0.2, unpack(bits, width, block),
                                changed, row_wise)
    np.testing.assert_allclose(workspace.FetchBlob("p"), want_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob("h"), want_h, rtol=1e-5, atol=1e-6)


def test_pruning_by_delays_keeps_the_largest_blocks():
    rows, width = 4, 6
    param = RNG.standard_normal((rows, width)).astype(F)
    moment = np.zeros((rows, width), F)
    net = core.Net("m2_prune")
    net.MaskedSparseAdagrad(["p", "h", "i", "g", "lr", "m", "c", "it"], ["p", "h", "bits"],
                            epsilon=EPS, block_size=2, delays=[2], prune_ratios=[0.5])
    idx, grad = np.array([1], np.int64), np.zeros((1, width), F)  # rows barely move
    for name, value in (("p", param), ("h", moment), ("i", idx), ("g", grad),
                        ("lr", np.array([-0.1], F)), ("m", np.zeros(0, np.uint8)),
                        ("c", np.array([False])), ("it", np.array([1], np.int64))):
        workspace.FeedBlob(name, value)
    workspace.CreateNet(net)
    workspace.RunNet(net)  # not a delay: no mask yet, a plain update
    np.testing.assert_array_equal(workspace.FetchBlob("p"), param)
    assert workspace.FetchBlob("bits").size == 0
    workspace.FeedBlob("it", np.array([2], np.int64))
    workspace.RunNet(net)
    norms = (param.reshape(rows, 3, 2).astype(np.float64) ** 2).sum(axis=2)
    threshold = np.sort(norms.reshape(-1))[int(np.floor(rows * 3 * 0.5)) - 1]
    keep = np.repeat(norms >= threshold, 2, axis=1)
    np.testing.assert_array_equal(workspace.FetchBlob("p"), np.where(keep, param, 0))
    assert unpack(workspace.FetchBlob("bits"), width, 2).tolist() == keep.tolist()
    workspace.FeedBlob("p", param)  # later runs keep applying that mask to updated rows
    workspace.FeedBlob("it", np.array([3], np.int64))
    workspace.RunNet(net)
    got = workspace.FetchBlob("p")
    np.testing.assert_array_equal(got[1], np.where(keep[1], param[1], 0))
    np.testing.assert_array_equal(np.delete(got, 1, axis=0), np.delete(param, 1, axis=0))


@pytest.mark.parametrize("feeds, args, match", [
    (dict(m=np.zeros((5, 2), np.uint8)), {}, "uint8 bit mask of 5 x 1 bytes"),
    (dict(c=np.array([1], np.int32)), {}, "'mask_changed' must be a bool"),
    ({}, dict(delays=[1, 2], prune_ratios=[0.5]), "same length"),
    ({}, dict(delays=[1], prune_ratios=[0.5]), "'iter' must be an int64"),
])
def test_masked_sparse_refusals_change_nothing(feeds, args, match):
    base = dict(p=np.ones((5, 3), F), h=np.ones((5, 3), F), i=np.array([0], np.int64),
                g=np.ones((1, 3), F), lr=np.array([-0.1], F), m=np.full((5, 1), 255, np.uint8),
                c=np.array([True]))
    base.update(feeds)
    for name, value in base.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("MaskedSparseAdagrad", list(base),
                                                      ["p", "h"], **args))
    assert_unchanged(before)


def test_build_adagrad_with_a_mask_tensor_keeps_pruned_weights_at_zero():
    model = model_helper.ModelHelper(name="m2_masked")
    model.param_init_net.GaussianFill([], "w", shape=[3, 4], std=1.0)
    model.param_init_net.ConstantFill([], "b", shape=[3], value=0.0)
    model.params.append(core.BlobReference("w"))  # the mask fits w: b stays as it is
    y = model.net.FC(["x", "w", "b"], "y")
    loss = model.net.AveragedLoss(model.net.SquaredL2Distance([y, "t"], "d"), "loss")
    model.AddGradientOperators([loss])
    mask = (RNG.random((3, 4)) > 0.5).astype(F)
    optimizer.build_adagrad(model, base_learning_rate=0.1,
                            pruning_options={"mask_tensor": mask})
    assert "MaskedAdagrad" in [op.type for op in model.net.Proto().op]
    workspace.FeedBlob("x", RNG.standard_normal((8, 4)).astype(F))
    workspace.FeedBlob("t", RNG.standard_normal((8, 3)).astype(F))
    workspace.RunNetOnce(model.param_init_net)
    workspace.CreateNet(model.net)
    workspace.RunNet(model.net, num_iter=3)
    w = workspace.FetchBlob("w")
    assert np.all(w[mask == 0] == 0) and np.all(w[mask == 1] != 0)
    assert np.all(workspace.FetchBlob("b") == 0)
