"""Detectron's layer ops against NumPy references written here from Caffe2's sources.

BatchPermutation, AffineChannel, UpsampleNearest, ResizeNearest (NCHW and
NHWC, arguments or the scales input) and AliasWithName; each reference is a
plain loop or an independent formula, gradients are checked by finite
differences, and bad inputs fail naming the input with every blob unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, utils, workspace
from caffe2lite.errors import EnforceError, GradientError, SchemaError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

F = np.float32
rng = np.random.default_rng(22)


# -- BatchPermutation ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 7), (5, 2, 3, 2), (3,)])
def test_batch_permutation_matches_reference_and_gradient(shape):
    X = rng.standard_normal(shape).astype(F)
    indices = rng.permutation(shape[0]).astype(np.int32)
    op = core.CreateOperator("BatchPermutation", ["X", "indices"], ["Y"])

    def ref(x, idx):
        return (np.stack([x[i] for i in idx]),)

    check_reference(op, [X, indices], ref, threshold=0)
    check_gradient(op, [X, indices], input_index=0)


def test_batch_permutation_gradient_adds_repeated_indices_and_matches_caffe2_on_permutations():
    dY = rng.standard_normal((4, 3)).astype(F)
    idx = np.array([2, 0, 3, 1], np.int32)
    grad = core.CreateOperator("BatchPermutationGradient", ["indices", "dY"], ["dX"])
    # Caffe2: dX[indices[i]] = dY[i] for a permutation
    expected = np.zeros_like(dY)
    for i, j in enumerate(idx):
        expected[j] = dY[i]
    check_reference(grad, [idx, dY], lambda i, d: (expected,), threshold=0)
    repeated = np.array([1, 1, 0, 1], np.int32)
    check_reference(grad, [repeated, dY],
                    lambda i, d: (np.stack([d[2], d[0] + d[1] + d[3], 0 * d[0], 0 * d[0]]),))


@pytest.mark.parametrize("indices, message", [
    (np.array([0, 4, 1, 2], np.int32), r"indices in \[0, 4\)"),
    (np.array([0, 1, 2], np.int32), "must be equal to indices"),
    (np.array([[0, 1, 2, 3]], np.int32), "1-d"),
    (np.array([0.0, 1, 2, 3], F), "1-d int32"),
])
def test_batch_permutation_refuses_bad_indices(indices, message):
    workspace.FeedBlob("X", np.ones((4, 2), F))
    workspace.FeedBlob("idx", indices)
    before = snapshot()
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator("BatchPermutation", ["X", "idx"], ["Y"]))
    assert_unchanged(before)


# -- AffineChannel ------------------------------------------------------------------------
@pytest.mark.parametrize("order,shape", [("NCHW", (2, 3, 4, 5)), ("NHWC", (2, 4, 5, 3)),
                                         ("NCHW", (2, 3, 2, 2, 2)), ("NHWC", (3, 2, 3))])
@pytest.mark.parametrize("learnable", [0, 1])
def test_affine_channel_matches_reference_and_gradients(order, shape, learnable):
    X = rng.standard_normal(shape).astype(F)
    C = shape[1] if order == "NCHW" else shape[-1]
    scale, bias = rng.standard_normal(C).astype(F), rng.standard_normal(C).astype(F)
    op = core.CreateOperator("AffineChannel", ["X", "scale", "bias"], ["Y"], order=order,
                             is_learnable=learnable)

    def ref(x, s, b):
        y = np.empty_like(x)
        for c in range(C):
            index = (slice(None), c) if order == "NCHW" else (Ellipsis, c)
            y[index] = x[index] * s[c] + b[c]
        return (y,)

    check_reference(op, [X, scale, bias], ref, threshold=1e-6)
    for i in range(3 if learnable else 1):
        check_gradient(op, [X, scale, bias], input_index=i)


def test_affine_channel_in_place_only_when_not_learnable():
    workspace.FeedBlob("X", np.ones((1, 2, 2, 2), F))
    workspace.FeedBlob("s", np.array([2, 3], F))
    workspace.FeedBlob("b", np.array([1, -1], F))
    workspace.RunOperatorOnce(core.CreateOperator("AffineChannel", ["X", "s", "b"], ["X"]))
    np.testing.assert_array_equal(workspace.FetchBlob("X")[0, :, 0, 0], [3, 2])
    before = snapshot()
    with pytest.raises(EnforceError, match="In-place"):
        workspace.RunOperatorOnce(core.CreateOperator("AffineChannel", ["X", "s", "b"], ["X"],
                                                      is_learnable=1))
    workspace.FeedBlob("s", np.array([2, 3, 4], F))
    with pytest.raises(EnforceError, match="2 channels"):
        workspace.RunOperatorOnce(core.CreateOperator("AffineChannel", ["X", "s", "b"], ["Y"]))
    before["s"] = workspace.FetchBlob("s")
    assert_unchanged(before)


# -- UpsampleNearest ----------------------------------------------------------------------
@pytest.mark.parametrize("shape,scale", [((2, 3, 4, 5), 2), ((1, 2, 3, 3), 3), ((2, 3, 4), 1)])
def test_upsample_nearest_matches_reference_and_gradient(shape, scale):
    X = rng.standard_normal(shape).astype(F)
    op = core.CreateOperator("UpsampleNearest", ["X"], ["Y"], scale=scale)

    def ref(x):  # THCUNN's translate_idx: each output reads (y // scale, x // scale)
        H, W = x.shape[-2:]
        y = np.empty(x.shape[:-2] + (H * scale, W * scale), F)
        for i in range(H * scale):
            for j in range(W * scale):
                y[..., i, j] = x[..., i // scale, j // scale]
        return (y,)

    check_reference(op, [X], ref, threshold=0)
    check_gradient(op, [X], input_index=0)


def test_upsample_nearest_refuses_bad_scale_and_rank():
    workspace.FeedBlob("X", np.ones((1, 1, 2, 2), F))
    with pytest.raises(EnforceError, match="'scale' must be >= 1"):
        workspace.RunOperatorOnce(core.CreateOperator("UpsampleNearest", ["X"], ["Y"], scale=0))
    workspace.FeedBlob("X", np.ones((2, 2), F))
    with pytest.raises(EnforceError, match="3-D or 4-D"):
        workspace.RunOperatorOnce(core.CreateOperator("UpsampleNearest", ["X"], ["Y"]))
    assert not workspace.HasBlob("Y")


# -- ResizeNearest ------------------------------------------------------------------------
def resize_ref(x, hs, ws, order):
    """Caffe2's resize_op.cc loops: out size int(in * scale), source min(int(y / s), in - 1)."""
    if order == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    N, C, H, W = x.shape
    oh, ow = int(F(H) * F(hs)), int(F(W) * F(ws))
    y = np.zeros((N, C, oh, ow), F)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = x[:, :, min(int(F(i) / F(hs)), H - 1), min(int(F(j) / F(ws)), W - 1)]
    return y.transpose(0, 2, 3, 1) if order == "NHWC" else y


