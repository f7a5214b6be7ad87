"""Flatten, FlattenToVec and their gradient ResizeLike."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng, run)

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def flattened(x, axis):
    """Row-major copy into (prod(dims[:axis]), prod(dims[axis:])), element by element."""
    outer = 1
    for d in x.shape[:axis]:
        outer *= d
    inner = x.size // outer if outer else int(np.prod(x.shape[axis:]))
    out = np.empty((outer, inner), x.dtype)
    for k, v in enumerate(x.ravel().tolist()):
        out[k // inner, k % inner] = v
    return out


@pytest.mark.parametrize("shape, axis", [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 2),
                                         ((2, 3, 4), 3), ((5,), 1), ((0, 3), 1)])
def test_flatten(shape, axis):
    x = rng(0).standard_normal(shape).astype(np.float32)
    kwargs = {} if axis is None else {"axis": axis}
    (y,) = check_reference(core.CreateOperator("Flatten", ["X"], ["Y"], **kwargs), [x],
                           lambda x: (flattened(x, 1 if axis is None else axis),))
    assert y.ndim == 2


def test_flatten_to_vec():
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    check_reference(core.CreateOperator("FlattenToVec", ["X"], ["Y"]), [x],
                    lambda x: (np.array(list(range(24)), np.int32),))


@pytest.mark.parametrize("op", [core.CreateOperator("Flatten", ["X"], ["Y"], axis=2),
                                core.CreateOperator("FlattenToVec", ["X"], ["Y"])])
def test_gradient_is_resize_like(op):
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("ResizeLike", ["Y_grad", "X"], ["X_grad"])]
    assert list(ops[0].arg) == []  # 'axis' means nothing to ResizeLike
    check_gradient(op, [rng(1).standard_normal((2, 3, 2))], 0)


def test_resize_like_needs_equal_sizes():
    op = core.CreateOperator("ResizeLike", ["A", "B"], ["A"])
    assert_fails_unchanged(op, [np.ones(6), np.ones((2, 2))], EnforceError, "same number")
    (y,) = run(core.CreateOperator("ResizeLike", ["A", "B"], ["C"]),
               [np.arange(6.0), np.ones((2, 3), np.int32)])
    assert y.shape == (2, 3) and y.dtype == np.float64


def test_bad_axis_and_rank_fail_and_change_nothing():
    assert_fails_unchanged(core.CreateOperator("Flatten", ["X"], ["Y"], axis=4),
                           [np.ones((2, 3, 4))], EnforceError, "'axis' must be in \\[0, 3\\]")
    assert_fails_unchanged(core.CreateOperator("FlattenToVec", ["X"], ["Y"]),
                           [np.array(1.0)], EnforceError, "rank >= 1")


@pytest.mark.parametrize("op", [core.CreateOperator("Flatten", ["X"], ["Y"]),
                                core.CreateOperator("Flatten", ["X"], ["Y"], axis=2),
                                core.CreateOperator("FlattenToVec", ["X"], ["Y"])])
def test_shape_inference_matches_the_run(op):
    assert_inference_matches_run(op, [np.ones((2, 3, 4), np.float64)])
