"""``workspace.C``: Caffe2's Workspace / Blob / Tensor objects over caffe2lite's workspaces.

Behaviour expected here is Caffe2's, as its pybind_state.cc and workspace_test.py
describe it: ``Tensor.data`` is the blob's own array (in-place writes reach the blob),
``feed`` and ``fetch`` copy, ``init`` allocates a shape and type (not strings),
``Workspace.current`` follows SwitchWorkspace, ``Workspace()`` is standalone.
"""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, Caffe2LiteError
from caffe2lite.proto import caffe2_pb2

C = workspace.C


@pytest.fixture(autouse=True)
def fresh_default_workspace():
    workspace.SwitchWorkspace("default")
    workspace.ResetWorkspace()
    yield
    workspace.SwitchWorkspace("default")
    workspace.ResetWorkspace()


def _fill_net():
    net = core.Net("fill")
    net.ConstantFill([], "testblob", shape=[1, 2, 3, 4], value=1.0)
    return net


def test_tensor_data_writes_through_and_feed_fetch_copy():
    ws = C.Workspace()
    assert ws.create_blob("tensor").feed(np.array([1.1, 1.2, 1.3])) is True
    tensor = ws.blobs["tensor"].tensor()
    tensor.data[0] = 3.3
    np.testing.assert_array_equal(ws.blobs["tensor"].fetch(), [3.3, 1.2, 1.3])

    tensor.init([2, 3], core.DataType.INT32)
    assert tensor.data.dtype == np.int32 and tensor.shape == [2, 3]
    tensor.data[1, 1] = 100
    expected = np.zeros((2, 3), np.int32)
    expected[1, 1] = 100
    np.testing.assert_array_equal(ws.fetch_blob("tensor"), expected)

    with pytest.raises(RuntimeError, match="Cannot init tensor of this type"):
        tensor.init([3, 4], core.DataType.STRING)

    strings = np.array([[b"abc", b"def"], [b"ghi", b"jkl"]], dtype=object)
    tensor.feed(strings)
    assert tensor.data[0, 0] == b"abc"
    np.testing.assert_array_equal(ws.blobs["tensor"].fetch(), strings)

    source = np.array([1.1, 10.2])
    tensor.feed(source)
    source[0] = 5.2                      # feed copied
    assert tensor.data[0] == 1.1
    copy = tensor.fetch()
    tensor.data[0] = 5.2                 # fetch copied
    assert copy[0] == 1.1 and tensor.fetch()[0] == 5.2


def test_blob_feed_takes_a_device_option_or_its_bytes():
    ws = C.Workspace()
    cpu = core.DeviceOption(caffe2_pb2.CPU)
    assert ws.create_blob("a").feed(np.ones(2, np.float32), device_option=cpu)
    assert ws.create_blob("b").feed(np.ones(2, np.float32), cpu.SerializeToString())
    np.testing.assert_array_equal(ws.fetch_blob("b"), [1.0, 1.0])


def test_tensor_feed_wants_an_array():
    tensor = C.Workspace().create_blob("t").tensor()
    with pytest.raises(Caffe2LiteError, match="expected numpy array"):
        tensor.feed([1, 2])


def test_tensor_reshape_keeps_data_of_the_same_size():
    ws = C.Workspace()
    ws.feed_blob("t", np.arange(6, dtype=np.float32))
    tensor = ws.blobs["t"].tensor()
    tensor._reshape([2, 3])
    np.testing.assert_array_equal(ws.fetch_blob("t"), np.arange(6).reshape(2, 3))
    assert tensor._shape == [2, 3]


def test_empty_blob_becomes_an_empty_float_tensor():
    ws = C.Workspace()
    blob = ws.create_blob("e")
    assert not blob.is_tensor()
    data = blob.tensor().data
    assert data.shape == (0,) and data.dtype == np.float32


def test_string_blob_is_not_a_tensor_until_tensor_resets_it():
    ws = C.Workspace()
    ws.feed_blob("s", b"hello")
    blob = ws.blobs["s"]
    assert blob.fetch() == b"hello" and not blob.is_tensor()
    with pytest.raises(Caffe2LiteError, match="doesn't contain Tensor"):
        blob.as_tensor()
    assert blob.tensor().data.size == 0      # Caffe2's legacy tensor() resets it


def test_standalone_workspace_is_separate_from_the_current_one():
    ws = C.Workspace()
    ws.feed_blob("only_here", np.ones(2, np.float32))
    assert ws.has_blob("only_here") and not workspace.HasBlob("only_here")
    assert "only_here" not in C.Workspace.current.blobs
    ws.remove_blob("only_here")
    assert not ws.has_blob("only_here")


def test_current_workspace_wrapper_follows_runs_and_resets():
    assert "testblob" not in C.Workspace.current.blobs
    assert workspace.RunNetOnce(_fill_net().Proto().SerializeToString()) is True
    assert "testblob" in C.Workspace.current.blobs
    np.testing.assert_array_equal(C.Workspace.current.blobs["testblob"].fetch(),
                                  np.ones((1, 2, 3, 4), np.float32))
    workspace.ResetWorkspace()
    assert "testblob" not in C.Workspace.current.blobs


