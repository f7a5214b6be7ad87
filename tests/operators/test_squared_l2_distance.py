"""SquaredL2Distance against NumPy written here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def reference(X, Y):
    if X.ndim == 0:
        return (np.array([0.5 * (X - Y) ** 2]),)
    return (0.5 * ((X - Y) ** 2).sum(axis=tuple(range(1, X.ndim))),)


@settings(max_examples=20)
@given(shape=st.sampled_from([(3,), (4, 2), (2, 3, 2), (), (0, 3), (3, 0)]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_matches_numpy(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    X, Y = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    op = core.CreateOperator("SquaredL2Distance", ["X", "Y"], ["Z"])
    (Z,) = check_reference(op, [X, Y], reference, threshold=1e-5)
    assert Z.dtype == dtype


@pytest.mark.parametrize("index", [0, 1])
def test_gradient_by_finite_differences(index):
    rng = np.random.default_rng(index)
    X, Y = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 2))
    check_gradient(core.CreateOperator("SquaredL2Distance", ["X", "Y"], ["Z"]), [X, Y], index)


def test_bad_input():
    workspace.FeedBlob("X", np.ones((2, 3), np.float32))
    workspace.FeedBlob("Y", np.ones((3, 2), np.float32))
    workspace.FeedBlob("Z", np.array([1.0]))
    with pytest.raises(EnforceError, match=r"input 0 'X' \(blob 'X'\) has shape \(2, 3\) and "
                                           r"input 1 'Y' \(blob 'Y'\) \(3, 2\)"):
        workspace.RunOperatorOnce(core.CreateOperator("SquaredL2Distance", ["X", "Y"], ["Z"]))
    workspace.FeedBlob("Y", np.ones((2, 3), np.float64))
    with pytest.raises(EnforceError, match=r"input 1 'Y' \(blob 'Y'\) is float64, but must be "
                                           r"float32"):
        workspace.RunOperatorOnce(core.CreateOperator("SquaredL2Distance", ["X", "Y"], ["Z"]))
    np.testing.assert_array_equal(workspace.FetchBlob("Z"), [1.0])
    workspace.FeedBlob("dD", np.ones(3, np.float32))
    workspace.FeedBlob("Y", np.ones((2, 3), np.float32))
    with pytest.raises(EnforceError,
                       match=r"input 2 'dDistance' \(blob 'dD'\) \(3,\) must have 2 elements"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SquaredL2DistanceGradient", ["X", "Y", "dD"], ["dX", "dY"]))


@pytest.mark.parametrize("dd", [np.array(["a", "b"], dtype=object), np.ones(2, np.int64),
                                np.ones(2, np.float64)])
def test_gradient_refuses_a_d_distance_of_another_dtype(dd):
    workspace.FeedBlob("X", np.ones((2, 3), np.float32))
    workspace.FeedBlob("Y", np.zeros((2, 3), np.float32))
    workspace.FeedBlob("dD", dd)
    workspace.FeedBlob("dX", np.full(1, 7.0, np.float32))
    with pytest.raises(EnforceError, match=r"input 2 'dDistance' \(blob 'dD'\) must be float32 like X "
                                           r"and Y"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SquaredL2DistanceGradient", ["X", "Y", "dD"], ["dX", "dY"]))
    np.testing.assert_array_equal(workspace.FetchBlob("dX"), [7.0])
