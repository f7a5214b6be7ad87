"""LayerNorm, GroupNorm, InstanceNorm and their gradients against NumPy written here."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.testing import check_gradient, check_reference


def layer_norm_ref(axis, eps, affine=False):
    def ref(x, gamma=None, beta=None):
        rows = x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        mean = rows.mean(axis=1, keepdims=True)
        std = np.sqrt(rows.var(axis=1, keepdims=True) + eps)
        y = ((rows - mean) / std).reshape(x.shape)
        if affine:
            y = y * gamma + beta
        stats = x.shape[:axis] + (1,)
        return y, mean.reshape(stats), std.reshape(stats)
    return ref


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm(axis, affine):
    rng = np.random.default_rng(axis + 3)
    x = rng.standard_normal((2, 3, 4))
    params = [rng.standard_normal(x.shape[axis:]) for _ in range(2)] if affine else []
    names = ["X", "gamma", "beta"][:1 + len(params)]
    op = core.CreateOperator("LayerNorm", names, ["Y", "mean", "std"], axis=axis, epsilon=1e-3,
                             elementwise_affine=affine)
    check_reference(op, [x, *params], layer_norm_ref(axis % 3, 1e-3, affine), threshold=1e-8)
    for index in range(len(names)):
        check_gradient(op, [x, *params], index)
    assert_inference_matches_run(op, [x.astype(np.float32), *[p.astype(np.float32)
                                                              for p in params]])


def test_layer_norm_gradient_ops_are_caffe2s():
    ops, grads = gradient_ops(core.CreateOperator("LayerNorm", ["X", "g", "b"],
                                                  ["Y", "m", "s"], elementwise_affine=1))
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("LayerNormGradient", ["Y_grad", "Y", "m", "s", "X", "g"],
         ["X_grad", "g_grad", "b_grad"])]
    ops, _ = gradient_ops(core.CreateOperator("LayerNorm", ["X"], ["Y", "m", "s"]))
    assert [list(o.input) for o in ops] == [["Y_grad", "Y", "m", "s", "X"]]


def test_layer_norm_empty_batch_and_c10_alias():
    x = np.zeros((0, 3), np.float32)
    check_reference(core.CreateOperator("C10LayerNorm_DontUseThisOpYet", ["X"],
                                        ["Y", "m", "s"]), [x],
                    lambda x: (x, np.zeros((0, 1)), np.zeros((0, 1))))


def test_layer_norm_checks_its_affine_inputs():
    op = core.CreateOperator("LayerNorm", ["X", "g", "b"], ["Y", "m", "s"], elementwise_affine=1)
    x = np.ones((2, 3), np.float32)
    assert_fails_unchanged(op, [x, np.ones(2, np.float32), np.ones(3, np.float32)], EnforceError,
                           "has 2 elements, expected 3")
    op = core.CreateOperator("LayerNorm", ["X", "g", "b"], ["Y", "m", "s"])
    assert_fails_unchanged(op, [x, np.ones(3, np.float32), np.ones(3, np.float32)], EnforceError,
                           "elementwise_affine=0 the op takes 1 inputs")


def group_norm_ref(groups, eps, order):
    def ref(x, gamma, beta):
        if order == "NHWC":
            x = np.moveaxis(x, -1, 1)
        n, c = x.shape[:2]
        g = x.reshape(n, groups, -1)
        mean, var = g.mean(axis=2), g.var(axis=2)
        y = (g - mean[..., None]) / np.sqrt(var[..., None] + eps)
        y = y.reshape(x.shape) * gamma.reshape(1, c, *[1] * (x.ndim - 2)) \
            + beta.reshape(1, c, *[1] * (x.ndim - 2))
        if order == "NHWC":
            y = np.moveaxis(y, 1, -1)
        return y, mean, 1 / np.sqrt(var + eps)
    return ref


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups, shape", [(2, (2, 4, 3, 2)), (3, (1, 6, 5)), (1, (3, 2))])
def test_group_norm(order, groups, shape):
    rng = np.random.default_rng(groups)
    x = rng.standard_normal(shape if order == "NCHW" else (shape[0], *shape[2:], shape[1]))
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    op = core.CreateOperator("GroupNorm", ["X", "gamma", "beta"], ["Y", "mean", "inv_std"],
                             group=groups, epsilon=1e-4, order=order)
    check_reference(op, [x, gamma, beta], group_norm_ref(groups, 1e-4, order), threshold=1e-8)
    for index in range(3):
        check_gradient(op, [x, gamma, beta], index)
    assert_inference_matches_run(op, [x.astype(np.float32), gamma.astype(np.float32),
                                      beta.astype(np.float32)])


def test_group_norm_needs_whole_groups():
    op = core.CreateOperator("GroupNorm", ["X", "g", "b"], ["Y", "m", "s"], group=4)
    assert_fails_unchanged(op, [np.ones((2, 6), np.float32), np.ones(6, np.float32),
                                np.ones(6, np.float32)], EnforceError, "do not split into 4")


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("outputs", [["Y"], ["Y", "mean"], ["Y", "mean", "inv"]])
def test_instance_norm(order, outputs):
    rng = np.random.default_rng(len(outputs))
    x = rng.standard_normal((2, 3, 4, 2) if order == "NCHW" else (2, 4, 2, 3))
    scale, bias = rng.standard_normal(3), rng.standard_normal(3)
    op = core.CreateOperator("InstanceNorm", ["X", "s", "b"], outputs, epsilon=1e-5,
                             order=order)
    ref = group_norm_ref(3, 1e-5, order)
    check_reference(op, [x, scale, bias], lambda *a: ref(*a)[:len(outputs)], threshold=1e-8)
    for index in range(3):
        check_gradient(op, [x, scale, bias], index)
    ops, _ = gradient_ops(op)
    assert [list(o.input) for o in ops] == [["X", "s", "b", "Y_grad", *outputs[1:]]]


def test_in_place_instance_norm_cannot_be_differentiated():
    with pytest.raises(GradientError, match="in place"):
        gradient_ops(core.CreateOperator("InstanceNorm", ["X", "s", "b"], ["X"]))