def test_current_follows_switch_workspace():
    workspace.FeedBlob("x", np.array([1.0], np.float32))
    workspace.SwitchWorkspace("pybind_other", True)
    try:
        assert not C.Workspace.current.has_blob("x")
        C.Workspace.current.feed_blob("y", np.array([2.0], np.float32))
        assert workspace.FetchBlob("y")[0] == 2.0
    finally:
        workspace.SwitchWorkspace("default")
    assert C.Workspace.current.has_blob("x") and not C.Workspace.current.has_blob("y")
    assert C.Workspace.current == C.Workspace.current


def test_module_functions_act_on_the_current_workspace():
    assert C.feed_blob("a", np.arange(3, dtype=np.int64)) is True
    np.testing.assert_array_equal(C.fetch_blob("a"), [0, 1, 2])
    assert C.has_blob("a") and C.blobs() == ["a"]
    assert C.create_blob("b") and C.has_blob("b")
    assert C.current_workspace() == "default" and "default" in C.workspaces()
    assert C.root_folder() == workspace.RootFolder()
    assert C.op_registry_key("Conv", "CUDNN") == "Conv_ENGINE_CUDNN"
    assert C.op_registry_key("Conv", "DEFAULT") == "Conv"
    assert "Relu" in C.registered_operators()
    option = core.DeviceOption(caffe2_pb2.CPU).SerializeToString()
    assert C.feed_blob("c", np.ones(2, np.float32), option)
    with pytest.raises(BlobNotFound):
        C.fetch_blob("missing")


def test_create_net_and_run_through_the_object_api():
    ws = C.Workspace()
    fill = _fill_net()
    net = ws.create_net(fill)
    assert set(ws.nets) == {fill.Name()}
    assert ws.has_blob("testblob")      # creating a net creates its output blobs
    net.run()
    assert ws.fetch_blob("testblob").shape == (1, 2, 3, 4)
    ws.run(core.CreateOperator("Relu", ["testblob"], ["r"]))
    np.testing.assert_array_equal(ws.fetch_blob("r"), np.ones((1, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="Don't know how to do Workspace.run"):
        ws.run(42)
    assert not workspace.HasBlob("r")


def test_blob_serialize_round_trip():
    ws = C.Workspace()
    ws.feed_blob("w", np.arange(4, dtype=np.float32))
    data = ws.blobs["w"].serialize("w")
    other = C.Workspace()
    other.create_blob("w2").deserialize(data)
    np.testing.assert_array_equal(other.fetch_blob("w2"), np.arange(4, dtype=np.float32))


def test_get_gradient_defs_uses_gradient_wrappers():
    op = core.CreateOperator("Relu", ["x"], ["y"])
    wrapper = C.GradientWrapper()
    wrapper.dense = "y_grad"
    assert wrapper.is_dense() and not wrapper.is_sparse()
    grad_defs, g_input = C.get_gradient_defs(op.SerializeToString(), [wrapper])
    (grad_op,) = [caffe2_pb2.OperatorDef.FromString(d) for d in grad_defs]
    assert grad_op.type == "ReluGradient" and list(grad_op.input) == ["y", "y_grad"]
    assert g_input[0].dense == "x_grad" and not g_input[0].is_empty()


def test_build_flags_scripts_test_are_false():
    assert not C.use_mkldnn and not C.use_rocm and not C.is_asan


def test_create_net_refuses_text_and_keeps_nets_apart_from_runs():
    ws = C.Workspace()
    with pytest.raises(TypeError):
        ws.create_net("...")
    once, created = core.Net(""), core.Net("cw_created")
    once.ConstantFill([], ["a"], shape=[1], value=0.5)
    created.ConstantFill([], ["b"], shape=[1], value=0.25)
    ws.run(once)                                   # run once: not kept
    assert ws.fetch_blob("a")[0] == 0.5 and once.Name() not in ws.nets
    ws.create_net(created).run()
    assert created.Name() in ws.nets and ws.fetch_blob("b")[0] == 0.25
    with pytest.raises(RuntimeError, match="refuse to overwrite"):
        ws.create_net(created)
    ws.create_net(created, overwrite=True)


def test_running_a_plan_keeps_its_nets():
    ws = C.Workspace()
    net = core.Net("cw_plan_net")
    net.ConstantFill([], ["p"], shape=[2], value=3.0)
    plan = core.Plan("cw_plan")
    plan.AddStep(core.ExecutionStep("step", nets=[net], num_iter=1))
    ws.run(plan)
    assert net.Name() in ws.nets
    np.testing.assert_array_equal(ws.blobs["p"].fetch(), [3.0, 3.0])


def test_build_module_tells_what_caffe2s_tests_skip_on():
    from caffe2lite import build

    assert build.CAFFE2_NO_OPERATOR_SCHEMA is False  # caffe2lite always has its schemas
    assert build.build_options["USE_MKLDNN"] == "OFF"
    assert all(isinstance(v, str) for v in build.build_options.values())
