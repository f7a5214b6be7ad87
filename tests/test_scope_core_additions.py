"""What model_helper / brew / optimizer need from scope, core and utils, as Caffe2 had it:
EmptyNameScope, EmptyDeviceScope, nested DeviceScope (node_name and extra_info inherited),
IsGPUDeviceType, InferBlobDevices, Net.GetBlobRef, Clone(update_external_list),
IR.GetBackwardPass, Net.DeduplicateGradientSlices and utils.BuildUniqueMutexIter."""

import numpy as np
import pytest
from placeholder_ops import placeholder_ops

from caffe2lite import core, scope, utils, workspace
from caffe2lite.proto import caffe2_pb2


def test_empty_scopes_switch_the_scopes_off_inside_the_block():
    gpu = core.DeviceOption(caffe2_pb2.CUDA, 1)
    with core.NameScope("outer"), core.DeviceScope(gpu):
        with scope.EmptyNameScope(), scope.EmptyDeviceScope():
            assert scope.CurrentNameScope() == ""
            assert scope.CurrentDeviceScope() is None
            op = core.CreateOperator("Relu", ["x"], ["y"])
            assert list(op.input) == ["x"] and not op.HasField("device_option")
        assert scope.CurrentNameScope() == "outer/"
        assert scope.CurrentDeviceScope().device_id == 1


def test_nested_device_scope_adds_to_the_enclosing_extra_info():
    outer = core.DeviceOption(caffe2_pb2.CPU, extra_info=["b:2"])
    with core.DeviceScope(outer, node_name="node1"):
        inner = core.DeviceOption(caffe2_pb2.CPU, extra_info=["a:1"])
        with core.DeviceScope(inner):
            current = scope.CurrentDeviceScope()
            assert list(current.extra_info) == ["a:1", "b:2"]  # merged, sorted
            assert current.node_name == "node1"                 # inherited
        with core.DeviceScope(inner, node_name="node2"):
            assert scope.CurrentDeviceScope().node_name == "node2"
        assert list(scope.CurrentDeviceScope().extra_info) == ["b:2"]
    with pytest.raises(AssertionError, match="At least one argument"):
        with core.DeviceScope(None):
            pass


def test_device_helpers_and_blob_refs():
    assert core.IsGPUDeviceType(caffe2_pb2.CUDA) and core.IsGPUDeviceType(caffe2_pb2.HIP)
    assert not core.IsGPUDeviceType(caffe2_pb2.CPU)
    net = core.Net("devices")
    with core.DeviceScope(core.DeviceOption(caffe2_pb2.CUDA, 2)):
        net.Relu("x", "y")
    net.Relu("y", "z")
    devices = core.InferBlobDevices(net)
    assert devices["y"].device_type == caffe2_pb2.CUDA and devices["y"].device_id == 2
    assert devices["z"].device_type == caffe2_pb2.CPU and "x" not in devices
    ref = net.GetBlobRef("z")
    assert ref == "z" and ref.Net() is net
    with pytest.raises(KeyError, match="does not define blob w"):
        net.GetBlobRef("w")


def test_clone_with_update_external_list():
    net = core.Net("whole")
    net.Relu("a", "b")
    net.Relu("b", "c")
    net.Relu("c", "d")
    tail = net.Clone("tail", op_id_mask=[1, 2], update_external_list=True)
    assert list(tail.Proto().external_input) == ["b"]
    assert list(tail.Proto().external_output) == ["d"]


def test_ir_gives_the_backward_pass_with_blob_references():
    net = core.Net("ir")
    net.Sigmoid(net.Relu("x", "r"), "y")
    grad_ops, grads = core.IR(net.Proto().op).GetBackwardPass(["y"])
    assert [op.type for op in grad_ops] == ["ConstantFill", "SigmoidGradient", "ReluGradient"]
    assert isinstance(next(iter(grads)), core.BlobReference) and str(grads["x"]) == "x_grad"


@placeholder_ops("UnsortedSegmentSum", "UnsortedSegmentMean")  # breadth-seq's operators
def test_deduplicate_gradient_slices_builds_unique_and_segment_sum():
    net = core.Net("dedup")
    g = net.DeduplicateGradientSlices(core.GradientSlice("idx", "vals"))
    assert isinstance(g, core.GradientSlice)
    unique, segment = net.Proto().op
    assert (unique.type, unique.engine, list(unique.input)) == ("Unique", "SparseHash", ["idx"])
    assert segment.type == "UnsortedSegmentSum"
    assert list(segment.input) == ["vals", unique.output[1]]
    with pytest.raises(ValueError, match="max is not supported"):
        net.DeduplicateGradientSlices(core.GradientSlice("idx", "vals"), aggregator="max")


def test_build_unique_mutex_iter_makes_one_counter_on_the_cpu():
    init, net = core.Net("init"), core.Net("train")
    with core.DeviceScope(core.DeviceOption(caffe2_pb2.CUDA, 0)):
        it = utils.BuildUniqueMutexIter(init, net, iter_val=5)
    again = utils.BuildUniqueMutexIter(init, net)
    assert it == again == utils.OPTIMIZER_ITERATION_NAME
    assert [op.type for op in init.Proto().op] == ["ConstantFill", "CreateMutex"]
    assert [op.type for op in net.Proto().op] == ["AtomicIter"]
    for op in list(init.Proto().op) + list(net.Proto().op):
        assert op.device_option.device_type == caffe2_pb2.CPU
        assert "device_type_override:cpu" in op.device_option.extra_info
    assert list(net.Proto().op[0].input) == [utils.ITERATION_MUTEX_NAME, "optimizer_iteration"]
    workspace.RunNetOnce(init)
    workspace.RunNetOnce(net)
    assert workspace.FetchBlob("optimizer_iteration").tolist() == [6]


def test_net_records_as_caffe2_kept_them():
    # Caffe2's Net: input_record / output_record start as None; set_input_record
    # gives a schema without blobs a new scoped blob per column and makes them
    # external inputs; set_output_record needs defined blobs and makes them external
    # outputs; AppendOutputRecordField adds a Struct field; Clone keeps both records,
    # renamed by blob_remap.
    schema = pytest.importorskip("caffe2lite.schema")
    net = core.Net("records")
    assert net.input_record() is None and net.output_record() is None
    rec = net.set_input_record(schema.Struct(("a", schema.Scalar(np.float32)),
                                             ("b", schema.Scalar(np.int64))))
    names = [str(b) for b in rec.field_blobs()]
    assert names == [n for n in net.Proto().external_input]
    assert all(n.startswith(net.Name() + "/") for n in names), names
    y = net.Relu(rec.a(), "y")
    net.set_output_record(schema.Struct(("y", schema.Scalar(np.float32, y))))
    assert list(net.Proto().external_output) == ["y"]
    z = net.Relu(y, "z")
    net.AppendOutputRecordField("z", schema.Scalar(np.float32, z))
    assert net.output_record().field_names() == ["y", "z"]
    assert list(net.Proto().external_output) == ["y", "z"]
    with pytest.raises(AssertionError, match="not defined"):
        net.AppendOutputRecordField("w", schema.Scalar(np.float32, core.BlobReference("w")))
    clone = net.Clone("records_clone", blob_remap={"y": "y2"})
    assert [str(b) for b in clone.output_record().field_blobs()] == ["y2", "z"]
    assert [str(b) for b in clone.input_record().field_blobs()] == names
    assert net.Clone("plain", keep_schema=False).output_record() is None
