"""RoIPool / RoIPoolGradient against a per-bin reference written from Caffe2's rules."""

import math

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError

FLT_MAX = float(np.finfo(np.float32).max)


def c_round(v):
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def reference(X, R, ph_n, pw_n, scale):
    """Y and argmaxes, one bin at a time, as roi_pool_op.cc describes them."""
    n, (_, C, H, W) = len(R), X.shape
    Y = np.zeros((n, C, ph_n, pw_n), np.float32)
    A = np.full(Y.shape, -1, np.int32)
    for r, (b, x1, y1, x2, y2) in enumerate(R):
        sw, sh, ew, eh = (c_round(float(v) * scale) for v in (x1, y1, x2, y2))
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = np.float32(rh) / np.float32(ph_n), np.float32(rw) / np.float32(pw_n)
        for c in range(C):
            plane = X[int(b), c]
            for ph in range(ph_n):
                for pw in range(pw_n):
                    h0 = min(max(int(math.floor(ph * bh)) + sh, 0), H)
                    h1 = min(max(int(math.ceil((ph + 1) * bh)) + sh, 0), H)
                    w0 = min(max(int(math.floor(pw * bw)) + sw, 0), W)
                    w1 = min(max(int(math.ceil((pw + 1) * bw)) + sw, 0), W)
                    best = 0.0 if (h1 <= h0 or w1 <= w0) else -FLT_MAX
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if plane[h, w] > best:
                                best, A[r, c, ph, pw] = plane[h, w], h * W + w
                    Y[r, c, ph, pw] = best
    return Y, A


def run(op_type, inputs, outputs, feeds, **args):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@pytest.mark.parametrize("pooled, scale", [((2, 3), 1.0), ((4, 5), 0.5), ((1, 1), 0.25),
                                           ((3, 3), 0.0625)])
def test_forward_matches_the_per_bin_reference(pooled, scale):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    X[0, 0, 2, 2:5] = 7.0  # ties: the first in row-major order wins
    R = np.array([[0, 0, 0, 8, 6], [1, 2.5, 1.5, 10, 8], [0, 3, 3, 3, 3],    # 1x1 RoI
                  [1, -6, -4, 30, 20], [0, 20, 20, 30, 30], [0, 7, 5, 2, 1],  # off map, reversed
                  [1.9, 1, 1, 4, 2]], np.float32) / np.float32(scale)          # batch truncated
    R[:, 0] = [0, 1, 0, 1, 0, 0, 1.9]
    Y, A = run("RoIPool", ["X", "R"], ["Y", "A"], {"X": X, "R": R},
               pooled_h=pooled[0], pooled_w=pooled[1], spatial_scale=scale)
    Y_ref, A_ref = reference(X, R, *pooled, scale)
    np.testing.assert_array_equal(Y, Y_ref)
    np.testing.assert_array_equal(A, A_ref)
    (Y_test,) = run("RoIPool", ["X", "R"], ["Yt"], {}, pooled_h=pooled[0],
                    pooled_w=pooled[1], spatial_scale=scale, is_test=1)
    np.testing.assert_array_equal(Y_test, Y_ref)


def test_gradient_adds_dy_at_the_argmaxes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    R = np.array([[0, 0, 0, 5, 4], [1, 1, 1, 3, 3], [0, 0, 0, 5, 4]], np.float32)
    net = core.Net("roi")
    net.RoIPool(["X", "R"], ["Y", "A"], pooled_h=2, pooled_w=2)
    net.AddGradientOperators({"Y": "dY"})
    dY = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    for name, value in {"X": X, "R": R, "dY": dY}.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net)
    _, A = reference(X, R, 2, 2, 1.0)
    expected = np.zeros(X.size, np.float64)
    for r, c, ph, pw in np.ndindex(A.shape):
        if A[r, c, ph, pw] >= 0:
            b = int(R[r, 0])
            expected[(b * 2 + c) * 30 + A[r, c, ph, pw]] += dY[r, c, ph, pw]
    np.testing.assert_allclose(workspace.FetchBlob("X_grad").ravel(), expected, rtol=1e-6)


def test_shape_inference_gives_both_outputs_in_training():
    net = core.Net("shapes")
    net.RoIPool(["X", "R"], ["Y", "A"], pooled_h=4, pooled_w=5)
    shapes, types = workspace.InferShapesAndTypes([net], {"X": [100, 3, 4, 5], "R": [2, 5]})
    assert shapes["Y"] == [2, 3, 4, 5] and shapes["A"] == [2, 3, 4, 5]
    assert types["A"] == core.DataType.INT32


@pytest.mark.parametrize("rois, args, match", [
    (np.zeros((1, 4), np.float32), {}, r"\(R, 5\)"),
    (np.array([[2, 0, 0, 1, 1]], np.float32), {}, "batch indices"),
    (np.array([[0, 0, 0, 1, 1]], np.float32), {"order": "NHWC"}, "NCHW"),
])
def test_bad_input_is_refused_and_nothing_is_written(rois, args, match):
    workspace.FeedBlob("X", np.ones((2, 1, 3, 3), np.float32))
    workspace.FeedBlob("R", rois)
    with pytest.raises(Caffe2LiteError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("RoIPool", ["X", "R"], ["Y", "A"], **args))
    assert not workspace.HasBlob("Y")


def test_training_mode_needs_the_argmax_output():
    workspace.FeedBlob("X", np.ones((1, 1, 3, 3), np.float32))
    workspace.FeedBlob("R", np.zeros((1, 5), np.float32))
    with pytest.raises(Caffe2LiteError, match="is_test=0 writes argmaxes"):
        workspace.RunOperatorOnce(core.CreateOperator("RoIPool", ["X", "R"], ["Y"]))
