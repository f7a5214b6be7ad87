"""Copy, CopyOnDeviceLike and Alias, and their gradient makers."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, SchemaError
from caffe2lite.runtime import registry


@pytest.mark.parametrize("value", [
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64),
    np.array(True), np.array([b"a", b"bc"], dtype=object), np.zeros((0, 3), np.float64),
])
def test_copy_is_an_independent_equal_tensor(value):
    workspace.FeedBlob("x", value)
    workspace.RunOperatorOnce(core.CreateOperator("Copy", ["x"], ["y"]))
    y = workspace.FetchBlob("y")
    assert y.dtype == value.dtype and y.shape == value.shape
    np.testing.assert_array_equal(y, value)
    blobs = workspace.current().blobs
    assert blobs["y"] is not blobs["x"]
    assert not np.shares_memory(blobs["y"], blobs["x"])


def test_copy_of_a_string_blob():
    workspace.FeedBlob("s", b"hello")
    workspace.RunOperatorOnce(core.CreateOperator("Copy", ["s"], ["t"]))
    assert workspace.FetchBlob("t") == b"hello"


def test_copy_on_device_like_copies_the_first_input():
    x = np.arange(4.0)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("like", np.zeros(1, np.int32))
    workspace.RunOperatorOnce(core.CreateOperator("CopyOnDeviceLike", ["x", "like"], ["y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x)
    assert not np.shares_memory(workspace.current().blobs["y"], workspace.current().blobs["x"])


def test_alias_shares_the_array():
    workspace.FeedBlob("x", np.arange(3.0))
    workspace.RunOperatorOnce(core.CreateOperator("Alias", ["x"], ["y"]))
    blobs = workspace.current().blobs
    assert blobs["y"] is blobs["x"]


def test_copy_bad_input_changes_nothing():
    workspace.FeedBlob("y", np.ones(2))
    with pytest.raises(BlobNotFound, match="Copy.*'missing'"):
        workspace.RunOperatorOnce(core.CreateOperator("Copy", ["missing"], ["y"]))
    with pytest.raises(SchemaError, match="Copy.*in-place"):
        workspace.RunOperatorOnce(core.CreateOperator("Copy", ["y"], ["y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.ones(2))


def test_copy_gradient_copies_the_output_gradient_onto_the_input_device():
    op = core.CreateOperator("Copy", ["x"], ["y"])
    ops, g_input = registry.get_schema("Copy").gradient(op, ["y_grad"])
    assert g_input == ["x_grad"]
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("CopyOnDeviceLike", ["y_grad", "x"], ["x_grad"])]
    workspace.FeedBlob("x", np.zeros(3))
    workspace.FeedBlob("y_grad", np.array([1.0, 2.0, 3.0]))
    for o in ops:
        workspace.RunOperatorOnce(o)
    np.testing.assert_array_equal(workspace.FetchBlob("x_grad"), [1.0, 2.0, 3.0])


def test_copy_gradient_of_a_sparse_gradient_stays_sparse():
    op = core.CreateOperator("Copy", ["x"], ["y"])
    ops, g_input = registry.get_schema("Copy").gradient(
        op, [core.GradientSlice("y_grad_indices", "y_grad_values")])
    assert g_input == [core.GradientSlice("x_grad_indices", "x_grad_values")]
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("Copy", ["y_grad_indices"], ["x_grad_indices"]),
        ("Copy", ["y_grad_values"], ["x_grad_values"])]


def test_alias_gradient_passes_the_output_gradient_through():
    maker = registry.get_schema("Alias").gradient
    op = core.CreateOperator("Alias", ["x"], ["y"])
    assert maker(op, ["y_grad"]) == ([], ["y_grad"])
    sparse = core.GradientSlice("i", "v")
    assert maker(op, [sparse]) == ([], [sparse])


def test_real_alias_net(nets_dir):
    """Glow's Caffe2 importer test net: Y = Alias(X)."""
    from caffe2lite import protoio

    path = nets_dir / "pytorch__glow__alias_op_net.pbtxt"
    if not path.exists():
        pytest.skip(f"{path.name} is not in {nets_dir}")
    net = protoio.load_net(path)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    workspace.FeedBlob("X", x)
    workspace.RunNetOnce(net)
    np.testing.assert_array_equal(workspace.FetchBlob("Y"), x)
    assert workspace.current().blobs["Y"] is workspace.current().blobs["X"]


@pytest.mark.parametrize("op_type", ["Copy", "Alias", "CopyOnDeviceLike"])
def test_a_blob_never_written_is_refused_not_copied(op_type):
    workspace.CreateBlob("empty")
    workspace.FeedBlob("like", np.zeros(1, np.float32))
    inputs = ["empty", "like"] if op_type == "CopyOnDeviceLike" else ["empty"]
    with pytest.raises(BlobNotFound, match="blob 'empty'.*never written"):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, ["out"]))
    assert not workspace.HasBlob("out")
