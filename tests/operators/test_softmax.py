"""Softmax / SoftmaxGradient against a per-row loop written here from Caffe2's definition."""

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_gradient, check_reference


def ref_softmax(X, axis=1):
    """Coerce X to (N, D) at axis, softmax each row with math.exp in float64."""
    axis = axis % X.ndim
    N = int(np.prod(X.shape[:axis]))
    rows = X.astype(np.float64).reshape(N, -1)
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        e = np.array([np.exp(v - row.max()) for v in row])
        out[i] = e / e.sum()
    return out.reshape(X.shape).astype(X.dtype)


@pytest.mark.parametrize("shape, axis", [((4, 5), 1), ((2, 3, 4), 1), ((2, 3, 4), 2),
                                         ((2, 3, 4), -1), ((2, 3, 4), 0), ((6,), 0),
                                         ((3, 2, 2, 2), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_matches_reference(shape, axis, dtype):
    X = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)
    op = core.CreateOperator("Softmax", ["X"], ["Y"], axis=axis)
    (Y,) = check_reference(op, [X], lambda X: (ref_softmax(X, axis),), threshold=1e-6)
    assert Y.dtype == dtype


def test_default_axis_is_1_and_large_logits_do_not_overflow():
    X = np.array([[[1000.0, 0.0], [-1000.0, 1000.0]]], np.float32)  # (1, 2, 2): one row of 4
    op = core.CreateOperator("Softmax", ["X"], ["Y"])
    with np.errstate(over="raise", invalid="raise"):
        check_reference(op, [X], lambda X: (np.array([[[0.5, 0.0], [0.0, 0.5]]]),),
                        threshold=1e-6)


def test_empty_input_gives_empty_output():
    op = core.CreateOperator("Softmax", ["X"], ["Y"])
    check_reference(op, [np.zeros((0, 3), np.float32)], lambda X: (X,))
    check_reference(op, [np.zeros((2, 0), np.float32)], lambda X: (X,))


@pytest.mark.parametrize("axis", [1, 2])
def test_softmax_gradient_by_finite_differences(axis):
    X = np.random.default_rng(1).standard_normal((2, 3, 4))
    check_gradient(core.CreateOperator("Softmax", ["X"], ["Y"], axis=axis), [X], 0)


def test_softmax_gradient_formula_and_layout():
    op = core.CreateOperator("Softmax", ["X"], ["Y"], axis=2)
    grad_ops, g_input = get_gradient_for_op(op, ["Y_grad"])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("SoftmaxGradient", ["Y", "Y_grad"], ["X_grad"])]
    assert g_input == ["X_grad"]
    rng = np.random.default_rng(2)
    Y = ref_softmax(rng.standard_normal((2, 3, 4)), 2)
    dY = rng.standard_normal(Y.shape)

    def ref(Y, dY):  # J^T dY with J = diag(y) - y y^T per row
        out = np.empty_like(Y)
        for i in range(2):
            for j in range(3):
                y = Y[i, j]
                out[i, j] = (np.diag(y) - np.outer(y, y)) @ dY[i, j]
        return (out,)

    check_reference(grad_ops[0], [Y, dY], ref, threshold=1e-10)


def test_shape_inference_matches_a_run():
    X = np.random.default_rng(3).standard_normal((2, 5)).astype(np.float32)
    inferred_matches_run(core.CreateOperator("Softmax", ["X"], ["Y"]), {"X": X})
    inferred_matches_run(core.CreateOperator("SoftmaxGradient", ["Y", "Y"], ["dX"]), {})


@pytest.mark.parametrize("op_type, feeds, args, match", [
    ("Softmax", {"X": np.ones((2, 3), np.int32)}, {}, "input 0 'X'.*must be a float tensor"),
    ("Softmax", {"X": np.ones((2, 3), np.float32)}, {"axis": 2}, "argument 'axis' = 2 is out"),
    ("Softmax", {"X": np.array(1.0, np.float32)}, {}, "argument 'axis' = 1 is out of range"),
    ("SoftmaxGradient", {"Y": np.ones((2, 3), np.float32), "dY": np.ones((3, 2), np.float32)},
     {}, r"input 1 'dY'.*expected Y's float32\(2, 3\)"),
])
def test_bad_inputs_fail_and_change_nothing(op_type, feeds, args, match):
    op = core.CreateOperator(op_type, list(feeds), ["out"], **args)
    fails_unchanged(op, feeds, EnforceError, rf"op {op_type}: .*{match}")
