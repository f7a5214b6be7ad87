"""Conv / ConvGradient / ConvTranspose against direct NumPy loops written here.

The references below define each op from Caffe2's documented semantics, one
output position at a time (small shapes), never through caffe2lite; gradients
are checked by finite differences.
"""

import itertools

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot


# -- references ---------------------------------------------------------------------
def ref_conv(X, W, b=None, stride=None, heads=None, tails=None, dilation=None, group=1):
    """Caffe2 Conv, NCHW, any number of spatial dims: X (N, C, *s), W (M, C/g, *k)."""
    nd = X.ndim - 2
    stride = stride or [1] * nd
    heads = heads or [0] * nd
    tails = tails or [0] * nd
    dilation = dilation or [1] * nd
    N, C = X.shape[:2]
    M, k = W.shape[0], W.shape[2:]
    Xp = np.pad(X, [(0, 0), (0, 0)] + list(zip(heads, tails)))
    out = [(X.shape[2 + i] + heads[i] + tails[i] - dilation[i] * (k[i] - 1) - 1) // stride[i]
           + 1 for i in range(nd)]
    Cg, Mg = C // group, M // group
    Y = np.zeros((N, M) + tuple(out), dtype=np.float64)
    for n, m in itertools.product(range(N), range(M)):
        g = m // Mg
        for o in itertools.product(*(range(v) for v in out)):
            window = tuple(slice(o[i] * stride[i], o[i] * stride[i]
                                 + dilation[i] * (k[i] - 1) + 1, dilation[i])
                           for i in range(nd))
            patch = Xp[(n, slice(g * Cg, (g + 1) * Cg)) + window]
            Y[(n, m) + o] = np.sum(patch * W[m]) + (b[m] if b is not None else 0)
    return Y.astype(X.dtype)


def ref_conv_transpose(X, W, b=None, stride=None, heads=None, tails=None, adj=None, group=1):
    """Caffe2 ConvTranspose, NCHW: X (N, M, *s), W (M, C/g, *k); every input entry adds
    X * W at i * stride on the full grid, which the pads then crop."""
    nd = X.ndim - 2
    stride = stride or [1] * nd
    heads = heads or [0] * nd
    tails = tails or [0] * nd
    adj = adj or [0] * nd
    N, M = X.shape[:2]
    Cg, k = W.shape[1], W.shape[2:]
    C, Mg = Cg * group, M // group
    full = [(X.shape[2 + i] - 1) * stride[i] + k[i] + adj[i] for i in range(nd)]
    Y = np.zeros((N, C) + tuple(full))
    for n, m in itertools.product(range(N), range(M)):
        g = m // Mg
        for i in itertools.product(*(range(v) for v in X.shape[2:])):
            window = tuple(slice(i[d] * stride[d], i[d] * stride[d] + k[d]) for d in range(nd))
            Y[(n, slice(g * Cg, (g + 1) * Cg)) + window] += X[(n, m) + i] * W[m]
    crop = tuple(slice(heads[d], full[d] - tails[d]) for d in range(nd))
    Y = Y[(slice(None), slice(None)) + crop]
    if b is not None:
        Y = Y + b.reshape((1, C) + (1,) * nd)
    return Y.astype(X.dtype)


def nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def nchw(a):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def run(op_type, inputs, outputs=("Y",), **args):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, names, list(outputs), **args))
    return [workspace.FetchBlob(o) for o in outputs]


# -- forward: spellings, defaults, orders -------------------------------------------
@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (1, 1, 0), (3, 2, 1), (7, 2, 3), (1, 2, 0),
                                   (2, 3, 0)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_2d_matches_loops(k, s, p, bias):
    rng = np.random.default_rng(k * 10 + s)
    X, W, b = randn(rng, 2, 3, 9, 8), randn(rng, 4, 3, k, k), randn(rng, 4)
    inputs = [X, W, b] if bias else [X, W]
    op = core.CreateOperator("Conv", ["X", "W", "b"][:len(inputs)], ["Y"], kernel=k,
                             stride=s, pad=p)
    check_reference(op, inputs, lambda X, W, b=None: (
        ref_conv(X, W, b, [s, s], [p, p], [p, p]),), threshold=1e-4)


