"""The foundation issue's bad-input list: each failure is a caffe2lite error whose
message names the op (type, name or position in its net), the blob or argument
at fault and what was expected -- and every blob is left exactly as it was.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import (ArgumentError, BlobNotFound, Caffe2LiteError, DeviceUnavailable,
                               EnforceError, NetError, OperatorError, OperatorNotRegistered,
                               ProtoParseError, SchemaError, WorkspaceError)
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import load_net
from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema, registry
from helpers import assert_unchanged, snapshot

X = np.array([-1.0, 2.0, -3.0], np.float32)


@pytest.fixture(autouse=True)
def blobs_and_ops():
    """x and a pre-existing y; test-local ops 'TestErrScale' and 'TestErrAdd'."""
    with registry.isolated():
        register_schema(OpSchema(
            "TestErrScale", num_inputs=1, num_outputs=1,
            args=[Arg("scale", "float", required=True, doc="the factor")]))
        register_kernel("TestErrScale")(lambda ctx, x: (x * ctx.args["scale"],))
        register_schema(OpSchema("TestErrAdd", num_inputs=2, num_outputs=1,
                                 allow_inplace={(0, 0)}))
        register_kernel("TestErrAdd")(lambda ctx, a, b: (a + b,))
        workspace.FeedBlob("x", X)
        workspace.FeedBlob("y", np.full(3, 7.0, np.float32))
        yield


def _net(*ops, name="bad_net"):
    """A net whose op #0 is a good Relu x -> r and whose later ops come from ``ops``."""
    net = caffe2_pb2.NetDef(name=name)
    net.op.add(type="Relu", input=["x"], output=["r"])
    for op in ops:
        net.op.add().CopyFrom(op)
    return net


def _check(error, pattern, net):
    """CreateNet and RunNetOnce both fail with ``error`` matching ``pattern``; blobs unchanged."""
    before = snapshot()
    with pytest.raises(error, match=pattern) as info:
        workspace.CreateNet(net)
    assert_unchanged(before)
    with pytest.raises(error, match=pattern):
        workspace.RunNetOnce(net)
    assert_unchanged(before)
    assert isinstance(info.value, Caffe2LiteError) and isinstance(info.value, RuntimeError)
    return str(info.value)


def test_unknown_op_type_suggests_close_names():
    op = core.CreateOperator("Rellu", ["x"], ["y"], name="oops")
    message = _check(OperatorNotRegistered,
                     r"""op #1 Rellu "oops" in net "bad_net": unknown operator type 'Rellu'""",
                     _net(op))
    assert "did you mean ['Relu'" in message
    with pytest.raises(OperatorNotRegistered, match="caffe2lite ops"):
        workspace.RunOperatorOnce(core.CreateOperator("Qwertyuiop", ["x"], ["y"]))


def test_op_missing_on_the_requested_device_lists_what_exists():
    register_schema(OpSchema("TestErrFastOnly", num_inputs=1, num_outputs=1))
    register_kernel("TestErrFastOnly", engine="FAST")(lambda ctx, x: (x,))
    op = core.CreateOperator("TestErrFastOnly", ["x"], ["y"], engine="NOPE")
    _check(OperatorNotRegistered,
           r"op #1 TestErrFastOnly in net \"bad_net\": no implementation of 'TestErrFastOnly' "
           r"on device CPU \(engines tried: \['NOPE', 'DEFAULT'\]\); implementations that "
           r"exist: \['CPU/FAST'\]", _net(op))


@pytest.mark.parametrize("inputs, outputs, pattern", [
    (["x", "x", "x"], ["y"], r"takes exactly 2 inputs, got 3: \['x', 'x', 'x'\]"),
    (["x", "x"], ["y", "z"], r"takes exactly 1 outputs, got 2: \['y', 'z'\]"),
])
def test_wrong_number_of_inputs_or_outputs(inputs, outputs, pattern):
    op = core.CreateOperator("TestErrAdd", inputs, outputs)
    message = _check(SchemaError, "op #1 TestErrAdd in net \"bad_net\"", _net(op))
    assert any(s in message for s in ("inputs", "outputs"))
    with pytest.raises(SchemaError, match="op TestErrAdd: " + pattern):
        workspace.RunOperatorOnce(op)


