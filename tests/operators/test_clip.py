"""Clip and ClipGradient (from the output Y, zero on the bounds)."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng, run)

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def clipped(x, lo, hi):
    return np.array([min(max(v, lo), hi) for v in x.ravel().tolist()], x.dtype).reshape(x.shape)


@pytest.mark.parametrize("kwargs, lo, hi", [({"min": -0.5, "max": 0.5}, -0.5, 0.5),
                                            ({"min": 0.0}, 0.0, np.inf),
                                            ({"max": -0.25}, -np.inf, -0.25),
                                            ({}, -np.inf, np.inf)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip(kwargs, lo, hi, dtype):
    x = rng(0).standard_normal((3, 4)).astype(dtype)
    x[0, 0] = np.finfo(dtype).max
    (y,) = check_reference(core.CreateOperator("Clip", ["X"], ["Y"], **kwargs), [x],
                           lambda x: (clipped(x, lo, hi),), threshold=0)
    assert y.dtype == dtype


def test_clip_gradient_is_zero_on_and_outside_the_bounds():
    y = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    op = core.CreateOperator("ClipGradient", ["Y", "dY"], ["dX"], min=-0.5, max=0.5)
    check_reference(op, [y, dy], lambda y, dy: (np.array([0, 0, 3.0, 0, 0], np.float32),))


def test_gradient_layout_and_values():
    op = core.CreateOperator("Clip", ["X"], ["Y"], min=-0.5, max=0.5)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("ClipGradient", ["Y", "Y_grad"], ["X_grad"])]
    assert {a.name: a.f for a in ops[0].arg} == {"min": -0.5, "max": 0.5}
    x = np.array([[-2.0, -0.3, 0.1], [0.4, 0.2, 3.0]])
    check_gradient(op, [x], 0, stepsize=1e-4)


def test_integer_input_fails_and_changes_nothing():
    assert_fails_unchanged(core.CreateOperator("Clip", ["X"], ["X"], min=0.0),
                           [np.array([-1, 2], np.int32)], EnforceError, "float32 and float64")


def test_in_place_clip():
    (y,) = run(core.CreateOperator("Clip", ["X"], ["X"], min=0.0, max=1.0),
               [np.array([-1.0, 0.5, 2.0])])
    assert y.tolist() == [0.0, 0.5, 1.0]


def test_shape_inference_matches_the_run():
    assert_inference_matches_run(core.CreateOperator("Clip", ["X"], ["Y"], min=0.0),
                                 [np.ones((2, 3), np.float32)])