def test_legacy_spellings_and_list_forms_agree():
    rng = np.random.default_rng(1)
    X, W, b = randn(rng, 1, 2, 7, 9), randn(rng, 3, 2, 3, 2), randn(rng, 3)
    expected = ref_conv(X, W, b, [2, 1], [1, 0], [2, 1])
    forms = [
        dict(kernel_h=3, kernel_w=2, stride_h=2, stride_w=1, pad_t=1, pad_l=0, pad_b=2,
             pad_r=1),
        dict(kernels=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1]),
        dict(kernels=[3, 2], stride_h=2, stride_w=1, pad_t=1, pad_l=0, pad_b=2, pad_r=1,
             dilations=[1, 1]),
    ]
    for args in forms:
        (Y,) = run("Conv", [X, W, b], **args)
        np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-5, err_msg=str(args))


def test_defaults_are_stride_1_no_pad_dilation_1_nchw():
    rng = np.random.default_rng(2)
    X, W = randn(rng, 1, 2, 5, 5), randn(rng, 3, 2, 3, 3)
    (Y,) = run("Conv", [X, W], kernel=3)
    assert Y.shape == (1, 3, 3, 3)
    np.testing.assert_allclose(Y, ref_conv(X, W), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_groups_and_dilation(group):
    rng = np.random.default_rng(group)
    X, W, b = randn(rng, 2, 4, 9, 8), randn(rng, 8, 4 // group, 3, 3), randn(rng, 8)
    (Y,) = run("Conv", [X, W, b], kernel=3, dilation=2, pad=1, stride=1, group=group)
    np.testing.assert_allclose(Y, ref_conv(X, W, b, [1, 1], [1, 1], [1, 1], [2, 2], group),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("group", [1, 2])
def test_nhwc_matches_nchw_reference(group):
    rng = np.random.default_rng(7)
    X, W, b = randn(rng, 2, 4, 7, 6), randn(rng, 6, 4 // group, 3, 2), randn(rng, 6)
    expected = ref_conv(X, W, b, [2, 1], [1, 0], [1, 1], group=group)
    (Y,) = run("Conv", [nhwc(X), nhwc(W), b], order="NHWC", kernels=[3, 2], strides=[2, 1],
               pads=[1, 0, 1, 1], group=group)
    assert Y.shape == nhwc(expected).shape
    np.testing.assert_allclose(nchw(Y), expected, rtol=1e-4, atol=1e-4)
    # NHWC pointwise (1x1) path
    W1 = randn(rng, 6, 1, 1, 4 // group)
    (Y1,) = run("Conv", [nhwc(X), W1], order="NHWC", kernel=1, group=group)
    np.testing.assert_allclose(nchw(Y1), ref_conv(X, nchw(W1), group=group), rtol=1e-4,
                               atol=1e-4)


def test_conv_1d_and_3d_from_kernels():
    rng = np.random.default_rng(3)
    X1, W1 = randn(rng, 2, 3, 11), randn(rng, 4, 3, 3)
    (Y1,) = run("Conv", [X1, W1], kernels=[3], strides=[2], pads=[1, 2])
    np.testing.assert_allclose(Y1, ref_conv(X1, W1, None, [2], [1], [2]), rtol=1e-4,
                               atol=1e-4)
    (Y1b,) = run("Conv1D", [X1, W1], kernels=[3], stride=2, pad=1)
    np.testing.assert_allclose(Y1b, ref_conv(X1, W1, None, [2], [1], [1]), rtol=1e-4,
                               atol=1e-4)
    X3, W3, b3 = randn(rng, 1, 2, 5, 4, 6), randn(rng, 3, 2, 2, 3, 3), randn(rng, 3)
    (Y3,) = run("Conv3D", [X3, W3, b3], kernels=[2, 3, 3], strides=[1, 1, 2],
                pads=[0, 1, 1, 1, 0, 1], dilations=[2, 1, 1])
    np.testing.assert_allclose(
        Y3, ref_conv(X3, W3, b3, [1, 1, 2], [0, 1, 1], [1, 0, 1], [2, 1, 1]), rtol=1e-4,
        atol=1e-4)
    (Y3n,) = run("Conv", [nhwc(X3), nhwc(W3), b3], order="NHWC", kernels=[2, 3, 3])
    np.testing.assert_allclose(nchw(Y3n), ref_conv(X3, W3, b3), rtol=1e-4, atol=1e-4)


def test_float64_is_computed_in_float64():
    rng = np.random.default_rng(4)
    X, W = randn(rng, 1, 2, 5, 5, dtype=np.float64), randn(rng, 2, 2, 3, 3, dtype=np.float64)
    (Y,) = run("Conv", [X, W], kernel=3, pad=1)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, ref_conv(X, W, None, [1, 1], [1, 1], [1, 1]), rtol=1e-12)


# -- legacy_pad -------------------------------------------------------------------
def test_legacy_pad_valid_and_same():
    rng = np.random.default_rng(5)
    X, W = randn(rng, 1, 2, 7, 8), randn(rng, 3, 2, 3, 3)
    (Yv,) = run("Conv", [X, W], kernel=3, stride=2, legacy_pad=1)  # VALID: no padding
    np.testing.assert_allclose(Yv, ref_conv(X, W, None, [2, 2]), rtol=1e-4, atol=1e-4)
    (Ys,) = run("Conv", [X, W], kernel=3, stride=2, legacy_pad=2)  # SAME: ceil(in / s)
    # H 7: out 4, pad needed (4-1)*2+3-7 = 2 -> 1, 1; W 8: out 4, needed 1 -> 0 head, 1 tail
    assert Ys.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(Ys, ref_conv(X, W, None, [2, 2], [1, 0], [1, 1]), rtol=1e-4,
                               atol=1e-4)


def test_legacy_pad_same_with_window_smaller_than_stride_crops():
    # in 7, stride 4, kernel 1: out 2, pad needed (2-1)*4+1-7 = -2: head -1, tail -1,
    # so the windows sit at 1 and 5.
    rng = np.random.default_rng(6)
    X, W = randn(rng, 1, 2, 7, 7), randn(rng, 3, 2, 1, 1)
    (Y,) = run("Conv", [X, W], kernel=1, stride=4, legacy_pad=2)
    expected = ref_conv(X[:, :, 1:6, 1:6], W, None, [4, 4])
    np.testing.assert_allclose(Y, expected, rtol=1e-4, atol=1e-4)


# -- gradients -----------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    dict(kernel=3, pad=1, stride=2),
    dict(kernels=[2, 3], pads=[1, 0, 0, 2], strides=[1, 2], dilations=[2, 1]),
    dict(kernel=1),
    dict(kernel=3, group=2, pad=1),
    dict(kernel=3, stride=2, legacy_pad=2),
    dict(kernel=1, stride=4, legacy_pad=2),
])
def test_conv_gradient_finite_differences(args):
    rng = np.random.default_rng(8)
    g = args.get("group", 1)
    k = args.get("kernels") or [args["kernel"]] * 2
    X = randn(rng, 2, 4, 6, 7, dtype=np.float64)
    W = randn(rng, 4, 4 // g, *k, dtype=np.float64)
    b = randn(rng, 4, dtype=np.float64)
    op = core.CreateOperator("Conv", ["X", "W", "b"], ["Y"], **args)
    for i in range(3):
        check_gradient(op, [X, W, b], i)


def test_conv_gradient_nhwc_1d_3d_and_no_bias():
    rng = np.random.default_rng(9)
    X = randn(rng, 1, 5, 6, 4, dtype=np.float64)
    W = randn(rng, 3, 2, 3, 4, dtype=np.float64)
    op = core.CreateOperator("Conv", ["X", "W"], ["Y"], order="NHWC", kernels=[2, 3],
                             pad=1, stride=2)
    for i in range(2):
        check_gradient(op, [X, W], i)
    X1, W1 = randn(rng, 2, 2, 7, dtype=np.float64), randn(rng, 3, 2, 3, dtype=np.float64)
    op = core.CreateOperator("Conv1D", ["X", "W"], ["Y"], kernels=[3], pads=[1, 0])
    for i in range(2):
        check_gradient(op, [X1, W1], i)
    X3, W3 = randn(rng, 1, 2, 3, 4, 3, dtype=np.float64), randn(rng, 2, 2, 2, 2, 2,
                                                                 dtype=np.float64)
    op = core.CreateOperator("Conv3D", ["X", "W"], ["Y"], kernels=[2, 2, 2], pads=[1] * 6,
                             strides=[2, 1, 1])
    for i in range(2):
        check_gradient(op, [X3, W3], i)


def test_gradient_op_layout_matches_caffe2():
    from caffe2lite.runtime.gradient_makers import get_gradient_for_op

    op = core.CreateOperator("Conv", ["X", "W", "b"], ["Y"], kernel=3)
    ops, g = get_gradient_for_op(op, ["Y_grad"])
    assert [o.type for o in ops] == ["ConvGradient"]
    assert list(ops[0].input) == ["X", "W", "Y_grad"]
    assert list(ops[0].output) == ["W_grad", "b_grad", "X_grad"]
    assert g == ["X_grad", "W_grad", "b_grad"]
    op = core.CreateOperator("Conv2D", ["X", "W"], ["Y"], kernel=3, no_gradient_to_input=1)
    ops, g = get_gradient_for_op(op, ["Y_grad"])
    assert ops[0].type == "Conv2DGradient" and list(ops[0].output) == ["W_grad"]
    assert {a.name: a.i for a in ops[0].arg}["no_bias"] == 1
    assert g == [None, "W_grad"]


def test_conv_gradient_outputs_by_hand():
    """ConvGradient's dfilter, dbias and dX against sums written out here."""
    rng = np.random.default_rng(10)
    X, W, dY = randn(rng, 2, 3, 5, 5), randn(rng, 4, 3, 3, 3), randn(rng, 2, 4, 3, 3)
    dW, db, dX = run("ConvGradient", [X, W, dY], ["dW", "db", "dX"], kernel=3)
    exp_dW = np.zeros_like(W)
    exp_dX = np.zeros_like(X)
    for i, j in itertools.product(range(3), range(3)):
        patch = X[:, :, i:i + 3, j:j + 3]  # (N, C, 3, 3) under output (i, j)
        exp_dW += np.einsum("nm,nckl->mckl", dY[:, :, i, j], patch)
        exp_dX[:, :, i:i + 3, j:j + 3] += np.einsum("nm,mckl->nckl", dY[:, :, i, j], W)
    np.testing.assert_allclose(dW, exp_dW, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dY.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dX, exp_dX, rtol=1e-4, atol=1e-4)
    # no_bias: (dfilter, dX); only dfilter with one output
    dW2, dX2 = run("ConvGradient", [X, W, dY], ["dW2", "dX2"], kernel=3, no_bias=1)
    np.testing.assert_allclose(dX2, exp_dX, rtol=1e-4, atol=1e-4)
    (dW3,) = run("ConvGradient", [X, W, dY], ["dW3"], kernel=3, no_bias=1)
    np.testing.assert_allclose(dW3, exp_dW, rtol=1e-4, atol=1e-4)


def test_add_gradient_operators_through_a_conv_net():
    rng = np.random.default_rng(11)
    net = core.Net("convnet")
    y = net.Conv(["X", "W", "b"], "Y", kernel=3, pad=1)
    net.AveragedLoss(net.MaxPool(y, "P", kernel=2, stride=2), "loss")
    grads = net.AddGradientOperators(["loss"])
    for name, value in (("X", randn(rng, 1, 2, 4, 4)), ("W", randn(rng, 3, 2, 3, 3)),
                        ("b", randn(rng, 3))):
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net)
    assert workspace.FetchBlob(str(grads["W"])).shape == (3, 2, 3, 3)
    assert workspace.FetchBlob(str(grads["X"])).shape == (1, 2, 4, 4)


# -- ConvTranspose ----------------------------------------------------------------------
@pytest.mark.parametrize("args,ref_args", [
    (dict(kernel=3), dict()),
    (dict(kernel=3, stride=2, pad=1, adj=1), dict(stride=[2, 2], heads=[1, 1], tails=[1, 1],
                                                 adj=[1, 1])),
    (dict(kernels=[2, 3], strides=[2, 1], pads=[0, 1, 1, 0]),
     dict(stride=[2, 1], heads=[0, 1], tails=[1, 0])),
    (dict(kernel=2, stride=2, legacy_pad=1), dict(stride=[2, 2])),
    (dict(kernel=3, stride=2, group=2, adjs=[0, 2]), dict(stride=[2, 2], adj=[0, 2], group=2)),
])
def test_conv_transpose_matches_scatter_reference(args, ref_args):
    rng = np.random.default_rng(12)
    g = args.get("group", 1)
    k = args.get("kernels") or [args["kernel"]] * 2
    X, W, b = randn(rng, 2, 4, 3, 4), randn(rng, 4, 6 // g, *k), randn(rng, 6)
    (Y,) = run("ConvTranspose", [X, W, b], **args)
    np.testing.assert_allclose(Y, ref_conv_transpose(X, W, b, **ref_args), rtol=1e-4,
                               atol=1e-4)
    (Yn,) = run("ConvTranspose", [nhwc(X), nhwc(W), b], order="NHWC", **args)
    np.testing.assert_allclose(nchw(Yn), Y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("args", [dict(kernel=3, stride=2, pad=1, adj=1),
                                  dict(kernels=[2, 3], group=2, strides=[1, 2])])
def test_conv_transpose_gradient_finite_differences(args):
    rng = np.random.default_rng(13)
    g = args.get("group", 1)
    k = args.get("kernels") or [args["kernel"]] * 2
    X = randn(rng, 2, 4, 3, 3, dtype=np.float64)
    W = randn(rng, 4, 4 // g, *k, dtype=np.float64)
    b = randn(rng, 4, dtype=np.float64)
    op = core.CreateOperator("ConvTranspose", ["X", "W", "b"], ["Y"], **args)
    for i in range(3):
        check_gradient(op, [X, W, b], i)
    op = core.CreateOperator("ConvTranspose", ["X", "W"], ["Y"], order="NHWC", **args)
    for i in range(2):
        check_gradient(op, [nhwc(X), nhwc(W)], i)


# -- shape inference -------------------------------------------------------------------
@pytest.mark.parametrize("op_type,inputs,args", [
    ("Conv", [(2, 3, 9, 8), (4, 3, 3, 3), (4,)], dict(kernel=3, stride=2, pad=1)),
    ("Conv", [(2, 9, 8, 3), (4, 3, 3, 3)], dict(kernel=3, order="NHWC", legacy_pad=2,
                                                stride=2)),
    ("Conv1D", [(2, 3, 9), (4, 3, 2)], dict(kernels=[2], strides=[3])),
    ("ConvTranspose", [(2, 4, 3, 4), (4, 3, 3, 3)], dict(kernel=3, stride=2, adj=1, pad=1)),
])
def test_shape_inference_matches_real_outputs(op_type, inputs, args):
    rng = np.random.default_rng(14)
    names = [f"i{k}" for k in range(len(inputs))]
    net = core.Net("infer")
    net.Proto().op.append(core.CreateOperator(op_type, names, ["Y"], **args))
    dims = dict(zip(names, inputs))
    shapes, types = workspace.InferShapesAndTypes([net], dims)
    values = [randn(rng, *s) for s in inputs]
    (Y,) = run(op_type, values, **args)
    assert tuple(shapes["Y"]) == Y.shape


def test_gradient_shape_inference():
    net = core.Net("infer_grad")
    net.Proto().op.append(core.CreateOperator("ConvGradient", ["X", "W", "dY"],
                                              ["dW", "db", "dX"], kernel=3))
    shapes, _ = workspace.InferShapesAndTypes(
        [net], {"X": [2, 3, 5, 5], "W": [4, 3, 3, 3], "dY": [2, 4, 3, 3]})
    assert shapes["dW"] == [4, 3, 3, 3] and shapes["db"] == [4] and shapes["dX"] == [2, 3, 5, 5]
    # ConvTranspose's bias has the output channels: filter (M, C/group, k, k), C = 3 * 2
    rng = np.random.default_rng(19)
    X, W, dY = randn(rng, 2, 4, 3, 3), randn(rng, 4, 3, 2, 2), randn(rng, 2, 6, 4, 4)
    args = dict(kernel=2, group=2)
    net = core.Net("infer_transpose_grad")
    net.Proto().op.append(core.CreateOperator("ConvTransposeGradient", ["X", "W", "dY"],
                                              ["tW", "tb", "tX"], **args))
    shapes, _ = workspace.InferShapesAndTypes(
        [net], {"X": list(X.shape), "W": list(W.shape), "dY": list(dY.shape)})
    outputs = run("ConvTransposeGradient", [X, W, dY], ["tW", "tb", "tX"], **args)
    assert [shapes[n] for n in ("tW", "tb", "tX")] == [list(o.shape) for o in outputs]


# -- errors leave every blob unchanged ------------------------------------------------
@pytest.mark.parametrize("inputs,args,match", [
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, kernel_h=3, kernel_w=3), "kernel"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel_h=3), "kernel_w"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(), "kernel size is not set"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, pad=-1), "'pad'"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, stride=0), "'stride'"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, pads=[1, 1]), "'pads'"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, pad=1, legacy_pad=2), "SAME"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, legacy_pad=7), "legacy_pad"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, order="CHWN"), "order"),
    ([(2, 3, 5, 5), (4, 2, 3, 3)], dict(kernel=3), "channels"),
    ([(2, 4, 5, 5), (3, 2, 3, 3)], dict(kernel=3, group=2), "group"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, group=0), "group"),
    ([(2, 3, 5, 5), (4, 3, 2, 2)], dict(kernel=3), "filter"),
    ([(2, 3, 5), (4, 3, 3, 3)], dict(kernel=3), "4-D"),
    ([(2, 3, 2, 2), (4, 3, 3, 3)], dict(kernel=3), "larger than the padded input"),
    ([(2, 3, 5, 5), (4, 3, 3, 3)], dict(kernel=3, pad=10**12), "int32"),
    ([(2, 3, 5, 5), (4, 3, 3, 3), (5,)], dict(kernel=3), "bias"),
])
def test_bad_arguments_and_shapes_fail_cleanly(inputs, args, match):
    rng = np.random.default_rng(15)
    names = [f"e{k}" for k in range(len(inputs))]
    for name, shape in zip(names, inputs):
        workspace.FeedBlob(name, randn(rng, *shape))
    workspace.FeedBlob("Y", np.ones(3, np.float32))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator("Conv", names, ["Y"], **args))
    assert "Conv" in str(err.value)
    assert_unchanged(before)


