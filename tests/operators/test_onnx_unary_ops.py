"""Asinh, Acosh, Atanh, Round, BitwiseNot against Python's math / NumPy, with gradients."""

import math

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

# type: (math function, a domain to draw X from)
FUNCTIONS = {"Asinh": (math.asinh, (-3.0, 3.0)), "Acosh": (math.acosh, (1.1, 4.0)),
             "Atanh": (math.atanh, (-0.8, 0.8))}


def inputs(op_type, dtype=np.float64, seed=0):
    low, high = FUNCTIONS[op_type][1]
    return np.random.default_rng(seed).uniform(low, high, (3, 4)).astype(dtype)


@pytest.mark.parametrize("op_type", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_hyperbolics_match_math(op_type, dtype):
    x = inputs(op_type, dtype)
    ref = np.vectorize(FUNCTIONS[op_type][0])
    (y,) = check_reference(core.CreateOperator(op_type, ["X"], ["Y"]), [x],
                           lambda x: (ref(x.astype(np.float64)),), threshold=1e-6)
    assert y.dtype == dtype


@pytest.mark.parametrize("op_type", sorted(FUNCTIONS))
def test_inverse_hyperbolic_gradients(op_type):
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    check_gradient(op, [inputs(op_type, seed=1)], 0)
    ops, _ = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [(op_type + "Gradient", ["X", "Y_grad"])]
    assert_inference_matches_run(op, [inputs(op_type, np.float32)])


def test_round_takes_halves_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, 1.7, -1.2, 8388609.0],
                 np.float32)
    want = np.array([-2, -2, -0, 0, 2, 2, 0, 2, -1, 8388609], np.float32)
    (y,) = check_reference(core.CreateOperator("Round", ["X"], ["Y"]), [x],
                           lambda x: (want,), threshold=0)
    assert y.dtype == np.float32
    assert np.signbit(y[2])  # -0.5 rounds to -0


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_bitwise_not_flips_every_bit(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.min, 0, 1, info.max, 5], dtype)
    (y,) = check_reference(core.CreateOperator("BitwiseNot", ["X"], ["Y"]), [x],
                           lambda x: ((x.astype(object) ^ ((1 << info.bits) - 1)
                                       if info.min == 0 else -x.astype(object) - 1)
                                      .astype(dtype),), threshold=0)
    assert y.dtype == dtype


def test_wrong_types_are_refused():
    assert_fails_unchanged(core.CreateOperator("Asinh", ["X"], ["Y"]), [np.ones(3, np.int32)],
                           EnforceError, "must be a float tensor")
    assert_fails_unchanged(core.CreateOperator("BitwiseNot", ["X"], ["Y"]),
                           [np.ones(3, np.float32)], EnforceError, "BitwiseNot supports")