def test_violated_inplace_rule():
    op = core.CreateOperator("TestErrAdd", ["x", "y"], ["y"], name="adder")
    _check(SchemaError, r'op #1 TestErrAdd "adder" in net "bad_net": input 1 and output 0 '
                        r"are both blob 'y' \(in-place\), which TestErrAdd does not support",
           _net(op))


def test_missing_required_argument():
    op = core.CreateOperator("TestErrScale", ["x"], ["y"])
    _check(SchemaError, r"op #1 TestErrScale in net \"bad_net\": argument 'scale' is "
                        r"required \(the factor\)", _net(op))


def test_argument_of_wrong_type():
    op = core.CreateOperator("TestErrScale", ["x"], ["y"], scale="big")
    _check(ArgumentError, r"op #1 TestErrScale in net \"bad_net\": argument 'scale' must be "
                          r"float, got field 's'", _net(op))


def test_unknown_argument(strict_args):
    op = core.CreateOperator("TestErrScale", ["x"], ["y"], scale=2.0, sclae=1.0)
    _check(ArgumentError, r"op #1 TestErrScale in net \"bad_net\": unknown argument 'sclae' "
                          r"\(TestErrScale takes: scale; strict arguments are on\)", _net(op))


def test_missing_input_blob():
    op = core.CreateOperator("TestErrAdd", ["x", "ghost"], ["y"])
    _check(BlobNotFound, r"op #1 TestErrAdd in net \"bad_net\": input 1 \(blob 'ghost'\) "
                         r"does not exist in workspace 'default'", _net(op))


def test_input_produced_later_in_the_net_is_missing():
    late = _net(core.CreateOperator("TestErrAdd", ["x", "made_later"], ["y"]),
                core.CreateOperator("Relu", ["x"], ["made_later"]))
    _check(BlobNotFound, "op #1 TestErrAdd.*'made_later'", late)


def test_empty_input_blob_fails_at_run_time():
    workspace.CreateBlob("hollow")
    op = core.CreateOperator("TestErrAdd", ["x", "hollow"], ["y"])
    before = snapshot()
    workspace.CreateNet(_net(op, name="hollow_net"))
    created = snapshot()  # creating the net created its outputs (r), as Caffe2 does
    assert set(created) - set(before) == {"r"}
    with pytest.raises(BlobNotFound, match=r"op #1 TestErrAdd in net \"hollow_net\": input 1 "
                                           r"\(blob 'hollow'\) is empty"):
        workspace.RunNet("hollow_net")
    assert workspace.FetchBlob("r").tolist() == [0, 2, 0]  # op #0 ran before the failure
    assert workspace.FetchBlob("y").tolist() == [7, 7, 7]  # the failing op wrote nothing


def test_kernel_failures_carry_the_op_and_leave_blobs():
    # numpy's own error (shapes that do not broadcast) comes back naming the op
    workspace.FeedBlob("w", np.ones(2, np.float32))
    op = core.CreateOperator("TestErrAdd", ["x", "w"], ["y"], name="shapes")
    before = snapshot()
    with pytest.raises(OperatorError, match=r'op #1 TestErrAdd "shapes" in net "run_fail": '
                                            r"ValueError: operands could not be broadcast"):
        workspace.RunNetOnce(_net(op, name="run_fail"))
    after = snapshot()
    assert after.pop("r").tolist() == [0, 2, 0]
    assert sorted(after) == sorted(before)
    assert after["y"].tolist() == [7, 7, 7]


def test_in_place_kernel_that_enforces_leaves_its_input():
    register_schema(OpSchema("TestErrClip", num_inputs=1, num_outputs=1,
                             enforce_inplace={(0, 0)}))

    @register_kernel("TestErrClip")
    def _clip(ctx, x):
        ctx.enforce(x.dtype == np.float64, "input 0 ('X') must be float64, got ", x.dtype)
        x[...] = np.clip(x, 0, 1)  # never reached for float32
        return (x,)

    before = snapshot()
    with pytest.raises(EnforceError, match=r"op TestErrClip: input 0 \('X'\) must be float64, "
                                           r"got float32"):
        workspace.RunOperatorOnce(core.CreateOperator("TestErrClip", ["x"], ["x"]))
    assert_unchanged(before)


