"""LC / LC1D / LC2D / LC3D and their gradients against a direct loop written here.

Reference: Y[n, m, o] = bias[o, m] + sum over the channels c of m's group and the
kernel offsets k of X_padded[n, c, o * stride + k * dilation] * W[o, m, c - group
start, k] (Caffe2's locally_connected_op: a convolution with one filter per output
position); NHWC moves the channels last and stores the filter (YH, YW, M, kH, kW, C).
Gradients are checked against finite differences.
"""

import itertools

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot


def ref_lc(X, W, b=None, stride=1, pad=0, dilation=1, group=1):
    """NCHW locally connected op, one output element at a time."""
    N, C = X.shape[:2]
    nd = X.ndim - 2
    out_dims, M = W.shape[:nd], W.shape[nd]
    kernel = W.shape[nd + 2:]
    Xp = np.pad(X, [(0, 0), (0, 0)] + [(pad, pad)] * nd)
    Cg, Mg = C // group, M // group
    Y = np.zeros((N, M) + out_dims, np.float64)
    for n, m in itertools.product(range(N), range(M)):
        g = m // Mg
        for o in itertools.product(*(range(d) for d in out_dims)):
            acc = 0.0 if b is None else float(b[o + (m,)])
            for c, k in itertools.product(range(Cg), itertools.product(
                    *(range(d) for d in kernel))):
                pos = tuple(oi * stride + ki * dilation for oi, ki in zip(o, k))
                acc += float(Xp[(n, g * Cg + c) + pos]) * float(W[o + (m, c) + k])
            Y[(n, m) + o] = acc
    return Y.astype(X.dtype)


def lc_op(op_type, with_bias, **args):
    return core.CreateOperator(op_type, ["X", "W", "b"] if with_bias else ["X", "W"], ["Y"],
                               **args)


def out_size(size, k, stride=1, pad=0, dilation=1):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


@pytest.mark.parametrize("op_type, spatial, kernel, args", [
    ("LC1D", (7,), (3,), {"stride": 2}),
    ("LC", (5, 6), (2, 3), {"pad": 1}),
    ("LC2D", (6, 5), (2, 2), {"dilation": 2, "group": 2}),
    ("LC3D", (3, 4, 3), (2, 2, 2), {}),
])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_and_gradients_match_the_loop(op_type, spatial, kernel, args, with_bias):
    rng = np.random.default_rng(len(spatial) * 10 + with_bias)
    group = args.get("group", 1)
    N, C, M = 2, 2 * group, 2 * group
    stride, pad, dilation = (args.get(a, d) for a, d in (("stride", 1), ("pad", 0),
                                                         ("dilation", 1)))
    out = tuple(out_size(s, k, stride, pad, dilation) for s, k in zip(spatial, kernel))
    X = rng.standard_normal((N, C) + spatial).astype(np.float32)
    W = rng.standard_normal(out + (M, C // group) + kernel).astype(np.float32)
    b = rng.standard_normal(out + (M,)).astype(np.float32)
    inputs = [X, W, b] if with_bias else [X, W]
    op = lc_op(op_type, with_bias, kernels=list(kernel), **args)
    check_reference(op, inputs, lambda *a: [ref_lc(*a, stride=stride, pad=pad,
                                                   dilation=dilation, group=group)],
                    threshold=1e-4)
    for i in range(len(inputs)):
        check_gradient(op, inputs, i, threshold=2e-2)


def test_nhwc_matches_nchw():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)          # N, H, W, C
    W = rng.standard_normal((4, 2, 2, 2, 3, 3)).astype(np.float32)    # YH, YW, M, kH, kW, C
    b = rng.standard_normal((4, 2, 2)).astype(np.float32)
    op = lc_op("LC2D", True, kernels=[2, 3], order="NHWC")
    expected = ref_lc(X.transpose(0, 3, 1, 2), W.transpose(0, 1, 2, 5, 3, 4), b)
    check_reference(op, [X, W, b], lambda *a: [expected.transpose(0, 2, 3, 1)])
    for i in range(3):
        check_gradient(op, [X, W, b], i, threshold=2e-2)


def test_gradient_ops_follow_caffe2s_maker():
    net = core.Net("lc_grad")
    net.LC(["X", "W"], ["Y"], kernels=[2])
    net.AddGradientOperators({"Y": "Y_grad"})
    grad = net.Proto().op[-1]
    assert grad.type == "LCGradient" and list(grad.input) == ["X", "W", "Y_grad"]
    assert list(grad.output) == ["W_grad", "X_grad"]
    assert any(a.name == "no_bias" and a.i == 1 for a in grad.arg)
    shapes, _ = workspace.InferShapesAndTypes(
        [net], {"X": [2, 3, 5], "W": [4, 6, 3, 2], "Y_grad": [2, 6, 4]})
    assert shapes["Y"] == [2, 6, 4] and shapes["W_grad"] == [4, 6, 3, 2]
    assert shapes["X_grad"] == [2, 3, 5]


@pytest.mark.parametrize("w_shape, args, match", [
    ((3, 2, 2, 3), {"kernels": [2]}, "must be"),           # output dims 4 expected, not 3
    ((4, 2, 3, 3), {"kernels": [2]}, "must be"),           # kernel 3 in the filter
    ((4, 2, 1, 2), {"kernels": [2]}, "channels"),          # 1 channel for 2
    ((4, 3, 1, 2), {"kernels": [2], "group": 2}, "multiple of group"),
    ((4, 2, 2, 2), {"kernels": [2], "order": "NHWC"}, "NHWC supports only 2-D"),
])
def test_bad_filters_name_the_blob_and_change_nothing(w_shape, args, match):
    workspace.FeedBlob("X", np.zeros((1, 2, 5), np.float32))
    workspace.FeedBlob("W", np.zeros(w_shape, np.float32))
    before = snapshot()
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(lc_op("LC1D", False, **args))
    assert_unchanged(before)


def test_bias_shape_is_checked():
    workspace.FeedBlob("X", np.zeros((1, 2, 5), np.float32))
    workspace.FeedBlob("W", np.zeros((4, 3, 2, 2), np.float32))
    workspace.FeedBlob("b", np.zeros((3,), np.float32))
    with pytest.raises(EnforceError, match=r"'b'\).*\(4, 3\)"):
        workspace.RunOperatorOnce(lc_op("LC", True, kernels=[2]))
