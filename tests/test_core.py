"""caffe2lite.core: CreateOperator typing rules, Net sugar, BlobReference, scopes.

Expected behaviour is Caffe2's python/core.py and utils.MakeArgument
(shared/reference/caffe2_facts.md, section 3).
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, scope, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import OpSchema, register_kernel, register_schema, registry


def _arg(op, name):
    (arg,) = [a for a in op.arg if a.name == name]
    return arg


def _fields(arg):
    return {f.name for f, _ in arg.ListFields()} - {"name"}


# -- CreateOperator argument typing ----------------------------------------------------
@pytest.mark.parametrize("value, field, expected", [
    (1.5, "f", 1.5),
    (3, "i", 3),
    (True, "i", 1),            # a bool is stored as an int
    (False, "i", 0),
    (np.float64(2.5), "f", 2.5),  # numpy scalars become Python scalars
    (np.int32(-4), "i", -4),
    (np.bool_(True), "i", 1),
    (b"\x00raw", "s", b"\x00raw"),
    ("caf\u00e9", "s", "caf\u00e9".encode("utf-8")),
    (np.array([[1, 2], [3, 4]], np.float32), "floats", [1.0, 2.0, 3.0, 4.0]),
    (np.array([[1, 2], [3, 4]], np.int64), "ints", [1, 2, 3, 4]),
    (np.array([0.5, 1.5]), "floats", [0.5, 1.5]),  # float64 array -> list of floats
    ([1.0, 2.5], "floats", [1.0, 2.5]),
    ((1, True, 3), "ints", [1, 1, 3]),
    ([np.int64(1), np.int64(2)], "ints", [1, 2]),
    (["a", b"b"], "strings", [b"a", b"b"]),
    ((x for x in [1.0, 2.0]), "floats", [1.0, 2.0]),  # any iterable
])
def test_argument_typing(value, field, expected):
    op = core.CreateOperator("Relu", ["x"], ["y"], v=value)
    arg = _arg(op, "v")
    assert _fields(arg) == {field}
    got = getattr(arg, field)
    assert (list(got) if field in ("floats", "ints", "strings") else got) == expected


def test_netdef_and_other_messages():
    inner = caffe2_pb2.NetDef(name="inner")
    tensor = caffe2_pb2.TensorProto(dims=[1], float_data=[1.0])
    op = core.CreateOperator("Relu", ["x"], ["y"], net=inner, nets=[inner, inner],
                             tensor=tensor, tensors=[tensor])
    assert _arg(op, "net").n == inner
    assert list(_arg(op, "nets").nets) == [inner, inner]
    # A TensorProto is not put into `t`: it is serialized into `s`.
    assert _fields(_arg(op, "tensor")) == {"s"}
    assert _arg(op, "tensor").s == tensor.SerializeToString()
    assert list(_arg(op, "tensors").strings) == [tensor.SerializeToString()]


@pytest.mark.parametrize("value, message", [
    (object(), "Unknown argument type: key=v"),
    ({1.0, "a"}, "Unknown iterable argument type: key=v"),
    ([1, 2.5], "Unknown iterable argument type"),  # mixed ints and floats
])
def test_unknown_argument_type(value, message):
    with pytest.raises(ValueError, match=message):
        core.CreateOperator("Relu", ["x"], ["y"], v=value)


def test_create_operator_fields():
    extra = caffe2_pb2.Argument(name="first", i=1)
    opt = core.DeviceOption(caffe2_pb2.CUDA, 1)
    op = core.CreateOperator("Relu", "x", ["y"], name="my_relu", control_input=["c"],
                             device_option=opt, arg=[extra], engine="CUDNN",
                             b=2, a=1.0, skipped=None)
    assert op.type == "Relu" and op.name == "my_relu"
    assert list(op.input) == ["x"] and list(op.output) == ["y"]
    assert list(op.control_input) == ["c"]
    assert op.device_option == opt and op.engine == "CUDNN"
    assert [a.name for a in op.arg] == ["first", "b", "a"]  # arg first, then kwargs in order
    assert not op.HasField("debug_info")


def test_caffe2_debug_records_where_the_op_was_made(monkeypatch):
    assert core.CreateOperator("Relu", ["x"], ["y"]).debug_info == ""
    monkeypatch.setenv("CAFFE2_DEBUG", "1")
    op = core.CreateOperator("Relu", ["x"], ["y"])
    assert "test_caffe2_debug_records_where_the_op_was_made" in op.debug_info
    assert "caffe2lite/core.py" not in op.debug_info  # ends at the caller, not inside


def test_random_seed_goes_to_device_option():
    op = core.CreateOperator("Relu", ["x"], ["y"], random_seed=1234)
    assert op.device_option.random_seed == 1234
    assert [a.name for a in op.arg] == []
    assert not core.CreateOperator("Relu", ["x"], ["y"]).HasField("device_option")


def test_create_operator_does_not_check_the_schema():
    op = core.CreateOperator("NoSuchOp", ["a", "b", "c"], [], whatever=1)
    assert op.type == "NoSuchOp"


def test_bad_io_types():
    with pytest.raises(TypeError, match="I/O blob #1 of unsupported type"):
        core.CreateOperator("Relu", ["x", 3], ["y"])
    with pytest.raises(TypeError, match="Unknown input/output type"):
        core.CreateOperator("Relu", 3, ["y"])


# -- scopes ----------------------------------------------------------------------------
def test_name_scope_applies_to_strings_not_references():
    with core.NameScope("a"):
        with core.NameScope("b"):
            assert scope.CurrentNameScope() == "a/b/"
            assert core.ScopedName("x") == "a/b/x"
            op = core.CreateOperator("Relu", ["x", core.BlobReference("raw")], "y")
        with core.NameScope("c", reset=True):
            assert scope.CurrentNameScope() == "c/"
        assert scope.CurrentNameScope() == "a/"
    assert scope.CurrentNameScope() == ""
    assert list(op.input) == ["a/b/x", "raw"] and list(op.output) == ["a/b/y"]
    assert core.ScopedName(b"bytes") == "bytes"
    assert str(core.ScopedBlobReference("z")) == "z"


def test_device_scope():
    gpu = core.DeviceOption(caffe2_pb2.CUDA, 2)
    with core.DeviceScope(gpu):
        op = core.CreateOperator("Relu", ["x"], ["y"])
        with core.DeviceScope(core.DeviceOption(caffe2_pb2.CPU), node_name="n1"):
            inner = core.CreateOperator("Relu", ["x"], ["y"])
        explicit = core.CreateOperator("Relu", ["x"], ["y"],
                                       device_option=core.DeviceOption(caffe2_pb2.CPU))
        assert scope.CurrentDeviceScope() == gpu
    assert scope.CurrentDeviceScope() is None
    assert op.device_option.device_type == caffe2_pb2.CUDA and op.device_option.device_id == 2
    assert inner.device_option.device_type == caffe2_pb2.CPU
    assert inner.device_option.node_name == "n1"
    assert explicit.device_option.device_type == caffe2_pb2.CPU


def test_device_option_helpers():
    opt = core.DeviceOption(caffe2_pb2.CUDA, 3, random_seed=5, node_name="n",
                            extra_info=["k:v"])
    assert (opt.device_type, opt.device_id, opt.random_seed, opt.node_name) == (1, 3, 5, "n")
    assert list(opt.extra_info) == ["k:v"]
    assert core.DeviceOption(caffe2_pb2.CPU, numa_node_id=1).numa_node_id == 1
    with pytest.raises(AssertionError):
        core.DeviceOption(caffe2_pb2.CUDA, numa_node_id=1)
    cpu_a, cpu_b = core.DeviceOption(0, 0), core.DeviceOption(0, 7)
    assert core.device_option_equal(cpu_a, cpu_b)  # every CPU option is the same device
    assert not core.device_option_equal(core.DeviceOption(1, 0), core.DeviceOption(1, 1))
    assert core.device_option_equal(core.DeviceOption(1, 1, random_seed=1),
                                    core.DeviceOption(1, 1, random_seed=2))
    assert not core.device_option_equal(core.DeviceOption(1, 1, random_seed=1),
                                        core.DeviceOption(1, 1, random_seed=2),
                                        ignore_random_seed=False)


def test_gradient_slice_and_data_type():
    gs = core.GradientSlice(indices="i", values="v")
    assert gs == ("i", "v") and gs.indices == "i" and gs.values == "v"
    assert core.GradientSlice._fields == ("indices", "values")
    assert (core.DataType.FLOAT, core.DataType.INT64, core.DataType.STRING) == (1, 10, 4)


# -- BlobReference ---------------------------------------------------------------------
def test_blob_reference_semantics():
    b = core.BlobReference("scope/x")
    assert str(b) == "scope/x" and repr(b) == 'BlobReference("scope/x")'
    assert b == "scope/x" and b == b"scope/x" and b == core.BlobReference("scope/x")
    assert b != "y" and b != 3 and not (b == 3)
    assert hash(b) == hash("scope/x")
    assert {b: 1}["scope/x"] == 1
    assert core.BlobReference(b"raw") == "raw" and str(core.BlobReference(5)) == "5"
    assert b.GetNameScope() == "scope/" and core.BlobReference("x").GetNameScope() == ""
    net = core.Net("refs")
    c = core.BlobReference("c", net)
    assert (c + "_suffix") == "c_suffix" and (c + "_suffix").Net() is net
    assert ("pre_" + c) == "pre_c" and ("pre_" + c).Net() is net
    with pytest.raises(RuntimeError):
        c + 1
    with pytest.raises(AttributeError):
        b.__something__


def test_blob_reference_op_sugar():
    net = core.Net("tc_sugar_ref")
    x = net.AddExternalInput("x")
    y = x.Relu([], "y")
    z = y.Relu()
    assert y == "y" and y.Net() is net
    assert [list(op.input) for op in net.Proto().op] == [["x"], ["y"]]
    assert z == "tc_sugar_ref/Relu"
    with pytest.raises(RuntimeError, match="does not have a net source"):
        core.BlobReference("free").Relu()
    with pytest.raises(RuntimeError, match="Method Rellu is not a registered operator. "
                                           "Did you mean: \\[Relu"):
        x.Rellu()


# -- Net -------------------------------------------------------------------------------
def test_net_names_are_unique():
    a, b, c = core.Net("tc_uniq"), core.Net("tc_uniq"), core.Net("tc_uniq")
    assert (a.Name(), b.Name(), c.Name()) == ("tc_uniq", "tc_uniq_1", "tc_uniq_2")
    assert str(a) == "tc_uniq"
    proto = caffe2_pb2.NetDef(name="tc_uniq")
    assert core.Net(proto).Name() == "tc_uniq_3"


def test_net_sugar_names_and_returns():
    net = core.Net("tc_sugar")
    y = net.Relu("x")
    y2 = net.Relu(y)
    pair = net.Relu("x", 2)
    named = net.Relu(["x"], ["out"])
    assert isinstance(y, core.BlobReference) and y.Net() is net
    assert (str(y), str(y2)) == ("tc_sugar/Relu", "tc_sugar/Relu_2")
    assert tuple(map(str, pair)) == ("tc_sugar/Relu:0", "tc_sugar/Relu:1")
    assert named == "out"
    proto = net.Proto()
    assert list(proto.external_input) == ["x"]  # undefined inputs become external inputs
    assert [op.type for op in proto.op] == ["Relu"] * 4
    assert list(proto.op[1].input) == ["tc_sugar/Relu"]
    with core.NameScope("s"):
        assert net.Relu("x") == "s/tc_sugar/Relu"


def test_net_sugar_with_zero_outputs():
    with registry.isolated():
        register_schema(OpSchema("TestCoreSink", num_inputs=1, num_outputs=0, doc="drops X"))

        @register_kernel("TestCoreSink")
        def _sink(ctx, x):
            return ()

        net = core.Net("sink")
        assert net.TestCoreSink("x", []) is None


def test_net_unknown_op_is_attribute_error():
    net = core.Net("unknown")
    with pytest.raises(AttributeError, match=r"Method Rellu is not a registered operator\. "
                                             r"Did you mean: \[Relu"):
        net.Rellu("x")
    with pytest.raises(AttributeError):
        net.__deepcopy_something__
    assert not hasattr(net, "NoSuchOperatorAtAll")
    assert "Relu" in dir(net)


def test_proto_is_live_and_netdef_is_copied():
    net = core.Net("live")
    proto = net.Proto()
    net.Relu("x", "y")
    assert len(proto.op) == 1  # the same object, not a copy
    proto.external_output.append("y")
    assert list(net.Proto().external_output) == ["y"]

    source = caffe2_pb2.NetDef(name="tc_copied")
    source.op.add(type="Relu", input=["x"], output=["tc_copied_blob_4"])
    copy = core.Net(source)
    source.op.add(type="Relu")
    assert len(copy.Proto().op) == 1
    assert copy.NextName() == "tc_copied_blob_5"  # counter restored from existing names
    assert copy.NextName() == "tc_copied_blob_6"


def test_external_inputs_and_outputs():
    net = core.Net("ext")
    x = net.AddExternalInput("x")
    a, b = net.AddExternalInput("a", "b")
    assert isinstance(x, core.BlobReference) and x.Net() is net and (a, b) == ("a", "b")
    with pytest.raises(AssertionError):
        net.AddExternalInput("x")
    y = net.Relu(x, "y")
    net.AddExternalOutput(y)
    assert net.external_inputs == ["x", "a", "b"] and net.external_outputs == ["y"]
    assert net.BlobIsDefined("y") and net.BlobIsDefined(x) and not net.BlobIsDefined("z")
    with pytest.raises(AssertionError):
        net.AddExternalOutput(core.BlobReference("undefined"))
    with pytest.raises(AssertionError):
        net.AddExternalOutput("y")  # a str, not a BlobReference


def test_net_runs_in_workspace():
    net = core.Net("runs")
    x = net.AddExternalInput("x")
    net.AddExternalOutput(net.Relu(x))
    workspace.FeedBlob("x", np.array([-1, 1], np.float32))
    workspace.RunNetOnce(net)
    assert workspace.FetchBlob(net.external_outputs[0]).tolist() == [0, 1]


def test_is_operator():
    assert core.IsOperator("Relu") and not core.IsOperator("Rellu")
    assert core.IsOperatorWithEngine("Relu", "DEFAULT")
    assert core.IsOperatorWithEngine("Relu", "")
    assert not core.IsOperatorWithEngine("Relu", "CUDNN")
