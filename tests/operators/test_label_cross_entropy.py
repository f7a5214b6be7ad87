"""LabelCrossEntropy / LabelCrossEntropyGradient against a loop written here."""

import math

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_gradient, check_reference


def ref(X, label):
    rows = X.reshape(X.shape[0] if X.ndim > 1 else 1, -1)
    return (np.array([-math.log(max(float(rows[i, int(l)]), 1e-20))
                      for i, l in enumerate(label.reshape(-1))], X.dtype),)


@pytest.mark.parametrize("shape, label_shape", [((4, 3), (4,)), ((4, 3), (4, 1)),
                                                ((2, 3, 2), (2,)), ((5,), (1,))])
def test_matches_reference(shape, label_shape):
    rng = np.random.default_rng(0)
    X = rng.random(shape).astype(np.float32)
    D = X.size // (shape[0] if len(shape) > 1 else 1)
    label = rng.integers(0, D, label_shape).astype(np.int32)
    op = core.CreateOperator("LabelCrossEntropy", ["X", "label"], ["Y"])
    (Y,) = check_reference(op, [X, label], ref, threshold=1e-6)
    assert Y.shape == (label.shape[0],) and Y.dtype == np.float32


def test_zero_probability_is_clamped_to_1e_minus_20():
    op = core.CreateOperator("LabelCrossEntropy", ["X", "label"], ["Y"])
    check_reference(op, [np.array([[0.0, 1.0]], np.float32), np.array([0], np.int64)],
                    lambda X, l: (np.array([-math.log(1e-20)]),), threshold=1e-6)


def test_gradient_by_finite_differences_and_layout():
    rng = np.random.default_rng(1)
    X = rng.random((4, 3)) + 0.1
    label = np.array([2, 0, 1, 1], np.int32)
    op = core.CreateOperator("LabelCrossEntropy", ["X", "label"], ["Y"])
    check_gradient(op, [X, label], 0)
    grad_ops, g_input = get_gradient_for_op(op, ["Y_grad"])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("LabelCrossEntropyGradient", ["X", "label", "Y_grad"], ["X_grad"])]
    assert g_input == ["X_grad", None]


def test_gradient_kernel_clamps_like_caffe2():
    def ref_grad(X, label, dY):
        dX = np.zeros_like(X)
        for i, l in enumerate(label):
            dX[i, l] = -dY[i] / max(X[i, l], 1e-20)
        return (dX,)

    X = np.array([[0.0, 0.5], [0.25, 0.75]], np.float32)
    op = core.CreateOperator("LabelCrossEntropyGradient", ["X", "l", "dY"], ["dX"])
    check_reference(op, [X, np.array([0, 1], np.int32), np.array([1e-19, 2.0], np.float32)],
                    ref_grad, threshold=1e-6)


def test_shape_inference_matches_a_run():
    op = core.CreateOperator("LabelCrossEntropy", ["X", "l"], ["Y"])
    inferred_matches_run(op, {"X": np.full((3, 4), 0.25, np.float32),
                              "l": np.zeros(3, np.int32)})
    inferred_matches_run(op, {"X": np.full(4, 0.25, np.float32), "l": np.zeros(1, np.int32)})


@pytest.mark.parametrize("op_type, feeds, match", [
    ("LabelCrossEntropy", {"X": np.ones((3, 4), np.float32), "l": np.array([0, 4, 1])},
     r"input 1 'label'.*in \[0, 4\)"),
    ("LabelCrossEntropy", {"X": np.ones((3, 4), np.float32), "l": np.array([0, 1])},
     r"input 1 'label'.*shape \(2,\), expected \(N,\) or \(N, 1\) with N = 3"),
    ("LabelCrossEntropy", {"X": np.ones((3, 4), np.float32), "l": np.zeros((3, 2), np.int32)},
     r"expected \(N,\) or \(N, 1\)"),
    ("LabelCrossEntropy", {"X": np.ones((3, 4), np.float32), "l": np.zeros(3, np.float32)},
     "must hold int32 or int64 class indices"),
    ("LabelCrossEntropy", {"X": np.ones((3, 4), np.int64), "l": np.zeros(3, np.int32)},
     "input 0 'X'.*must be a float tensor"),
    ("LabelCrossEntropyGradient", {"X": np.ones((3, 4), np.float32), "l": np.zeros(3, np.int32),
                                   "dY": np.ones(2, np.float32)},
     r"input 2 'dY'.*expected 3 values"),
])
def test_bad_inputs_fail_and_change_nothing(op_type, feeds, match):
    op = core.CreateOperator(op_type, list(feeds), ["out"])
    fails_unchanged(op, feeds, EnforceError, rf"op {op_type}: .*{match}")
