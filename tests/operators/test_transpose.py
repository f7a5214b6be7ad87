"""Transpose (+ inverse-axes gradient) and NCHW2NHWC / NHWC2NCHW (each other's gradient)."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng)

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def permuted(x, axes):
    """out[i0, i1, ...] = x[j] where j[axes[k]] = i_k: a loop over every index."""
    out = np.empty(tuple(x.shape[a] for a in axes), x.dtype)
    for idx in np.ndindex(out.shape):
        src = [0] * x.ndim
        for k, a in enumerate(axes):
            src[a] = idx[k]
        out[idx] = x[tuple(src)]
    return out


@pytest.mark.parametrize("shape, axes", [((2, 3), None), ((2, 3, 4), None),
                                         ((2, 3, 4), [1, 0, 2]), ((2, 3, 4, 5), [0, 3, 1, 2]),
                                         ((5,), [0])])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_transpose(shape, axes, dtype):
    x = (rng(0).standard_normal(shape) * 10).astype(dtype)
    kwargs = {} if axes is None else {"axes": axes}
    expected_axes = list(range(len(shape)))[::-1] if axes is None else axes
    (y,) = check_reference(core.CreateOperator("Transpose", ["X"], ["Y"], **kwargs), [x],
                           lambda x: (permuted(x, expected_axes),))
    assert y.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("axes", [None, [1, 2, 0], [2, 0, 1]])
def test_transpose_gradient(axes):
    kwargs = {} if axes is None else {"axes": axes}
    op = core.CreateOperator("Transpose", ["X"], ["Y"], **kwargs)
    check_gradient(op, [rng(1).standard_normal((2, 3, 4))], 0)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("Transpose", ["Y_grad"], ["X_grad"])]
    inverse = [a.ints for a in ops[0].arg if a.name == "axes"]
    if axes is None:
        assert inverse == []
    else:
        assert [list(inverse[0])[a] for a in axes] == [0, 1, 2]  # inverse[axes[i]] == i


@pytest.mark.parametrize("axes, match", [([0, 1], "has 2 entries.*3 dims"),
                                         ([0, 0, 1], "permutation")])
def test_bad_axes_fail_and_change_nothing(axes, match):
    op = core.CreateOperator("Transpose", ["X"], ["Y"], axes=axes)
    assert_fails_unchanged(op, [np.ones((2, 3, 4), np.float32)], EnforceError, match)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 4), (1, 2, 3, 4, 5)])
def test_order_switches(shape):
    x = rng(2).standard_normal(shape).astype(np.float32)
    nd = len(shape)
    to_nhwc = [0] + list(range(2, nd)) + [1]
    (y,) = check_reference(core.CreateOperator("NCHW2NHWC", ["X"], ["Y"]), [x],
                           lambda x: (permuted(x, to_nhwc),))
    to_nchw = [0, nd - 1] + list(range(1, nd - 1))
    check_reference(core.CreateOperator("NHWC2NCHW", ["Y"], ["Z"]), [y],
                    lambda y: (permuted(y, to_nchw),))
    check_reference(core.CreateOperator("NHWC2NCHW", ["Y"], ["Z"]), [y], lambda y: (x,))


@pytest.mark.parametrize("op_type, inverse", [("NCHW2NHWC", "NHWC2NCHW"),
                                              ("NHWC2NCHW", "NCHW2NHWC")])
def test_order_switch_gradients_are_each_other(op_type, inverse):
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        (inverse, ["Y_grad"], ["X_grad"])]
    check_gradient(op, [rng(3).standard_normal((2, 3, 2, 2))], 0)


def test_order_switch_needs_rank_three():
    assert_fails_unchanged(core.CreateOperator("NCHW2NHWC", ["X"], ["Y"]),
                           [np.ones((2, 3), np.float32)], EnforceError, "at least 3 dims")


@pytest.mark.parametrize("op, shape", [
    (core.CreateOperator("Transpose", ["X"], ["Y"], axes=[2, 0, 1]), (2, 3, 4)),
    (core.CreateOperator("Transpose", ["X"], ["Y"]), (2, 3, 4)),
    (core.CreateOperator("NCHW2NHWC", ["X"], ["Y"]), (1, 2, 3, 4)),
    (core.CreateOperator("NHWC2NCHW", ["X"], ["Y"]), (1, 2, 3, 4)),
])
def test_shape_inference_matches_the_run(op, shape):
    assert_inference_matches_run(op, [np.ones(shape, np.float32)])
