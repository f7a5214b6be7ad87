"""Sqrt, Exp, Log, Abs, Negative, Sqr: values and Caffe2's composed gradients."""

import math

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng, run)

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

# Each op's documented scalar formula, applied element by element as the oracle.
SCALAR = {"Sqrt": math.sqrt, "Exp": math.exp, "Log": math.log, "Abs": abs,
          "Negative": lambda x: -x, "Sqr": lambda x: x * x}


def elementwise(fn, x):
    return np.array([fn(v) for v in x.ravel().tolist()], x.dtype).reshape(x.shape)


def positive(shape, dtype=np.float64, seed=0):
    return rng(seed).uniform(0.5, 2.0, shape).astype(dtype)


@pytest.mark.parametrize("op_type", sorted(SCALAR))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_the_formula(op_type, dtype):
    x = positive((3, 4), dtype)
    if op_type in ("Abs", "Negative", "Sqr", "Exp"):
        x = x * np.where(rng(1).random(x.shape) < 0.5, -1, 1).astype(dtype)
    (y,) = check_reference(core.CreateOperator(op_type, ["X"], ["Y"]), [x],
                           lambda x: (elementwise(SCALAR[op_type], x),), threshold=1e-6)
    assert y.dtype == dtype


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_negative_takes_integers(dtype):
    x = np.array([[3, -4, 0]], dtype)
    (y,) = run(core.CreateOperator("Negative", ["X"], ["Y"]), [x])
    assert y.dtype == dtype and y.tolist() == [[-3, 4, 0]]


@pytest.mark.parametrize("op_type", sorted(SCALAR))
def test_gradient_matches_finite_differences(op_type):
    x = positive((2, 3), seed=2)
    if op_type in ("Abs", "Negative", "Sqr", "Exp"):
        x = x * np.where(rng(3).random(x.shape) < 0.5, -1, 1)
    check_gradient(core.CreateOperator(op_type, ["X"], ["Y"]), [x], 0)


@pytest.mark.parametrize("op_type, expected", [
    ("Sqrt", [("Scale", ["Y_grad"], ["X_grad"], {"scale": 0.5}),
              ("Div", ["X_grad", "Y"], ["X_grad"], {})]),
    ("Exp", [("Mul", ["Y", "Y_grad"], ["X_grad"], {})]),
    ("Log", [("Div", ["Y_grad", "X"], ["X_grad"], {})]),
    ("Abs", [("AbsGradient", ["X", "Y_grad"], ["X_grad"], {})]),
    ("Negative", [("Negative", ["Y_grad"], ["X_grad"], {})]),
    ("Sqr", [("Scale", ["Y_grad"], ["Y_grad"], {"scale": 2.0}),  # in place, as Caffe2's
             ("Mul", ["Y_grad", "X"], ["X_grad"], {})]),
])
def test_gradient_ops_are_composed_as_caffe2_did(op_type, expected):
    ops, grads = gradient_ops(core.CreateOperator(op_type, ["X"], ["Y"]))
    got = [(o.type, list(o.input), list(o.output), {a.name: a.f for a in o.arg})
           for o in ops]
    assert got == expected and grads == {"X": "X_grad"}


def test_in_place_sqrt_still_differentiates():
    x = positive((4,), seed=4)
    net = core.Net("sqrt_in_place")
    net.Sqrt("X", "X")
    net.AddGradientOperators({"X": "dX"})
    workspace.FeedBlob("X", x)
    workspace.FeedBlob("dX", np.ones(4))
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("X_grad"), 0.5 / np.sqrt(x))


@pytest.mark.parametrize("op_type", ["Sqrt", "Exp", "Log", "Abs", "Sqr"])
def test_integer_input_fails_and_changes_nothing(op_type):
    assert_fails_unchanged(core.CreateOperator(op_type, ["X"], ["X"]),
                           [np.array([1, 4], np.int32)], EnforceError,
                           f"input 0 'X'.* has int32; {op_type} supports float32 and float64")


def test_abs_gradient_checks_shapes():
    op = core.CreateOperator("AbsGradient", ["X", "dY"], ["dX"])
    assert_fails_unchanged(op, [np.ones(3), np.ones(4)], EnforceError, "same shape")


@pytest.mark.parametrize("op_type", sorted(SCALAR))
def test_shape_inference_matches_the_run(op_type):
    assert_inference_matches_run(core.CreateOperator(op_type, ["X"], ["Y"]),
                                 [positive((2, 5), np.float32)])
