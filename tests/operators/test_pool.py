"""MaxPool / AveragePool and their gradients against direct NumPy loops written here.

The reference follows Caffe2's pool_op.cc: the window of output o starts at
o * stride - pad_head, is clipped to the image, and is maxed or averaged (by
the clipped count, or the full kernel size with count_include_pad).
"""

import itertools

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError
from caffe2lite.testing import check_gradient
from helpers import assert_unchanged, snapshot


def ref_pool(X, kind, kernel, stride, heads, out, count_include_pad=False):
    """NCHW pooling, any number of spatial dims, output sizes given (they are the subject
    of separate checks); windows clipped to the image as Caffe2 did."""
    nd = X.ndim - 2
    Y = np.zeros(X.shape[:2] + tuple(out), dtype=np.float64)
    for o in itertools.product(*(range(v) for v in out)):
        lo = [o[i] * stride[i] - heads[i] for i in range(nd)]
        hi = [min(lo[i] + kernel[i], X.shape[2 + i]) for i in range(nd)]
        lo = [max(v, 0) for v in lo]
        window = X[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in zip(lo, hi))]
        if kind == "max":
            Y[(slice(None), slice(None)) + o] = window.max(axis=tuple(range(2, 2 + nd)))
        else:
            count = np.prod(kernel) if count_include_pad else np.prod(
                [b - a for a, b in zip(lo, hi)])
            Y[(slice(None), slice(None)) + o] = window.sum(axis=tuple(range(2, 2 + nd))) / count
    return Y.astype(X.dtype)


def nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def nchw(a):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def run(op_type, inputs, outputs=("Y",), **args):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, names, list(outputs), **args))
    return [workspace.FetchBlob(o) for o in outputs]


