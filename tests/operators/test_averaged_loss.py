"""AveragedLoss against numpy.mean written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 1, 4), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy_mean(shape, dtype):
    X = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    op = core.CreateOperator("AveragedLoss", ["X"], ["loss"])
    (loss,) = check_reference(op, [X], lambda X: (np.asarray(X.mean()),), threshold=1e-6)
    assert loss.shape == () and loss.dtype == dtype


def test_empty_input_gives_zero_like_caffe2():
    op = core.CreateOperator("AveragedLoss", ["X"], ["loss"])
    check_reference(op, [np.zeros((0, 3), np.float32)], lambda X: (np.asarray(0.0),))


def test_gradient_by_finite_differences():
    X = np.random.default_rng(1).standard_normal((3, 4))
    check_gradient(core.CreateOperator("AveragedLoss", ["X"], ["loss"]), [X], 0)
    op = core.CreateOperator("AveragedLossGradient", ["X", "dY"], ["dX"])
    check_reference(op, [X, np.array(2.0)], lambda X, dY: (np.full(X.shape, 2.0 / 12),))


def test_bad_input():
    workspace.FeedBlob("X", np.array([1, 2], np.int32))
    with pytest.raises(EnforceError, match=r"op AveragedLoss: input 0 'X' \(blob 'X'\) must be a float "
                                           r"tensor"):
        workspace.RunOperatorOnce(core.CreateOperator("AveragedLoss", ["X"], ["loss"]))
    workspace.FeedBlob("X", np.ones(3))
    workspace.FeedBlob("dY", np.ones(2))
    with pytest.raises(EnforceError, match=r"input 1 'dY' \(blob 'dY'\) must have one element, "
                                           r"got shape \(2,\)"):
        workspace.RunOperatorOnce(core.CreateOperator("AveragedLossGradient", ["X", "dY"], ["dX"]))
