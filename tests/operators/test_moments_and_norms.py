"""Moments, BatchMoments, ArgMax/ArgMin, Normalize, NormalizeL1, LpNorm, Max/Min/Mean and Mod
against NumPy references written here."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def data(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape)


# -- Moments / BatchMoments ----------------------------------------------------------------
@pytest.mark.parametrize("axes, keepdims", [(None, 1), ([0, 2], 0), ([-1], 1)])
def test_moments(axes, keepdims):
    x = data((2, 3, 4))
    args = {} if axes is None else {"axes": axes}
    op = core.CreateOperator("Moments", ["X"], ["mean", "var"], keepdims=keepdims, **args)
    ax = None if axes is None else tuple(a % 3 for a in axes)
    check_reference(op, [x], lambda x: (x.mean(axis=ax, keepdims=bool(keepdims)),
                                        x.var(axis=ax, keepdims=bool(keepdims))))
    for output in (0, 1):
        check_gradient(op, [x], 0, output_index=output)
    assert_inference_matches_run(op, [x.astype(np.float32)])
    ops, _ = gradient_ops(op)  # only the mean has a gradient: the variance's is zeros
    assert [(o.type, list(o.input)) for o in ops] == [
        ("Scale", ["var"]), ("MomentsGradient", ["mean_grad", "var_grad_zeros", "X", "mean"])]
    assert {a.name for a in ops[1].arg} >= {"keepdims"} and not \
        {a.name for a in ops[0].arg} & {"keepdims", "axes"}


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_batch_moments(order):
    x = data((3, 2, 4, 5) if order == "NCHW" else (3, 4, 5, 2), 1)
    op = core.CreateOperator("BatchMoments", ["X"], ["mu", "var"], order=order)

    def ref(x):
        per_channel = np.moveaxis(x, 1 if order == "NCHW" else -1, 0).reshape(2, -1)
        return per_channel.mean(axis=1), (per_channel ** 2).mean(axis=1)

    check_reference(op, [x], ref)
    for output in (0, 1):
        check_gradient(op, [x], 0, output_index=output)
    assert_inference_matches_run(op, [x.astype(np.float32)])


# -- ArgMax / ArgMin -----------------------------------------------------------------------
@pytest.mark.parametrize("op_type, fn", [("ArgMax", np.argmax), ("ArgMin", np.argmin)])
@pytest.mark.parametrize("axis, keepdims", [(-1, True), (0, False), (1, True)])
@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_arg_ops(op_type, fn, axis, keepdims, dtype):
    x = np.random.default_rng(2).integers(0, 4, (3, 4, 2)).astype(dtype)  # with ties
    op = core.CreateOperator(op_type, ["X"], ["I"], axis=axis, keepdims=keepdims)
    (i,) = check_reference(op, [x], lambda x: (np.expand_dims(fn(x, axis), axis) if keepdims
                                               else fn(x, axis),))
    assert i.dtype == np.int64
    assert_inference_matches_run(op, [x])


def test_arg_max_select_last_index():
    x = np.array([[1, 3, 3, 0], [2, 2, 1, 2]], np.float32)
    op = core.CreateOperator("ArgMax", ["X"], ["I"], select_last_index=1, keepdims=0)
    check_reference(op, [x], lambda x: (np.array([2, 3]),))
    assert_fails_unchanged(core.CreateOperator("ArgMin", ["X"], ["I"]),
                           [np.zeros((2, 0), np.float32)], EnforceError, "nothing along axis 1")


# -- Normalize / NormalizeL1 / LpNorm ------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_normalize(axis):
    x = data((3, 4, 2), 3)
    op = core.CreateOperator("Normalize", ["X"], ["Y"], axis=axis)
    check_reference(op, [x], lambda x: (x / np.maximum(
        np.sqrt((x * x).sum(axis=axis, keepdims=True)), 1e-12),))
    check_gradient(op, [x], 0)
    op = core.CreateOperator("NormalizeL1", ["X"], ["Y"], axis=axis)
    check_reference(op, [x], lambda x: (x / np.abs(x).sum(axis=axis, keepdims=True),))


def test_normalize_zero_rows():
    x = np.zeros((2, 3), np.float32)
    check_reference(core.CreateOperator("Normalize", ["X"], ["Y"]), [x], lambda x: (x,))
    check_reference(core.CreateOperator("NormalizeL1", ["X"], ["Y"]), [x], lambda x: (x,))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("average", [0, 1])
def test_lp_norm(p, average):
    x = data((3, 4), 4)
    x += 0.1 * np.sign(x)
    op = core.CreateOperator("LpNorm", ["X"], ["Z"], p=p, average=average)
    total = np.abs(x).sum() if p == 1 else (x * x).sum()
    (z,) = check_reference(op, [x], lambda x: (np.array([total / (x.size if average else 1)]),))
    assert z.shape == (1,)
    check_gradient(op, [x], 0)
    assert_fails_unchanged(core.CreateOperator("LpNorm", ["X"], ["Z"], p=3),
                           [x.astype(np.float32)], EnforceError, "'p' must be 1 or 2")


# -- Max / Min / Mean ----------------------------------------------------------------------
@pytest.mark.parametrize("op_type, fn", [("Max", np.maximum), ("Min", np.minimum)])
def test_max_min(op_type, fn):
    xs = [data((2, 3), seed) for seed in range(3)]
    op = core.CreateOperator(op_type, ["A", "B", "C"], ["Y"])
    check_reference(op, xs, lambda *xs: (fn(fn(xs[0], xs[1]), xs[2]),))
    for i in range(3):
        check_gradient(op, xs, i)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        (op_type + "Gradient", ["Y", "Y_grad", "A", "B", "C"], ["A_grad", "B_grad", "C_grad"])]
    assert_fails_unchanged(op, [xs[0], xs[1], np.ones(3)], EnforceError, "must have the shape")


def test_mean_broadcasts_and_its_gradient_reduces():
    xs = [data((2, 3, 4), 0), data((3, 1), 1), data((4,), 2)]
    op = core.CreateOperator("Mean", ["A", "B", "C"], ["Y"])
    check_reference(op, xs, lambda a, b, c: ((a + b + c) / 3,))
    for i in range(3):
        check_gradient(op, xs, i)
    assert_inference_matches_run(op, [x.astype(np.float32) for x in xs])
    bad = core.CreateOperator("Mean", ["B", "A"], ["B"])
    assert_fails_unchanged(bad, [xs[1], xs[0]], EnforceError, "Cannot broadcast output")
    assert_fails_unchanged(op, [xs[0], np.ones((5,)), xs[2]], EnforceError, "cannot broadcast")


def test_mean_gradient_legacy_form():
    dy = data((2, 2), 5)
    op = core.CreateOperator("MeanGradient", ["dY"], ["d0", "d1"])
    check_reference(op, [dy], lambda dy: (dy / 2, dy / 2))


# -- Mod -----------------------------------------------------------------------------------
@pytest.mark.parametrize("follow", [False, True])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_mod(follow, dtype):
    x = np.array([7, -7, 0, 13, -1], dtype)
    op = core.CreateOperator("Mod", ["X"], ["Y"], divisor=-3, sign_follow_divisor=follow)
    (y,) = check_reference(op, [x], lambda x: ([v - (-3) * int(v / -3) for v in x.tolist()]
                                               if not follow else [v % -3 for v in x.tolist()],))
    assert y.dtype == dtype
    assert_fails_unchanged(core.CreateOperator("Mod", ["X"], ["Y"], divisor=0), [x],
                           EnforceError, "must not be 0")
