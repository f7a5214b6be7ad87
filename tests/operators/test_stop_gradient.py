"""StopGradient: identity forward, NO_GRADIENT backward."""

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.testing import check_reference


def test_identity_and_copy():
    X = np.arange(6.0).reshape(2, 3)
    check_reference(core.CreateOperator("StopGradient", ["X"], ["Y"]), [X], lambda X: (X,))
    workspace.FeedBlob("X", X)
    workspace.RunOperatorOnce(core.CreateOperator("StopGradient", ["X"], ["Y"]))
    workspace.RunOperatorOnce(core.CreateOperator("Relu", ["Y"], ["Y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("X"), X)   # Y is a copy, not a view
    workspace.RunOperatorOnce(core.CreateOperator("StopGradient", ["X"], ["X"]))
    np.testing.assert_array_equal(workspace.FetchBlob("X"), X)


def test_declares_no_gradient():
    op = core.CreateOperator("StopGradient", ["X"], ["Y"])
    assert core.GradientRegistry.GetGradientForOp(op, ["Y_grad"]) == ([], [None])
