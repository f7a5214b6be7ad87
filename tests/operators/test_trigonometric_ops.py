"""Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh against Python's math, with gradients."""

import math

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

FUNCTIONS = {"Sin": math.sin, "Cos": math.cos, "Tan": math.tan, "Asin": math.asin,
             "Acos": math.acos, "Atan": math.atan, "Sinh": math.sinh, "Cosh": math.cosh}
GRADIENT_INPUTS = {"Sinh": ["Y_grad", "X"], "Cosh": ["Y_grad", "X"]}


def inputs(dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(-0.8, 0.8, (3, 4)).astype(dtype)


@pytest.mark.parametrize("op_type", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_math(op_type, dtype):
    x = inputs(dtype)
    ref = np.vectorize(FUNCTIONS[op_type])
    (y,) = check_reference(core.CreateOperator(op_type, ["X"], ["Y"]), [x],
                           lambda x: (ref(x.astype(np.float64)),), threshold=1e-6)
    assert y.dtype == dtype


@pytest.mark.parametrize("op_type", sorted(FUNCTIONS))
def test_gradient(op_type):
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    check_gradient(op, [inputs(seed=1)], 0)
    ops, _ = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [
        (op_type + "Gradient", GRADIENT_INPUTS.get(op_type, ["X", "Y_grad"]))]
    assert_inference_matches_run(op, [inputs(np.float32)])


def test_integers_are_refused():
    assert_fails_unchanged(core.CreateOperator("Sin", ["X"], ["Y"]), [np.ones(3, np.int32)],
                           EnforceError, "must be a float tensor")