def resize_grad_ref(dy, x, hs, ws, order):
    if order == "NHWC":
        dy, x = dy.transpose(0, 3, 1, 2), x.transpose(0, 3, 1, 2)
    H, W = x.shape[2:]
    dx = np.zeros(x.shape, np.float64)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            dx[:, :, min(int(F(i) / F(hs)), H - 1), min(int(F(j) / F(ws)), W - 1)] += dy[:, :, i, j]
    dx = dx.astype(F)
    return dx.transpose(0, 2, 3, 1) if order == "NHWC" else dx


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("hs,ws", [(2.0, 2.0), (1.7, 0.6), (0.5, 3.25)])
def test_resize_nearest_matches_reference_and_gradient(order, hs, ws):
    X = rng.standard_normal((2, 3, 5, 7) if order == "NCHW" else (2, 5, 7, 3)).astype(F)
    op = core.CreateOperator("ResizeNearest", ["X"], ["Y"], height_scale=hs, width_scale=ws,
                             order=order)
    (Y,) = check_reference(op, [X], lambda x: (resize_ref(x, hs, ws, order),), threshold=0)
    check_gradient(op, [X], input_index=0)
    grad = core.CreateOperator("ResizeNearestGradient", ["dY", "X"], ["dX"], height_scale=hs,
                               width_scale=ws, order=order)
    dY = rng.standard_normal(Y.shape).astype(F)
    check_reference(grad, [dY, X], lambda d, x: (resize_grad_ref(d, x, hs, ws, order),),
                    threshold=1e-5)


def test_resize_nearest_scales_input_overrides_the_arguments_and_gets_no_gradient():
    X = rng.standard_normal((1, 2, 4, 3)).astype(F)
    scales = np.array([1.5, 2.5], F)
    op = core.CreateOperator("ResizeNearest", ["X", "scales"], ["Y"], height_scale=9.0)
    check_reference(op, [X, scales], lambda x, s: (resize_ref(x, 1.5, 2.5, "NCHW"),), threshold=0)
    check_gradient(op, [X, scales], input_index=0)
    with pytest.raises(AssertionError, match="no gradient"):
        check_gradient(op, [X, scales], input_index=1)


@pytest.mark.parametrize("inputs, args, message", [
    ([np.ones((1, 1, 2, 2), F)], dict(width_scale=0.0), "positive and finite"),
    ([np.ones((1, 1, 2, 2), F)], dict(height_scale=float("nan")), "positive and finite"),
    ([np.ones((1, 1, 2, 2), F), np.array([1.0, -2.0], F)], {}, "positive and finite"),
    ([np.ones((1, 1, 2, 2), F), np.array([1.0, 2.0, 3.0], F)], {}, "height_scale, width_scale"),
    ([np.ones((2, 2), F)], {}, "4-D float32"),
    ([np.ones((1, 1, 2, 2))], {}, "4-D float32"),
    ([np.ones((1, 1, 2, 2), F)], dict(order="HWC"), "'order'"),
])
def test_resize_nearest_refuses_bad_inputs(inputs, args, message):
    names = ["X", "scales"][:len(inputs)]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator("ResizeNearest", names, ["Y"], **args))
    assert_unchanged(before)


# -- AliasWithName ------------------------------------------------------------------------
def test_alias_with_name_shares_the_input_and_needs_a_name():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    op = core.CreateOperator("AliasWithName", ["x"], ["y"])
    # CreateOperator's name= is the op's own name, so the argument goes in by hand (as in
    # Caffe2's alias_with_name_test)
    op.arg.add().CopyFrom(utils.MakeArgument("name", "whatever_name"))
    check_reference(op, [x], lambda v: (v,), threshold=0)
    workspace.FeedBlob("x", x)
    workspace.RunOperatorOnce(op)
    ws = workspace.current()
    assert ws.blob_dict["y"] is ws.blob_dict["x"]  # storage shared, as Caffe2's Alias()
    with pytest.raises(SchemaError, match="argument .name. is required"):
        workspace.RunOperatorOnce(core.CreateOperator("AliasWithName", ["x"], ["z"]))
    assert not workspace.HasBlob("z")
    with pytest.raises(GradientError):
        core.GradientRegistry.GetGradientForOp(op, ["y_grad"])