def test_wrong_dtypes_and_gradient_shapes_fail_cleanly():
    rng = np.random.default_rng(16)
    workspace.FeedBlob("X", np.ones((1, 2, 4, 4), np.int32))
    workspace.FeedBlob("W", randn(rng, 2, 2, 3, 3))
    workspace.FeedBlob("Xf", randn(rng, 1, 2, 4, 4))
    workspace.FeedBlob("dY", randn(rng, 1, 2, 3, 3))
    before = snapshot()
    with pytest.raises(EnforceError, match="float"):
        workspace.RunOperatorOnce(core.CreateOperator("Conv", ["X", "W"], ["Y"], kernel=3))
    with pytest.raises(EnforceError, match="dY"):
        workspace.RunOperatorOnce(core.CreateOperator("ConvGradient", ["Xf", "W", "dY"],
                                                      ["dW", "db"], kernel=3))
    with pytest.raises(EnforceError, match="no_bias"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "ConvGradient", ["Xf", "W", "dY"], ["a", "b", "c"], kernel=3, pad=1, no_bias=1))
    with pytest.raises(EnforceError, match="adj"):
        workspace.RunOperatorOnce(core.CreateOperator("ConvTranspose", ["Xf", "W"], ["Y"],
                                                      kernel=3, stride=1, adj=2))
    with pytest.raises(EnforceError, match="CAFFE_LEGACY_POOLING"):
        workspace.RunOperatorOnce(core.CreateOperator("ConvTranspose", ["Xf", "W"], ["Y"],
                                                      kernel=3, legacy_pad=3))
    assert_unchanged(before)


