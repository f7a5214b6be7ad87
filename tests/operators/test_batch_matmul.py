"""BatchMatMul: trans flags, Caffe2's rank rules with and without broadcast, gradients."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng)

from caffe2lite import core
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.testing import check_gradient, check_reference


def matmul_loop(a, b):
    """Triple loop over (batch, i, j) with the dot product spelled out."""
    out = np.zeros(a.shape[:-1] + b.shape[-1:], np.float64)
    for batch in np.ndindex(a.shape[:-2]):
        for i in range(a.shape[-2]):
            for j in range(b.shape[-1]):
                out[batch + (i, j)] = sum(float(a[batch + (i, k)]) * float(b[batch + (k, j)])
                                          for k in range(a.shape[-1]))
    return out


def swap_last(x):
    return np.swapaxes(x, -1, -2)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_forward(trans_a, trans_b, batch):
    r = rng(0)
    m, k, n = 3, 4, 5
    a = r.standard_normal(batch + ((k, m) if trans_a else (m, k))).astype(np.float32)
    b = r.standard_normal(batch + ((n, k) if trans_b else (k, n))).astype(np.float32)
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], trans_a=trans_a, trans_b=trans_b)
    ref = lambda a, b: (matmul_loop(swap_last(a) if trans_a else a,  # noqa: E731
                                    swap_last(b) if trans_b else b).astype(np.float32),)
    (y,) = check_reference(op, [a, b], ref, threshold=1e-5)
    assert y.shape == batch + (m, n) and y.dtype == np.float32


@pytest.mark.parametrize("a_shape, b_shape, y_shape", [
    ((2, 3, 4), (4, 5), (2, 3, 5)), ((3, 4), (2, 4, 5), (2, 3, 5)),
    ((4,), (2, 4, 5), (2, 5)), ((2, 3, 4), (4,), (2, 3)), ((4,), (4,), (1,)),
    ((2, 1, 3, 4), (5, 4, 2), (2, 5, 3, 2)),
])
def test_broadcast_follows_caffe2s_shape_rule(a_shape, b_shape, y_shape):
    r = rng(1)
    a, b = r.standard_normal(a_shape), r.standard_normal(b_shape)
    a2 = a.reshape((1,) + a_shape) if len(a_shape) == 1 else a
    b2 = b.reshape(b_shape + (1,)) if len(b_shape) == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = np.broadcast_to(a2, batch + a2.shape[-2:])
    b3 = np.broadcast_to(b2, batch + b2.shape[-2:])
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], broadcast=1)
    (y,) = check_reference(op, [a, b], lambda a, b: (matmul_loop(a3, b3).reshape(y_shape),))
    assert y.shape == y_shape


@pytest.mark.parametrize("a_shape, b_shape, kwargs, match", [
    ((2, 3, 4), (4, 5), {}, "one rank >= 2"),
    ((4,), (4, 5), {}, "one rank >= 2"),
    ((2, 3, 4), (3, 4, 5), {}, "batch dims differ"),
    ((3, 4), (5, 6), {}, "inner dimensions differ"),
    ((2, 3, 4), (3, 4, 5), {"broadcast": 1}, "cannot be broadcast"),
])
def test_bad_shapes_fail_and_change_nothing(a_shape, b_shape, kwargs, match):
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], **kwargs)
    assert_fails_unchanged(op, [np.ones(a_shape, np.float32), np.ones(b_shape, np.float32)],
                           EnforceError, match)


def test_integer_inputs_fail():
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"])
    assert_fails_unchanged(op, [np.ones((2, 2), np.int32), np.ones((2, 2), np.int32)],
                           EnforceError, "float32 and float64")


@pytest.mark.parametrize("trans_a, trans_b, expected", [
    (0, 0, [(["Y_grad", "B"], {"trans_b": 1}), (["A", "Y_grad"], {"trans_a": 1})]),
    (0, 1, [(["Y_grad", "B"], {}), (["Y_grad", "A"], {"trans_a": 1})]),
    (1, 0, [(["B", "Y_grad"], {"trans_b": 1}), (["A", "Y_grad"], {})]),
    (1, 1, [(["B", "Y_grad"], {"trans_a": 1, "trans_b": 1}),
            (["Y_grad", "A"], {"trans_a": 1, "trans_b": 1})]),
])
def test_gradient_is_composed_of_batch_matmuls(trans_a, trans_b, expected):
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], trans_a=trans_a, trans_b=trans_b)
    ops, grads = gradient_ops(op)
    assert [(list(o.input), {a.name: a.i for a in o.arg}) for o in ops] == expected
    assert [o.type for o in ops] == ["BatchMatMul"] * 2
    assert [list(o.output) for o in ops] == [["A_grad"], ["B_grad"]]
    r = rng(2)
    a = r.standard_normal((2, 4, 3) if trans_a else (2, 3, 4))
    b = r.standard_normal((2, 5, 4) if trans_b else (2, 4, 5))
    check_gradient(op, [a, b], 0)
    check_gradient(op, [a, b], 1)


def test_no_gradient_with_broadcast():
    with pytest.raises(GradientError, match="not supported with broadcast=1"):
        gradient_ops(core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], broadcast=1))


@pytest.mark.parametrize("a_shape, b_shape, kwargs", [
    ((2, 3, 4), (2, 4, 5), {}), ((2, 4, 3), (2, 5, 4), {"trans_a": 1, "trans_b": 1}),
    ((4,), (2, 4, 5), {"broadcast": 1}), ((4,), (4,), {"broadcast": 1}),
])
def test_shape_inference_matches_the_run(a_shape, b_shape, kwargs):
    op = core.CreateOperator("BatchMatMul", ["A", "B"], ["Y"], **kwargs)
    assert_inference_matches_run(op, [np.ones(a_shape, np.float32),
                                      np.ones(b_shape, np.float32)])
