"""Shape (with and without 'axes') and Size: int64 metadata of any tensor."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, run)

from caffe2lite import core
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.runtime import NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, registry


@pytest.mark.parametrize("x", [np.ones((2, 3, 4), np.float32), np.zeros((0, 5), np.int32),
                               np.array(3.0), np.array([b"a", b"b"], object)])
def test_shape_and_size(x):
    (shape,) = run(core.CreateOperator("Shape", ["X"], ["S"]), [x])
    assert shape.dtype == np.int64 and shape.tolist() == list(x.shape)
    (size,) = run(core.CreateOperator("Size", ["X"], ["N"]), [x])
    expected = 1
    for d in x.shape:
        expected *= d
    assert size.dtype == np.int64 and size.shape == () and int(size) == expected


def test_shape_axes_select_and_order():
    (shape,) = run(core.CreateOperator("Shape", ["X"], ["S"], axes=[2, 0]),
                   [np.ones((2, 3, 4))])
    assert shape.tolist() == [4, 2] and shape.dtype == np.int64


@pytest.mark.parametrize("axes", [[3], [-1]])
def test_axes_out_of_range_fail(axes):
    assert_fails_unchanged(core.CreateOperator("Shape", ["X"], ["S"],
                                               axes=axes),
                           [np.ones((2, 3, 4))], EnforceError, "out of range")


def test_gradients_as_caffe2_declared():
    assert registry.get_schema("Shape").gradient == SHOULD_NOT_DO_GRADIENT
    assert registry.get_schema("Size").gradient == NO_GRADIENT
    with pytest.raises(GradientError, match="One should not call gradient for operator Shape"):
        gradient_ops(core.CreateOperator("Shape", ["X"], ["S"]))
    ops, grads = gradient_ops(core.CreateOperator("Size", ["X"], ["N"]))
    assert ops == [] and grads == {}


@pytest.mark.parametrize("op", [core.CreateOperator("Shape", ["X"], ["S"]),
                                core.CreateOperator("Shape", ["X"], ["S"], axes=[1]),
                                core.CreateOperator("Size", ["X"], ["S"])])
def test_shape_inference_matches_the_run(op):
    assert_inference_matches_run(op, [np.ones((2, 3), np.float32)])
