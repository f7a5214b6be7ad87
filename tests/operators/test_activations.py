"""Sigmoid / Tanh and their gradients against NumPy written here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

REFERENCES = {
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64))),
    "Tanh": lambda x: np.tanh(x.astype(np.float64)),
}


@settings(max_examples=20)
@given(op_type=st.sampled_from(sorted(REFERENCES)),
       X=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=st.floats(-50, 50, width=32)))
def test_forward_matches_numpy(op_type, X):
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    (Y,) = check_reference(op, [X], lambda x: (REFERENCES[op_type](x),), threshold=1e-6)
    assert Y.dtype == np.float32 and Y.shape == X.shape


def test_sigmoid_is_finite_and_silent_at_extremes():
    X = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (Y,) = check_reference(core.CreateOperator("Sigmoid", ["X"], ["Y"]), [X],
                               lambda x: (np.array([0.0, np.exp(-100.0), 0.5, 1.0, 1.0]),),
                               threshold=1e-12)


@pytest.mark.parametrize("op_type", sorted(REFERENCES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_by_finite_differences(op_type, dtype):
    X = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    check_gradient(core.CreateOperator(op_type, ["X"], ["Y"]), [X], 0)


@pytest.mark.parametrize("op_type, derivative", [("Sigmoid", lambda y: y * (1 - y)),
                                                 ("Tanh", lambda y: 1 - y * y)])
def test_gradient_op_uses_the_output(op_type, derivative):
    rng = np.random.default_rng(1)
    Y, dY = rng.random((2, 3)), rng.standard_normal((2, 3))
    op = core.CreateOperator(op_type + "Gradient", ["Y", "dY"], ["dX"])
    check_reference(op, [Y, dY], lambda Y, dY: (dY * derivative(Y),), threshold=1e-12)


def test_in_place_and_errors():
    workspace.FeedBlob("X", np.array([0.0, 1.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("Tanh", ["X"], ["X"]))
    np.testing.assert_allclose(workspace.FetchBlob("X"), np.tanh([0.0, 1.0]), rtol=1e-6)
    workspace.FeedBlob("I", np.array([1, 2], np.int64))
    with pytest.raises(EnforceError, match=r"op Sigmoid: input 0 'X' \(blob 'I'\) must be a float tensor, got int64"):
        workspace.RunOperatorOnce(core.CreateOperator("Sigmoid", ["I"], ["I"]))
    np.testing.assert_array_equal(workspace.FetchBlob("I"), [1, 2])
    workspace.FeedBlob("Y", np.ones(3, np.float32))
    workspace.FeedBlob("dY", np.ones(2, np.float32))
    with pytest.raises(EnforceError, match=r"input 0 'Y' \(blob 'Y'\) has shape \(3,\) and "
                                           r"input 1 'dY' \(blob 'dY'\) \(2,\); they must be"):
        workspace.RunOperatorOnce(core.CreateOperator("TanhGradient", ["Y", "dY"], ["dX"]))


@pytest.mark.parametrize("op_type, inputs, pattern", [
    ("Relu", [np.array([b"a"], dtype=object)],
     r"op Relu: input 0 'X' \(blob 'i0'\) must be a numeric tensor, got object"),
    ("ReluGradient", [np.ones(3, np.float32), np.ones(2, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) has shape \(3,\) and input 1 'dY' \(blob 'i1'\) \(2,\); "
     r"they must be the same"),
    ("ReluGradient", [np.array([b"a"], dtype=object), np.ones(1, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) must be a numeric tensor, got object"),
    ("SigmoidGradient", [np.ones(2, np.int64), np.ones(2, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) must be a float tensor, got int64"),
])
def test_bad_dtype_or_shape_is_an_enforce_error_that_changes_nothing(op_type, inputs, pattern):
    names = [f"i{k}" for k in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=pattern):  # in place on the last input
        workspace.RunOperatorOnce(core.CreateOperator(op_type, names, [names[-1]]))
    assert_unchanged(before)
