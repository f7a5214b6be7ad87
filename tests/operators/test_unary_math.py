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


# -- Rsqrt, Cube, Cbrt, Reciprocal, Erf, Ceil, Floor, Sign ---------------------------------
MORE = {"Rsqrt": lambda v: 1 / math.sqrt(v), "Cube": lambda v: v ** 3,
        "Cbrt": lambda v: math.copysign(abs(v) ** (1 / 3), v), "Reciprocal": lambda v: 1 / v,
        "Erf": math.erf, "Ceil": math.ceil, "Floor": math.floor,
        "Sign": lambda v: (v > 0) - (v < 0)}
DIFFERENTIABLE = {"Rsqrt": ["Y_grad", "Y"], "Cube": ["Y_grad", "X"], "Cbrt": ["Y_grad", "Y"],
                  "Reciprocal": ["Y", "Y_grad"], "Erf": ["X", "Y_grad"]}


@pytest.mark.parametrize("op_type", sorted(MORE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_more_functions_match_the_formula(op_type, dtype):
    x = positive((3, 4), dtype, seed=5)
    if op_type not in ("Rsqrt",):
        x = x * np.where(rng(6).random(x.shape) < 0.5, -1, 1).astype(dtype)
    (y,) = check_reference(core.CreateOperator(op_type, ["X"], ["Y"]), [x],
                           lambda x: (elementwise(MORE[op_type], x),), threshold=1e-6)
    assert y.dtype == dtype


@pytest.mark.parametrize("op_type", sorted(DIFFERENTIABLE))
def test_more_gradients(op_type):
    x = positive((2, 3), seed=7)
    check_gradient(core.CreateOperator(op_type, ["X"], ["Y"]), [x], 0)
    ops, _ = gradient_ops(core.CreateOperator(op_type, ["X"], ["Y"]))
    assert [(o.type, list(o.input)) for o in ops] == [(op_type + "Gradient",
                                                       DIFFERENTIABLE[op_type])]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_cube_takes_integers(dtype):
    (y,) = run(core.CreateOperator("Cube", ["X"], ["Y"]), [np.array([-2, 3], dtype)])
    assert y.dtype == dtype and y.tolist() == [-8, 27]


@pytest.mark.parametrize("op_type, match", [("Ceil", "not implemented"),
                                            ("Floor", "not implemented"),
                                            ("Sign", "should not")])
def test_rounding_and_sign_have_no_gradient(op_type, match):
    with pytest.raises(Exception, match=f"(?i){match}"):
        gradient_ops(core.CreateOperator(op_type, ["X"], ["Y"]))


def test_cube_cannot_run_in_place():
    with pytest.raises(Exception, match="in-place"):
        workspace.RunOperatorOnce(core.CreateOperator("Cube", ["X"], ["X"]))
