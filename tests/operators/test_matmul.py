"""MatMul against NumPy written here: flattening at axis_a / axis_b, transposes, gradients."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def as_matrix(X, axis, trans):
    axis = axis + X.ndim if axis < 0 else axis
    m = X.reshape(int(np.prod(X.shape[:axis])), int(np.prod(X.shape[axis:])))
    return m.T if trans else m


def matmul_ref(axis_a=1, axis_b=1, trans_a=0, trans_b=0):
    return lambda A, B: (as_matrix(A, axis_a, trans_a) @ as_matrix(B, axis_b, trans_b),)


@settings(max_examples=20)
@given(m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4), trans_a=st.booleans(),
       trans_b=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_matches_numpy(m, k, n, trans_a, trans_b, dtype, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"], trans_a=trans_a, trans_b=trans_b)
    (Y,) = check_reference(op, [A, B], matmul_ref(1, 1, trans_a, trans_b), threshold=1e-5)
    assert Y.dtype == dtype and Y.shape == (m, n)


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("axis_a, axis_b", [(1, 1), (2, -1), (-2, 2)])
def test_axes_and_gradients(trans_a, trans_b, axis_a, axis_b):
    rng = np.random.default_rng(trans_a * 2 + trans_b)
    A = rng.standard_normal((2, 3, 2))
    k = as_matrix(A, axis_a, trans_a).shape[1]
    rows, cols = (3, k) if trans_b else (k, 3)
    # a rank-3 B that flattens at axis_b to the (rows, cols) matrix
    B = rng.standard_normal((rows, cols, 1) if axis_b == 1 else (rows, 1, cols))
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"], axis_a=axis_a, axis_b=axis_b,
                             trans_a=trans_a, trans_b=trans_b)
    check_reference(op, [A, B], matmul_ref(axis_a, axis_b, trans_a, trans_b))
    for index in (0, 1):
        check_gradient(op, [A, B], index)


def test_gradient_ops_are_caffe2s():
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"], trans_b=1, axis_a=2)
    ops, grads = gradient_ops(op)
    got = [(o.type, list(o.input), list(o.output), {a.name: a.i for a in o.arg}) for o in ops]
    assert got == [("MatMul", ["Y_grad", "B", "A"], ["A_grad"], {"axis_b": 1}),
                   ("MatMul", ["Y_grad", "A", "B"], ["B_grad"], {"trans_a": 1, "axis_b": 2})]
    assert grads == {"A": "A_grad", "B": "B_grad"}


def test_third_input_gives_the_output_shape():
    rng = np.random.default_rng(1)
    A, B, like = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), np.zeros((4, 2))
    op = core.CreateOperator("MatMul", ["A", "B", "L"], ["Y"])
    check_reference(op, [A, B, like], lambda A, B, L: ((A @ B).reshape(4, 2),))
    assert_inference_matches_run(op, [A, B, like])


def test_shape_inference_matches_the_run():
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"], trans_a=1, axis_b=2)
    assert_inference_matches_run(op, [np.ones((3, 2), np.float32), np.ones((3, 1, 5), np.float32)])


def test_bad_input_fails_and_changes_nothing():
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)],
                           EnforceError, "Dimension mismatch: A: 2 3, B: 4 2")
    assert_fails_unchanged(op, [np.ones((2, 3), np.int32), np.ones((3, 2), np.int32)],
                           EnforceError, "float32 or float64")
    op = core.CreateOperator("MatMul", ["A", "B"], ["Y"], axis_a=5)
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)],
                           EnforceError, "'axis_a' = 5 is out of range")