def test_duplicate_net_name():
    net = _net(name="twice")
    workspace.CreateNet(net)
    before = snapshot()
    with pytest.raises(NetError, match='existing net of the same name "twice"'):
        workspace.CreateNet(net)
    assert_unchanged(before)


def test_malformed_text_and_binary_protos(tmp_path):
    before = snapshot()
    with pytest.raises(ProtoParseError, match=r"CreateNet: .*NetDef.*text format: 1:\d+"):
        workspace.CreateNet('name: "n" op { type: "Relu" input: }')
    with pytest.raises(ProtoParseError, match="RunOperatorOnce: .*OperatorDef"):
        workspace.RunOperatorOnce(b"\x0a\x05ab")
    bad = tmp_path / "broken.pb"
    bad.write_bytes(_net().SerializeToString()[:-3])
    with pytest.raises(ProtoParseError, match=r"broken\.pb: cannot be parsed as a NetDef"):
        load_net(bad)
    with pytest.raises(FileNotFoundError):
        load_net(tmp_path / "absent.pb")
    assert_unchanged(before)


def test_unknown_workspace():
    with pytest.raises(WorkspaceError, match=r"Workspace nowhere does not exist \(workspaces: "
                                             r"\[.*'default'.*\]\); pass create_if_missing"):
        workspace.SwitchWorkspace("nowhere")
    assert workspace.CurrentWorkspace() == "default"


def test_unavailable_device_names_the_op():
    op = core.CreateOperator("Relu", ["x"], ["y"], name="on_gpu",
                             device_option=core.DeviceOption(caffe2_pb2.OPENGL))
    _check(DeviceUnavailable, r'op #1 Relu "on_gpu" in net "bad_net": device type 3 '
                              r"\(PROTO_OPENGL\) is not supported", _net(op))


def test_arity_error_names_the_schema_inputs():
    with pytest.raises(SchemaError, match=r"op Relu: takes exactly 1 inputs \(X\), got 2: "
                                          r"\['x', 'y'\]"):
        workspace.RunOperatorOnce(core.CreateOperator("Relu", ["x", "y"], ["z"]))


def test_errors_note_where_core_net_built_the_op():
    net = core.Net("te_origin")
    net.Relu("x", "ok")
    line = inspect.currentframe().f_lineno + 1
    net.TestErrAdd(["x", "ghost"], "y")
    with pytest.raises(BlobNotFound) as info:
        workspace.CreateNet(net)
    assert info.value.__notes__ == [
        f'op #1 TestErrAdd in net "te_origin" was created at {__file__}:{line}']

    workspace.CreateBlob("ghost")  # exists but empty: now it fails when run
    workspace.CreateNet(net)
    with pytest.raises(BlobNotFound, match=r"'ghost'\) is empty") as info:
        workspace.RunNet(net.Name())
    assert info.value.__notes__ == [
        f'op #1 TestErrAdd in net "te_origin" was created at {__file__}:{line}']
    # A NetDef from elsewhere with the same name but other ops gets no (wrong) note.
    other = _net(core.CreateOperator("TestErrScale", ["x"], ["y"]), name="te_origin")
    with pytest.raises(SchemaError) as info:
        workspace.RunNetOnce(other)
    assert not getattr(info.value, "__notes__", [])


def test_ctx_fail_raises_like_a_failed_enforce_and_leaves_blobs():
    """ctx.fail(*msg) == ctx.enforce(False, *msg): EnforceError, op named, parts joined."""
    def kernel(ctx, x):
        if ctx.args["scale"] < 0:
            ctx.fail("argument 'scale' is ", ctx.args["scale"], ", expected >= 0")
        ctx.enforce(ctx.args["scale"] != 0, "argument 'scale' must not be 0")
        return (x * ctx.args["scale"],)

    register_kernel("TestErrScale", engine="FAILING")(kernel)
    before = snapshot()
    for scale, message in ((-2.0, r"argument 'scale' is -2.0, expected >= 0"),
                           (0.0, r"argument 'scale' must not be 0")):
        with pytest.raises(EnforceError, match=r'^op TestErrScale "checked": ' + message):
            workspace.RunOperatorOnce(core.CreateOperator(
                "TestErrScale", ["x"], ["y"], name="checked", scale=scale, engine="FAILING"))
        assert_unchanged(before)
