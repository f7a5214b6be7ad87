"""The runtime's basic path: a net built with core.Net, created and run by name."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, BlobNotFound, OperatorNotRegistered, SchemaError


def test_relu_net_runs_and_matches_numpy():
    x = np.array([-1.5, 0.0, 2.0, -3.0], dtype=np.float32)
    workspace.FeedBlob("x", x)
    net = core.Net("smoke")
    y = net.Relu("x", "y")
    assert str(y) == "y"
    assert workspace.CreateNet(net) is True
    assert workspace.RunNet(net.Name()) is True
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.maximum(x, 0))


def test_errors_name_the_op_and_leave_blobs():
    workspace.FeedBlob("x", np.ones(3, np.float32))
    with pytest.raises(OperatorNotRegistered, match="did you mean.*Relu"):
        workspace.RunOperatorOnce(core.CreateOperator("Rellu", ["x"], ["y"]))
    with pytest.raises(SchemaError, match="takes exactly 1 inputs"):
        workspace.RunOperatorOnce(core.CreateOperator("Relu", ["x", "x"], ["y"]))
    with pytest.raises(BlobNotFound, match="'missing'"):
        workspace.RunOperatorOnce(core.CreateOperator("Relu", ["missing"], ["y"]))
    from caffe2lite.runtime import flags

    saved = flags.get("caffe2lite_strict_args")
    workspace.GlobalInit(["caffe2", "--caffe2lite_strict_args=1"])
    try:
        with pytest.raises(ArgumentError, match="unknown argument 'alpha'"):
            workspace.RunOperatorOnce(core.CreateOperator("Relu", ["x"], ["y"], alpha=0.1))
    finally:
        workspace.GlobalInit(["caffe2", f"--caffe2lite_strict_args={saved}"])
    assert workspace.Blobs() == ["x"]