def test_ignored_engine_arguments_are_accepted():
    rng = np.random.default_rng(17)
    X, W = randn(rng, 1, 2, 4, 4), randn(rng, 2, 2, 3, 3)
    (Y,) = run("Conv", [X, W], kernel=3, exhaustive_search=0, ws_nbytes_limit=1 << 20,
               use_cudnn=1, cudnn_exhaustive_search=0, shared_buffer=1, float16_compute=0)
    np.testing.assert_allclose(Y, ref_conv(X, W), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_random_configurations_match_loops(seed):
    """Random kernel/stride/pad/dilation/group/order combinations, 1-D to 3-D."""
    rng = np.random.default_rng(100 + seed)
    nd = int(rng.integers(1, 4))
    group = int(rng.choice([1, 2]))
    C, M = 2 * group, 2 * group
    k = [int(v) for v in rng.integers(1, 4, nd)]
    stride = [int(v) for v in rng.integers(1, 3, nd)]
    dilation = [int(v) for v in rng.integers(1, 3, nd)]
    heads = [int(v) for v in rng.integers(0, 3, nd)]
    tails = [int(v) for v in rng.integers(0, 3, nd)]
    spatial = [int(rng.integers(d * (kk - 1) + 1, d * (kk - 1) + 5))
               for kk, d in zip(k, dilation)]
    X = randn(rng, 2, C, *spatial)
    W = randn(rng, M, C // group, *k)
    b = randn(rng, M)
    args = dict(kernels=k, strides=stride, dilations=dilation, pads=heads + tails, group=group)
    expected = ref_conv(X, W, b, stride, heads, tails, dilation, group)
    (Y,) = run("Conv", [X, W, b], **args)
    np.testing.assert_allclose(Y, expected, rtol=1e-4, atol=1e-4, err_msg=str(args))
    (Yn,) = run("Conv", [nhwc(X), nhwc(W), b], order="NHWC", **args)
    np.testing.assert_allclose(nchw(Yn), expected, rtol=1e-4, atol=1e-4, err_msg=str(args))


def test_large_batches_are_done_in_slices_with_the_same_result(monkeypatch):
    from caffe2lite.operators import conv as conv_module

    rng = np.random.default_rng(18)
    X, W, b = randn(rng, 5, 4, 9, 9), randn(rng, 6, 2, 3, 3), randn(rng, 6)
    dY = randn(rng, 5, 6, 5, 5)
    args = dict(kernel=3, stride=2, pad=1, group=2)
    monkeypatch.setattr(conv_module, "COL_BUDGET", 2000)  # two images per slice
    (Y,) = run("Conv", [X, W, b], **args)
    np.testing.assert_allclose(Y, ref_conv(X, W, b, [2, 2], [1, 1], [1, 1], group=2),
                               rtol=1e-4, atol=1e-4)
    sliced = run("ConvGradient", [X, W, dY], ["dW", "db", "dX"], **args)
    monkeypatch.setattr(conv_module, "COL_BUDGET", 1 << 24)
    whole = run("ConvGradient", [X, W, dY], ["dW", "db", "dX"], **args)
    for a, e in zip(sliced, whole):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
    Wt, dYt = randn(rng, 4, 3, 3, 3), randn(rng, 5, 6, 17, 17)
    whole_t = run("ConvTranspose", [X, Wt, b], **args) + run(
        "ConvTransposeGradient", [X, Wt, dYt], ["tW", "tb", "tX"], **args)
    monkeypatch.setattr(conv_module, "COL_BUDGET", 2000)
    sliced_t = run("ConvTranspose", [X, Wt, b], **args) + run(
        "ConvTransposeGradient", [X, Wt, dYt], ["tW", "tb", "tX"], **args)
    np.testing.assert_allclose(whole_t[0], ref_conv_transpose(X, Wt, b, [2, 2], [1, 1], [1, 1],
                                                              group=2), rtol=1e-4, atol=1e-4)
    for a, e in zip(sliced_t, whole_t):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_empty_batches_give_empty_outputs():
    X = np.ones((0, 2, 5, 5), np.float32)
    W, Wt = np.ones((3, 2, 3, 3), np.float32), np.ones((2, 3, 3, 3), np.float32)
    assert run("Conv", [X, W], kernel=3, pad=1)[0].shape == (0, 3, 5, 5)
    assert run("ConvTranspose", [X, Wt], kernel=3, stride=2)[0].shape == (0, 3, 11, 11)
    dW, db, dX = run("ConvGradient", [X, W, np.ones((0, 3, 5, 5), np.float32)],
                     ["dW", "db", "dX"], kernel=3, pad=1)
    assert dX.shape == X.shape and not dW.any() and not db.any() and dW.shape == W.shape
    tW, tb, tX = run("ConvTransposeGradient", [X, Wt, np.ones((0, 3, 11, 11), np.float32)],
                     ["tW", "tb", "tX"], kernel=3, stride=2)
    assert tX.shape == X.shape and tW.shape == Wt.shape and not tW.any() and tb.shape == (3,)


@pytest.mark.parametrize("shape, w_shape, args", [
    ((1, 4, 5, 5), (32, 4, 3, 3), dict(kernel=3, pad=1)),          # lone image: channel halves
    ((1, 3, 20, 20), (6, 3, 3, 3), dict(kernel=3, pad=1, stride=2)),  # lone image: row bands
    ((1, 8, 4, 4), (24, 8, 1, 1), dict(kernel=1)),                  # pointwise, channel halves
    ((1, 8, 12, 12), (6, 8, 1, 1), dict(kernel=1)),                 # pointwise, row bands
    ((3, 2, 32, 32), (4, 2, 3, 3), dict(kernel=3, pad=1)),          # half the batch per thread
    ((3, 16, 5, 5), (32, 16, 3, 3), dict(kernel=3, pad=1)),         # joined small images
])
def test_work_shared_by_two_threads_gives_the_bits_of_one(monkeypatch, shape, w_shape, args):
    """With BLAS single-threaded the convolution shares its work out (halves of the batch,
    of a lone image's channels or output rows): on two threads the same bits as on one,
    and the loops' result."""
    from caffe2lite.operators import _parallel
    from caffe2lite.operators import conv as conv_module

    rng = np.random.default_rng(11)
    X, W, b = randn(rng, *shape), randn(rng, *w_shape), randn(rng, w_shape[0])
    monkeypatch.setattr(conv_module, "SPLIT_FROM", 0)
    monkeypatch.setattr(_parallel, "blas_single_threaded", lambda: True)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(_parallel, "_threads", threads)
        results.append(run("Conv", [X, W, b], **args)[0])
    np.testing.assert_array_equal(results[0], results[1])
    s, p = args.get("stride", 1), args.get("pad", 0)
    np.testing.assert_allclose(results[1], ref_conv(X, W, b, [s, s], [p, p], [p, p]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
def test_winograd_on_two_threads_gives_the_bits_of_one(monkeypatch, batch):
    """Winograd shares out its transforms (an image's channels, or half the images of a
    block per thread) and its 16 GEMMs: the same bits on two threads as on one."""
    from caffe2lite.operators import _native_conv, _parallel
    from caffe2lite.operators import conv as conv_module

    if not _native_conv.winograd_available():
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_TILES", 1)
    monkeypatch.setattr(conv_module, "SPLIT_FROM", 0)
    monkeypatch.setattr(_parallel, "blas_single_threaded", lambda: True)
    calls = []
    original = conv_module._forward_winograd
    monkeypatch.setattr(conv_module, "_forward_winograd",
                        lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(13)
    X, W, b = randn(rng, batch, 8, 11, 13), randn(rng, 6, 8, 3, 3), randn(rng, 6)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(_parallel, "_threads", threads)
        results.append(run("Conv", [X, W, b], kernel=3, pad=1)[0])
    assert len(calls) == 2
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[1], ref_conv(X, W, b, [1, 1], [1, 1], [1, 1]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, pad, budget", [
    ((1, 3, 23, 23), 1, 1 << 22),      # one image, odd size: tiles cut at the edge
    ((2, 4, 17, 20), 0, 1 << 22),      # no padding, two images in one block
    ((3, 5, 15, 16), 2, 16 * 6 * 64),  # wide padding, one image per block
])
def test_winograd_3x3_matches_the_loops(monkeypatch, shape, pad, budget):
    """Stride-1 3x3 convolutions large enough for Winograd F(2x2, 3x3): the loops'
    result to float32 rounding (other roundings than the direct sum)."""
    from caffe2lite.operators import _native_conv
    from caffe2lite.operators import conv as conv_module

    if not _native_conv.winograd_available():
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_TILES", 1)
    monkeypatch.setattr(conv_module, "WINOGRAD_BUDGET", budget)
    calls = []
    original = conv_module._forward_winograd
    monkeypatch.setattr(conv_module, "_forward_winograd",
                        lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(12)
    X, W, b = randn(rng, *shape), randn(rng, 6, shape[1], 3, 3), randn(rng, 6)
    (Y,) = run("Conv", [X, W, b], kernel=3, pad=pad)
    assert calls
    np.testing.assert_allclose(Y, ref_conv(X, W, b, [1, 1], [pad, pad], [pad, pad]),
                               rtol=1e-4, atol=1e-4)