def distinct(rng, *shape, dtype=np.float32):
    """Values with no ties (max-pool gradients are then well defined)."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 3).astype(dtype)


KINDS = {"MaxPool": "max", "AveragePool": "avg"}


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("args,ref", [
    (dict(kernel=3, stride=2, pad=1), dict(kernel=[3, 3], stride=[2, 2], heads=[1, 1],
                                           out=[4, 3])),
    (dict(kernel=2), dict(kernel=[2, 2], stride=[1, 1], heads=[0, 0], out=[6, 5])),
    (dict(kernels=[3, 2], strides=[1, 2], pads=[2, 1, 0, 1]),
     dict(kernel=[3, 2], stride=[1, 2], heads=[2, 1], out=[7, 4])),
    (dict(kernel_h=2, kernel_w=3, stride_h=3, stride_w=1, pad_t=1, pad_l=0, pad_b=1,
          pad_r=2), dict(kernel=[2, 3], stride=[3, 1], heads=[1, 0], out=[3, 6])),
])
def test_pool_matches_loops_in_both_orders(op_type, args, ref):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    expected = ref_pool(X, KINDS[op_type], **ref)
    (Y,) = run(op_type, [X], **args)
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-6)
    (Yn,) = run(op_type, [nhwc(X)], order="NHWC", **args)
    np.testing.assert_allclose(nchw(Yn), expected, rtol=1e-5, atol=1e-6)
    (Y2,) = run(op_type + "2D", [X], **args)
    np.testing.assert_allclose(Y2, expected, rtol=1e-5, atol=1e-6)


def test_average_pool_count_include_pad_divides_by_kernel():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    ref = dict(kernel=[3, 3], stride=[2, 2], heads=[1, 1], out=[3, 3])
    (Y,) = run("AveragePool", [X], kernel=3, stride=2, pad=1, count_include_pad=1)
    np.testing.assert_allclose(Y, ref_pool(X, "avg", count_include_pad=True, **ref),
                               rtol=1e-5, atol=1e-6)
    # corner window covers 4 of the image's entries: / 9 here, / 4 by default
    np.testing.assert_allclose(Y[0, 0, 0, 0], X[0, 0, :2, :2].sum() / 9, rtol=1e-5)
    (Y0,) = run("AveragePool", [X], kernel=3, stride=2, pad=1)
    np.testing.assert_allclose(Y0[0, 0, 0, 0], X[0, 0, :2, :2].mean(), rtol=1e-5)


def test_max_pool_padding_never_wins():
    X = -np.ones((1, 1, 3, 3), np.float32) * 5
    (Y,) = run("MaxPool", [X], kernel=3, pad=2)
    np.testing.assert_array_equal(Y, np.full((1, 1, 5, 5), -5, np.float32))


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_global_pooling(op_type):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    reduce = np.max if op_type == "MaxPool" else np.mean
    (Y,) = run(op_type, [X], global_pooling=1)
    np.testing.assert_allclose(Y, reduce(X, axis=(2, 3), keepdims=True), rtol=1e-5)
    # as real nets write it: kernel 0, pad 0, stride 1 and a legacy_pad, all ignored
    (Y2,) = run(op_type, [X], global_pooling=1, kernel=0, pad=0, stride=1, legacy_pad=3)
    np.testing.assert_allclose(Y2, Y, rtol=1e-6)
    (Yn,) = run(op_type, [nhwc(X)], global_pooling=1, order="NHWC")
    np.testing.assert_allclose(nchw(Yn), Y, rtol=1e-5)
    X3 = rng.standard_normal((1, 2, 3, 4, 2)).astype(np.float32)
    (Y3,) = run(op_type, [X3], global_pooling=1)
    np.testing.assert_allclose(Y3, reduce(X3, axis=(2, 3, 4), keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_1d_and_3d_pooling(op_type):
    rng = np.random.default_rng(3)
    X1 = rng.standard_normal((2, 3, 9)).astype(np.float32)
    (Y1,) = run(op_type + "1D", [X1], kernels=[3], strides=[2], pads=[1, 1])
    np.testing.assert_allclose(Y1, ref_pool(X1, KINDS[op_type], [3], [2], [1], [5]),
                               rtol=1e-5, atol=1e-6)
    X3 = rng.standard_normal((1, 2, 4, 5, 3)).astype(np.float32)
    (Y3,) = run(op_type + "3D", [X3], kernels=[2, 3, 2], strides=[2, 1, 1],
                pads=[0, 1, 1, 1, 1, 0])
    expected = ref_pool(X3, KINDS[op_type], [2, 3, 2], [2, 1, 1], [0, 1, 1], [2, 5, 3])
    np.testing.assert_allclose(Y3, expected, rtol=1e-5, atol=1e-6)
    (Y3n,) = run(op_type, [nhwc(X3)], order="NHWC", kernels=[2, 3, 2], strides=[2, 1, 1],
                 pads=[0, 1, 1, 1, 1, 0])
    np.testing.assert_allclose(nchw(Y3n), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_legacy_pad_modes(op_type):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1, 2, 6, 7)).astype(np.float32)
    kind = KINDS[op_type]
    # VALID: no padding, floor sizes
    (Yv,) = run(op_type, [X], kernel=3, stride=2, legacy_pad=1)
    np.testing.assert_allclose(Yv, ref_pool(X, kind, [3, 3], [2, 2], [0, 0], [2, 3]),
                               rtol=1e-5, atol=1e-6)
    # SAME: out = ceil(in / 2) = (3, 4); pad needed H: 2*2+3-6 = 1 -> head 0;
    # W: 3*2+3-7 = 2 -> head 1
    (Ys,) = run(op_type, [X], kernel=3, stride=2, legacy_pad=2)
    np.testing.assert_allclose(Ys, ref_pool(X, kind, [3, 3], [2, 2], [0, 1], [3, 4]),
                               rtol=1e-5, atol=1e-6)
    # CAFFE_LEGACY_POOLING (Caffe's ceil mode): H 6, k 3, s 2, pad 0: ceil(3/2 + 1) = 3;
    # W 7: ceil(4/2 + 1) = 3.  With pad 1: H ceil(5/2 + 1) = 4, but the last window
    # would start at 3*2 = 6 >= 6 + 1? no: 6 < 7, so 4 stays; W ceil(6/2+1) = 4,
    # start 6 < 8: 4.
    (Yc,) = run(op_type, [X], kernel=3, stride=2, legacy_pad=3)
    np.testing.assert_allclose(Yc, ref_pool(X, kind, [3, 3], [2, 2], [0, 0], [3, 3]),
                               rtol=1e-5, atol=1e-6)
    (Yc1,) = run(op_type, [X], kernel=3, stride=2, pad=1, legacy_pad=3)
    np.testing.assert_allclose(Yc1, ref_pool(X, kind, [3, 3], [2, 2], [1, 1], [4, 4]),
                               rtol=1e-5, atol=1e-6)
    # The clip rule: in 5, k 2, s 2, pad 1: ceil(5/2 + 1) = 4, but window 3 would start
    # at 6 >= 5 + 1, so 3.
    X5 = rng.standard_normal((1, 1, 5, 5)).astype(np.float32)
    (Yclip,) = run(op_type, [X5], kernel=2, stride=2, pad=1, legacy_pad=3)
    np.testing.assert_allclose(Yclip, ref_pool(X5, kind, [2, 2], [2, 2], [1, 1], [3, 3]),
                               rtol=1e-5, atol=1e-6)


GRADIENT_CASES = [
    dict(kernel=3, stride=2, pad=1),
    dict(kernel=2, stride=1),
    dict(kernel=3, stride=2, legacy_pad=3),
    dict(kernel=3, stride=2, legacy_pad=2),
    dict(global_pooling=1),
    dict(kernel=3, stride=2, pad=1, order="NHWC"),
]


@pytest.mark.parametrize("op_type,args",
                         [(t, a) for t in KINDS for a in GRADIENT_CASES]
                         + [("AveragePool", dict(kernel=3, stride=2, pad=1,
                                                 count_include_pad=1))])
def test_pool_gradient_finite_differences(op_type, args):
    rng = np.random.default_rng(5)
    X = distinct(rng, 2, 2, 5, 6, dtype=np.float64)
    op = core.CreateOperator(op_type, ["X"], ["Y"], **args)
    check_gradient(op, [X], 0)


@pytest.mark.parametrize("op_type", ["MaxPool1D", "AveragePool3D"])
def test_pool_gradient_1d_3d(op_type):
    rng = np.random.default_rng(6)
    shape = (2, 2, 7) if op_type.endswith("1D") else (1, 2, 4, 3, 5)
    n = len(shape) - 2
    X = distinct(rng, *shape, dtype=np.float64)
    op = core.CreateOperator(op_type, ["X"], ["Y"], kernels=[2] * n, strides=[2] * n,
                             pads=[1] * n + [0] * n)
    check_gradient(op, [X], 0)


def test_max_pool_gradient_gives_ties_all_of_dy():
    X = np.array([[[[1, 5, 5], [0, 2, 5]]]], np.float32)  # window max 5 appears 3 times
    (Y,) = run("MaxPool", [X], kernels=[2, 3])
    (dX,) = run("MaxPoolGradient", [X, Y, np.full_like(Y, 2.0)], ["dX"], kernels=[2, 3])
    np.testing.assert_array_equal(dX, [[[[0, 2, 2], [0, 0, 2]]]])


def test_gradient_op_layout_matches_caffe2():
    from caffe2lite.runtime.gradient_makers import get_gradient_for_op

    for op_type in ("MaxPool", "AveragePool2D", "LpPool"):
        op = core.CreateOperator(op_type, ["X"], ["Y"], kernel=2)
        ops, g = get_gradient_for_op(op, ["Y_grad"])
        assert [o.type for o in ops] == [op_type + "Gradient"]
        assert list(ops[0].input) == ["X", "Y", "Y_grad"] and list(ops[0].output) == ["X_grad"]
        assert g == ["X_grad"]


@pytest.mark.parametrize("op_type,args", [
    ("MaxPool", dict(kernel=3, stride=2, pad=1)),
    ("AveragePool", dict(kernel=3, order="NHWC", legacy_pad=3, stride=2)),
    ("MaxPool1D", dict(kernels=[3])),
    ("AveragePool", dict(global_pooling=1)),
    ("LpPool", dict(kernel=2, stride=2, p=3.0)),
])
def test_shape_inference_matches_real_outputs(op_type, args):
    shape = (2, 3, 9) if op_type.endswith("1D") else (2, 3, 9, 8)
    net = core.Net("infer")
    net.Proto().op.append(core.CreateOperator(op_type, ["X"], ["Y"], **args))
    net.Proto().op.append(core.CreateOperator(op_type + "Gradient", ["X", "Y", "Y"], ["dX"],
                                              **args))
    shapes, _ = workspace.InferShapesAndTypes([net], {"X": list(shape)})
    (Y,) = run(op_type, [np.random.default_rng(7).standard_normal(shape).astype(np.float32)],
               **args)
    assert tuple(shapes["Y"]) == Y.shape
    assert tuple(shapes["dX"]) == shape


@pytest.mark.parametrize("op_type,shape,args,match", [
    ("MaxPool", (1, 2, 5, 5), dict(kernel=3, dilation=2), "dilation"),
    ("MaxPool", (1, 2, 5, 5), dict(kernel=3, pad=3), "smaller than the kernel"),
    ("AveragePool", (1, 2, 5, 5), dict(global_pooling=1, stride=2), "global_pooling"),
    ("AveragePool", (1, 2, 5, 5), dict(kernel=3, kernels=[3, 3]), "kernel"),
    ("MaxPool", (1, 2, 5, 5), dict(kernel=3, stride=0), "'stride'"),
    ("MaxPool", (1, 2, 5, 5), dict(kernel=3, pad=-1), "'pad'"),
    ("MaxPool", (1, 2, 2, 2), dict(kernel=3), "larger than the padded input"),
    ("MaxPool", (2, 5, 5), dict(kernel=3), "4-D"),
    ("AveragePool", (1, 2, 5, 5), dict(kernel=10**12), "int32"),
    ("MaxPool", (1, 2, 5, 5), dict(kernel=3, stride=10**12), "int32"),
])
def test_bad_arguments_fail_cleanly(op_type, shape, args, match):
    workspace.FeedBlob("X", np.ones(shape, np.float32))
    workspace.FeedBlob("Y", np.zeros(2, np.float32))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["X"], ["Y"], **args))
    assert op_type in str(err.value)
    assert_unchanged(before)


def test_gradient_inputs_must_match_the_pooled_shape():
    X = np.ones((1, 2, 5, 5), np.float32)
    for name, value in (("X", X), ("Y", np.ones((1, 2, 2, 2), np.float32)),
                        ("dY", np.ones((1, 2, 3, 3), np.float32))):
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match="'Y'"):
        workspace.RunOperatorOnce(core.CreateOperator("MaxPoolGradient", ["X", "Y", "dY"],
                                                      ["dX"], kernel=3))
    with pytest.raises(Caffe2LiteError, match="'dY'"):
        workspace.RunOperatorOnce(core.CreateOperator("AveragePoolGradient", ["X", "Y", "Y"],
                                                      ["dX"], kernel=3))
    assert_unchanged(before)


@pytest.mark.parametrize("seed", range(10))
def test_random_configurations_match_loops(seed):
    rng = np.random.default_rng(200 + seed)
    nd = int(rng.integers(1, 4))
    k = [int(v) for v in rng.integers(1, 4, nd)]
    stride = [int(v) for v in rng.integers(1, 3, nd)]
    heads = [int(rng.integers(0, kk)) for kk in k]
    tails = [int(rng.integers(0, kk)) for kk in k]
    spatial = [int(rng.integers(kk, kk + 4)) for kk in k]
    out = [(n + h + t - kk) // s + 1 for n, h, t, kk, s in zip(spatial, heads, tails, k, stride)]
    X = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    args = dict(kernels=k, strides=stride, pads=heads + tails)
    cases = [("MaxPool", "max", {}), ("AveragePool", "avg", {}),
             ("AveragePool", "avg", {"count_include_pad": 1})]
    for op_type, kind, extra in cases:
        expected = ref_pool(X, kind, k, stride, heads, out, count_include_pad=bool(extra))
        (Y,) = run(op_type, [X], **args, **extra)
        np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-6, err_msg=str(args))
        (Yn,) = run(op_type, [nhwc(X)], order="NHWC", **args, **extra)
        np.testing.assert_allclose(nchw(Yn), expected, rtol=1e-5, atol=1e-6, err_msg=str(args))


# -- LpPool ----------------------------------------------------------------------------
def ref_lp_pool(X, p, kernel, stride, heads, out):
    """(sum over the clipped window of |x|^p)^(1/p), NCHW, 2-D."""
    Y = np.zeros(X.shape[:2] + tuple(out))
    for i, j in itertools.product(range(out[0]), range(out[1])):
        t, l = i * stride[0] - heads[0], j * stride[1] - heads[1]
        window = X[:, :, max(t, 0):min(t + kernel[0], X.shape[2]),
                   max(l, 0):min(l + kernel[1], X.shape[3])]
        Y[:, :, i, j] = (np.abs(window) ** p).sum(axis=(2, 3)) ** (1 / p)
    return Y.astype(X.dtype)


@pytest.mark.parametrize("p", [2.0, 3.0, 1.5])
def test_lp_pool_matches_loops(p):
    rng = np.random.default_rng(20)
    X = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    expected = ref_lp_pool(X, p, [3, 3], [2, 2], [1, 1], [4, 3])
    (Y,) = run("LpPool", [X], kernel=3, stride=2, pad=1, p=p)
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-6)
    (Yn,) = run("LpPool", [nhwc(X)], kernel=3, stride=2, pad=1, p=p, order="NHWC")
    np.testing.assert_allclose(nchw(Yn), expected, rtol=1e-5, atol=1e-6)
    (Yg,) = run("LpPool", [X], global_pooling=1, p=p)
    np.testing.assert_allclose(Yg, (np.abs(X) ** p).sum(axis=(2, 3), keepdims=True) ** (1 / p),
                               rtol=1e-5)


def test_lp_pool_default_p_is_2_and_gradient_finite_differences():
    rng = np.random.default_rng(21)
    X = distinct(rng, 1, 2, 5, 5, dtype=np.float64) + 0.05  # no exact zeros
    (Y,) = run("LpPool", [X], kernel=2, stride=2)
    np.testing.assert_allclose(Y, ref_lp_pool(X, 2.0, [2, 2], [2, 2], [0, 0], [2, 2]))
    for args in (dict(kernel=3, stride=2, pad=1, p=3.0), dict(kernel=2, p=2.0),
                 dict(global_pooling=1, p=2.5)):
        check_gradient(core.CreateOperator("LpPool", ["X"], ["Y"], **args), [X], 0)


@pytest.mark.parametrize("p", [0.0, -1.0, float("nan"), float("inf")])
def test_lp_pool_rejects_bad_p(p):
    workspace.FeedBlob("X", np.ones((1, 1, 4, 4), np.float32))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match="'p'"):
        workspace.RunOperatorOnce(core.CreateOperator("LpPool", ["X"], ["Y"], kernel=2, p=p))
    assert_unchanged(before)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool", "LpPool"])
def test_empty_batches_give_empty_outputs(op_type):
    X = np.ones((0, 2, 5, 5), np.float32)
    (Y,) = run(op_type, [X], kernel=3, stride=2)
    assert Y.shape == (0, 2, 2, 2)
    (dX,) = run(op_type + "Gradient", [X, Y, Y], ["dX"], kernel=3, stride=2)
    assert dX.shape == X.shape


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_large_inputs_pooled_by_channel_ranges_on_threads(op_type, monkeypatch):
    """A batch large enough to be pooled a few channels at a time on two threads: the
    same bits as one pass over the whole array, and the loops' reference."""
    from caffe2lite.operators import _parallel, pool

    monkeypatch.setattr(_parallel, "_threads", 2)
    monkeypatch.setattr(_parallel, "blas_single_threaded", lambda: True)
    monkeypatch.setattr(pool, "POOL_PIECE_ELEMENTS", 1 << 13)  # pieces of 2 channels
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2, 24, 61, 61)).astype(np.float32)
    args = dict(kernel=3, stride=2, pad=1)
    assert X.size >= 8 * pool.POOL_PIECE_ELEMENTS
    (pieces,) = run(op_type, [X], **args)
    monkeypatch.setattr(pool, "POOL_PIECE_ELEMENTS", 1 << 40)
    (whole,) = run(op_type, [X], **args)
    np.testing.assert_array_equal(pieces, whole)
    kind = "max" if op_type == "MaxPool" else "average"
    np.testing.assert_allclose(pieces, ref_pool(X, kind, [3, 3], [2, 2], [1, 1], [31, 31]),
                               rtol=1e-6, atol=1e-6)
