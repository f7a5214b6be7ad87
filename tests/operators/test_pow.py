"""Pow (exponent argument or tensor), its composed gradients, and SumReduceLike."""

import math

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng)

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.testing import check_gradient, check_reference


def powered(x, e):
    x, e = np.broadcast_arrays(x, e)
    return np.array([math.pow(a, b) for a, b in zip(x.ravel().tolist(), e.ravel().tolist())],
                    np.float32).reshape(x.shape)


def positive(shape, seed=0):
    return rng(seed).uniform(0.5, 2.0, shape).astype(np.float32)


@pytest.mark.parametrize("e", [2.0, 0.5, -1.0, 3.0, -0.5, 1.7])
def test_exponent_argument(e):
    check_reference(core.CreateOperator("Pow", ["X"], ["Y"], exponent=e), [positive((3, 4))],
                    lambda x: (powered(x, e),), threshold=1e-5)


@pytest.mark.parametrize("e_shape, kwargs, view", [
    ((3, 4), {}, (3, 4)), ((1,), {}, ()), ((4,), {"broadcast": 1}, (1, 1, 4)),
    ((3,), {"broadcast": 1, "axis": 1}, (1, 3, 1)),
])
def test_exponent_tensor(e_shape, kwargs, view):
    x_shape = (2, 3, 4) if kwargs else (3, 4)
    x, e = positive(x_shape), rng(1).uniform(-2, 2, e_shape).astype(np.float32)
    check_reference(core.CreateOperator("Pow", ["X", "E"], ["Y"], **kwargs), [x, e],
                    lambda x, e: (powered(x, e.reshape(view)),), threshold=1e-5)


@pytest.mark.parametrize("inputs, kwargs, match", [
    ([np.ones((2, 3), np.float32), np.ones(3, np.float32)], {}, "forget to set broadcast"),
    ([np.ones((2, 3), np.float32), np.ones(3, np.float32)], {"exponent": 2.0}, "not both"),
    ([np.ones((2, 3), np.float32)], {}, "'exponent' argument or a second input"),
    ([np.ones((2, 3), np.float64)], {"exponent": 2.0}, "float64; Pow supports float32"),
])
def test_bad_use_fails_and_changes_nothing(inputs, kwargs, match):
    op = core.CreateOperator("Pow", ["X", "E"][:len(inputs)], ["X"], **kwargs)
    assert_fails_unchanged(op, inputs, EnforceError, match)


def test_gradient_with_exponent_argument():
    op = core.CreateOperator("Pow", ["X"], ["Y"], exponent=3.0)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output), {a.name: a.f for a in o.arg})
            for o in ops] == [("Pow", ["X"], ["X_grad"], {"exponent": 2.0}),
                              ("Mul", ["X_grad", "Y_grad"], ["X_grad"], {}),
                              ("Scale", ["X_grad"], ["X_grad"], {"scale": 3.0})]
    check_gradient(op, [positive((2, 3), 2)], 0)


def test_in_place_gradient_reads_the_output():
    op = core.CreateOperator("Pow", ["X"], ["X"], exponent=2.0)
    ops, _ = gradient_ops(op)
    assert {a.name: a.f for a in ops[0].arg} == {"exponent": 0.5}
    x = positive((4,), 3)
    net = core.Net("pow_in_place")
    net.Proto().op.add().CopyFrom(op)
    net.AddGradientOperators({"X": "dX"})
    workspace.FeedBlob("X", x)
    workspace.FeedBlob("dX", np.ones(4, np.float32))
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("X_grad"), 2 * x, rtol=1e-5)
    with pytest.raises(GradientError, match="exponent 0"):
        gradient_ops(core.CreateOperator("Pow", ["X"], ["X"], exponent=0.0))


@pytest.mark.parametrize("e_shape, kwargs", [((2, 3), {}), ((3,), {"broadcast": 1})])
def test_gradient_with_exponent_tensor(e_shape, kwargs):
    op = core.CreateOperator("Pow", ["X", "E"], ["Y"], **kwargs)
    ops, grads = gradient_ops(op)
    types = [o.type for o in ops]
    tail = ["Mul", "SumReduceLike"] if kwargs else ["Mul"]
    assert types == ["ConstantFill", "Sub", "Pow", "Mul", "Mul", "Log", "Mul"] + tail
    assert grads == {"X": "X_grad", "E": "E_grad"}
    assert list(ops[-1].output) == ["E_grad"]
    x, e = positive((2, 3), 4), rng(5).uniform(-1.5, 1.5, e_shape).astype(np.float32)
    check_gradient(op, [x, e], 0)
    check_gradient(op, [x, e], 1)


def test_tensor_exponent_gradient_refuses_in_place():
    with pytest.raises(GradientError, match="in-place"):
        gradient_ops(core.CreateOperator("Pow", ["X", "E"], ["X"]))


@pytest.mark.parametrize("a_shape, b_shape, kwargs, axes", [
    ((2, 3, 4), (4,), {}, (0, 1)), ((2, 3, 4), (3,), {"axis": 1}, (0, 2)),
    ((2, 3, 4), (1,), {}, (0, 1, 2)), ((2, 3, 4), (3, 4), {}, (0,)),
])
def test_sum_reduce_like(a_shape, b_shape, kwargs, axes):
    a = rng(6).standard_normal(a_shape).astype(np.float32)
    op = core.CreateOperator("SumReduceLike", ["A", "B"], ["C"], **kwargs)
    (c,) = check_reference(op, [a, np.zeros(b_shape, np.int32)],
                           lambda a, b: (a.sum(axis=axes).reshape(b_shape),), threshold=1e-5)
    assert c.dtype == np.float32


def test_sum_reduce_like_refuses_a_b_that_does_not_fit():
    op = core.CreateOperator("SumReduceLike", ["A", "B"], ["C"])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones(4)], EnforceError,
                           "mismatch")


@pytest.mark.parametrize("op, inputs", [
    (core.CreateOperator("Pow", ["X"], ["Y"], exponent=2.0), [np.ones((2, 3), np.float32)]),
    (core.CreateOperator("SumReduceLike", ["A", "B"], ["C"]),
     [np.ones((2, 3), np.float32), np.ones(3, np.float32)]),
])
def test_shape_inference_matches_the_run(op, inputs):
    assert_inference_matches_run(op, inputs)
