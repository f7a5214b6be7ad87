"""caffe2lite.workspace keeps Caffe2's names, call shapes, return values and failures.

Expected behaviour is Caffe2's (shared/reference/caffe2_facts.md, section 2).
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, EnforceError, NetError, ProtoParseError, WorkspaceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import OpSchema, register_kernel, register_schema, registry
from helpers import assert_unchanged, snapshot

TP = caffe2_pb2.TensorProto


@pytest.fixture
def counter_op():
    """A test-local in-place op 'TestWsIncrement': X += 1 (counts net iterations)."""
    with registry.isolated():
        register_schema(OpSchema("TestWsIncrement", num_inputs=1, num_outputs=1,
                                 allow_inplace={(0, 0)}, doc="Y = X + 1"))

        @register_kernel("TestWsIncrement")
        def _increment(ctx, x):
            return (x + 1,)

        register_schema(OpSchema("TestWsFail", num_inputs=1, num_outputs=1,
                                 doc="always fails at run time"))

        @register_kernel("TestWsFail")
        def _fail(ctx, x):
            ctx.enforce(False, "told to fail")

        yield


# -- FeedBlob / FetchBlob ------------------------------------------------------------
def test_feed_returns_true_and_stores_a_copy():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert workspace.FeedBlob("x", x) is True
    x[0, 0] = 100
    fetched = workspace.FetchBlob("x")
    np.testing.assert_array_equal(fetched, np.arange(6, dtype=np.float32).reshape(2, 3))
    fetched[1, 1] = -5  # FetchBlob returns a copy too
    assert workspace.FetchBlob("x")[1, 1] == 4


def test_feed_overwrites_and_keeps_dtype():
    workspace.FeedBlob("x", np.ones(2, np.float32))
    workspace.FeedBlob("x", np.array([1, 2, 3], np.int64))
    got = workspace.FetchBlob("x")
    assert got.dtype == np.int64 and got.tolist() == [1, 2, 3]


@pytest.mark.parametrize("value,fetched", [("héllo", "héllo".encode()),
                                            (b"\x00bytes\xff", b"\x00bytes\xff")])
def test_feed_strings(value, fetched):
    # Caffe2 kept a std::string: str goes in UTF-8 encoded, and comes back as bytes
    assert workspace.FeedBlob("s", value) is True
    assert workspace.FetchBlob("s") == fetched


def test_feed_tensor_proto():
    proto = TP(dims=[2, 2], data_type=TP.INT32, int32_data=[1, 2, 3, 4])
    assert workspace.FeedBlob("t", proto) is True
    got = workspace.FetchBlob("t")
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [[1, 2], [3, 4]])


@pytest.mark.parametrize("arr", [np.array(["ab", "cé"]), np.array([b"ab", "cé".encode()]),
                                 np.array(["ab", b"c\xc3\xa9"], dtype=object)])
def test_string_arrays_become_object_arrays_of_bytes(arr):
    # Caffe2's feeder stored std::string (str UTF-8 encoded), its fetcher gave bytes
    workspace.FeedBlob("s", arr)
    got = workspace.FetchBlob("s")
    assert got.dtype == object and got.shape == arr.shape
    assert got.tolist() == [b"ab", "cé".encode()]
    assert workspace.current().blob_dict["s"].tolist() == [b"ab", "cé".encode()]  # kernels too


def test_string_tensor_of_other_objects_is_refused():
    workspace.FeedBlob("s", np.array([b"x"], dtype=object))
    before = snapshot()
    with pytest.raises(EnforceError, match="Unsupported python object type.*got int"):
        workspace.FeedBlob("s", np.array([b"a", 3], dtype=object))
    assert_unchanged(before)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3, None, {"a": 1}, np.float32(1.0)])
def test_feed_bad_type_raises_and_changes_nothing(bad):
    workspace.FeedBlob("x", np.zeros(2, np.float32))
    with pytest.raises(RuntimeError, match="Unexpected type of argument - only numpy array "
                                           "or string are supported for feeding"):
        workspace.FeedBlob("x", bad)
    np.testing.assert_array_equal(workspace.FetchBlob("x"), np.zeros(2, np.float32))
    with pytest.raises(RuntimeError):
        workspace.FeedBlob("new", bad)
    assert not workspace.HasBlob("new")


def test_fetch_missing_blob():
    with pytest.raises(RuntimeError, match="Can't find blob: nope"):
        workspace.FetchBlob("nope")
    assert issubclass(BlobNotFound, RuntimeError)


def test_fetch_blobs_has_blob_blobs_create_blob():
    workspace.FeedBlob("a", np.ones(1, np.float32))
    workspace.FeedBlob("b", "text")
    a, b = workspace.FetchBlobs(["a", "b"])
    assert a.tolist() == [1.0] and b == b"text"
    assert workspace.HasBlob("a") and not workspace.HasBlob("c")
    assert workspace.CreateBlob("c") is True
    assert workspace.HasBlob("c")
    assert workspace.CreateBlob("a") is True  # an existing blob is left as it is
    assert workspace.FetchBlob("a").tolist() == [1.0]
    assert sorted(workspace.Blobs()) == ["a", "b", "c"]
    assert workspace.HasBlob(core.BlobReference("a"))


# -- workspaces -----------------------------------------------------------------------
def test_reset_workspace_drops_blobs_and_nets(tmp_path):
    workspace.FeedBlob("x", np.ones(2, np.float32))
    net = core.Net("reset_me")
    net.Relu("x", "y")
    workspace.CreateNet(net)
    root = workspace.RootFolder()
    assert workspace.ResetWorkspace() is True
    assert workspace.Blobs() == []
    assert workspace.RootFolder() == root
    with pytest.raises(RuntimeError, match="Can't find net"):
        workspace.RunNet(net.Name())
    folder = tmp_path / "a" / "b"
    assert workspace.ResetWorkspace(str(folder)) is True
    assert folder.is_dir() and workspace.RootFolder() == str(folder)
    assert workspace.CurrentWorkspace() == "default"


def test_switch_workspace():
    assert workspace.CurrentWorkspace() == "default"
    with pytest.raises(RuntimeError, match="Workspace other_ws does not exist"):
        workspace.SwitchWorkspace("other_ws")
    with pytest.raises(WorkspaceError, match="create_if_missing"):
        workspace.SwitchWorkspace("other_ws", False)
    assert "other_ws" not in workspace.Workspaces()
    workspace.FeedBlob("in_default", np.ones(1, np.float32))
    assert workspace.SwitchWorkspace("other_ws", True) is None
    assert workspace.CurrentWorkspace() == "other_ws"
    assert not workspace.HasBlob("in_default")
    workspace.FeedBlob("in_other", np.ones(1, np.float32))
    assert {"default", "other_ws"} <= set(workspace.Workspaces())
    workspace.SwitchWorkspace("default")
    assert workspace.HasBlob("in_default") and not workspace.HasBlob("in_other")


def test_workspace_guard_switches_back_even_on_error():
    with workspace.WorkspaceGuard("guarded_ws"):
        assert workspace.CurrentWorkspace() == "guarded_ws"
        workspace.FeedBlob("g", np.ones(1, np.float32))
    assert workspace.CurrentWorkspace() == "default"
    with pytest.raises(KeyError):
        with workspace.WorkspaceGuard("guarded_ws"):
            assert workspace.HasBlob("g")
            raise KeyError("boom")
    assert workspace.CurrentWorkspace() == "default"


# -- nets ------------------------------------------------------------------------------
def _relu_net(name="relu_net"):
    net = caffe2_pb2.NetDef(name=name, external_input=["x"], external_output=["y"])
    net.op.add(type="Relu", input=["x"], output=["y"])
    return net


def test_create_net_accepts_net_netdef_and_bytes():
    x = np.array([-1, 2, -3], np.float32)
    workspace.FeedBlob("x", x)
    core_net = core.Net("tw_from_core")
    core_net.Relu("x", "y1")
    assert workspace.CreateNet(core_net) is True
    proto = _relu_net("from_proto")
    assert workspace.CreateNet(proto) is True
    wire = _relu_net("from_bytes").SerializeToString()
    assert workspace.CreateNet(wire) is True
    for name in ("tw_from_core", "from_proto", "from_bytes"):
        assert workspace.RunNet(name) is True
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.maximum(x, 0))
    np.testing.assert_array_equal(workspace.FetchBlob("y1"), np.maximum(x, 0))
    assert workspace.RunNet(core_net) is True  # a Net object works as the name


def test_create_net_refuses_to_overwrite():
    workspace.FeedBlob("x", np.ones(2, np.float32))
    workspace.CreateNet(_relu_net("dup"))
    with pytest.raises(RuntimeError) as info:
        workspace.CreateNet(_relu_net("dup"))
    assert str(info.value) == ('I respectfully refuse to overwrite an existing net of the same '
                               'name "dup", unless you explicitly specify overwrite=true.')
    assert workspace.CreateNet(_relu_net("dup"), overwrite=True) is True


def test_create_net_needs_a_name():
    unnamed = _relu_net()
    unnamed.ClearField("name")
    with pytest.raises(RuntimeError, match="Net definition should have a name."):
        workspace.CreateNet(unnamed)
    # An empty name that is present passes Caffe2's has_name(), as the model zoo's
    # SqueezeNet predict net (name: "") did through workspace.Predictor.
    workspace.FeedBlob("x", np.array([-1.0, 2.0], np.float32))
    assert workspace.CreateNet(_relu_net("")) is True
    workspace.RunNet("")
    assert workspace.FetchBlob("y").tolist() == [0.0, 2.0]


def test_create_net_input_blobs_and_missing_inputs():
    with pytest.raises(BlobNotFound, match="'x'.*does not exist"):
        workspace.CreateNet(_relu_net("needs_x"))
    assert workspace.Blobs() == []  # a failed CreateNet creates nothing
    assert workspace.CreateNet(_relu_net("needs_x"), input_blobs=["x"]) is True
    assert workspace.HasBlob("x") and workspace.HasBlob("y")  # outputs created with the net
    # empty until fed: Caffe2's metainfo bytes for an uninitialized blob
    assert workspace.FetchBlob("x") == b"x, a C++ native class of type nullptr (uninitialized)."
    with pytest.raises(BlobNotFound, match=r"'x'\) is empty"):
        workspace.RunNet("needs_x")


def test_create_net_garbage_bytes():
    with pytest.raises(ProtoParseError, match="CreateNet"):
        workspace.CreateNet(b"\xff\xff\xff")


def test_run_net_num_iter_and_allow_fail(counter_op):
    workspace.FeedBlob("c", np.zeros(1, np.int64))
    net = core.Net("count")
    net.TestWsIncrement("c", "c")
    workspace.CreateNet(net)
    assert workspace.RunNet(net.Name(), num_iter=3) is True
    assert workspace.FetchBlob("c").tolist() == [3]
    assert workspace.RunNet(net, 2) is True
    assert workspace.FetchBlob("c").tolist() == [5]

    bad = core.Net("tw_bad")
    bad.TestWsFail("c", "d")
    workspace.CreateNet(bad)
    assert workspace.RunNet(bad.Name(), allow_fail=True) is False
    with pytest.raises(RuntimeError, match='TestWsFail.*in net "tw_bad".*told to fail'):
        workspace.RunNet(bad.Name())
    assert workspace.FetchBlob("d").endswith(b"nullptr (uninitialized).")  # never written


def test_run_missing_net():
    with pytest.raises(NetError, match="Can't find net nowhere"):
        workspace.RunNet("nowhere")
    with pytest.raises(RuntimeError, match="Can't find net nowhere"):
        workspace.RunNet("nowhere", allow_fail=True)


def test_run_net_once_does_not_keep_the_net():
    workspace.FeedBlob("x", np.array([-2, 5], np.float32))
    assert workspace.RunNetOnce(_relu_net("once")) is True
    assert workspace.FetchBlob("y").tolist() == [0, 5]
    with pytest.raises(RuntimeError, match="Can't find net once"):
        workspace.RunNet("once")


def test_run_operator_once_and_operators_once():
    workspace.FeedBlob("x", np.array([-2, 5], np.float32))
    op = core.CreateOperator("Relu", ["x"], ["y"])
    assert workspace.RunOperatorOnce(op) is True
    assert workspace.RunOperatorOnce(op.SerializeToString()) is True
    assert workspace.FetchBlob("y").tolist() == [0, 5]
    ops = [core.CreateOperator("Relu", ["x"], ["a"]), core.CreateOperator("Relu", ["a"], ["b"])]
    assert workspace.RunOperatorsOnce(ops) is True
    assert workspace.FetchBlob("b").tolist() == [0, 5]


def test_failed_operator_leaves_no_output_blob(counter_op):
    workspace.FeedBlob("x", np.ones(1, np.int64))
    with pytest.raises(RuntimeError, match="told to fail"):
        workspace.RunOperatorOnce(core.CreateOperator("TestWsFail", ["x"], ["never"]))
    assert workspace.Blobs() == ["x"]
    with pytest.raises(RuntimeError, match="told to fail"):
        workspace.RunNetOnce(_fail_net())
    assert workspace.Blobs() == ["x"]


def _fail_net():
    net = caffe2_pb2.NetDef(name="fails")
    net.op.add(type="TestWsFail", input=["x"], output=["out"])
    return net


# -- serialization ---------------------------------------------------------------------
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.int16, np.int8,
          np.uint8, np.uint16, np.bool_]
FIELD = {np.float32: ("float_data", TP.FLOAT), np.float64: ("double_data", TP.DOUBLE),
         np.float16: ("int32_data", TP.FLOAT16), np.int32: ("int32_data", TP.INT32),
         np.int64: ("int64_data", TP.INT64), np.int16: ("int32_data", TP.INT16),
         np.int8: ("int32_data", TP.INT8), np.uint8: ("int32_data", TP.UINT8),
         np.uint16: ("int32_data", TP.UINT16), np.bool_: ("int32_data", TP.BOOL)}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_serialize_deserialize_every_dtype(dtype):
    rng = np.random.default_rng(0)
    if dtype == np.bool_:
        x = rng.integers(0, 2, size=(2, 3)).astype(bool)
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=(2, 3), endpoint=True).astype(dtype)
        x.flat[0], x.flat[1] = info.min, info.max
    else:
        x = (rng.standard_normal((2, 3)) * 100).astype(dtype)
    workspace.FeedBlob("x", x)
    data = workspace.SerializeBlob("x")
    assert isinstance(data, bytes)
    blob = caffe2_pb2.BlobProto.FromString(data)
    field, data_type = FIELD[dtype]
    assert blob.name == "x" and blob.type == "Tensor"
    assert blob.tensor.data_type == data_type and list(blob.tensor.dims) == [2, 3]
    stored = list(getattr(blob.tensor, field))
    if dtype == np.float16:  # Caffe2 stores the bit pattern as an unsigned short
        assert stored == [int(b) for b in x.reshape(-1).view(np.uint16)]
    elif dtype == np.bool_:
        assert stored == [int(v) for v in x.reshape(-1)]
    else:
        assert stored == x.reshape(-1).tolist()
    assert workspace.DeserializeBlob("y", data) is True
    y = workspace.FetchBlob("y")
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_serialize_strings():
    strings = np.array([b"a", b"", b"\xffz"], dtype=object)
    workspace.FeedBlob("s", strings)
    blob = caffe2_pb2.BlobProto.FromString(workspace.SerializeBlob("s"))
    assert blob.tensor.data_type == TP.STRING
    assert list(blob.tensor.string_data) == list(strings)
    workspace.DeserializeBlob("s2", workspace.SerializeBlob("s"))
    assert list(workspace.FetchBlob("s2")) == list(strings)

    workspace.FeedBlob("one", b"single string")
    workspace.DeserializeBlob("one2", workspace.SerializeBlob("one"))
    assert workspace.FetchBlob("one2") == b"single string"


def test_serialize_empty_and_scalar_tensors():
    for name, x in (("empty", np.zeros((0, 4), np.float32)), ("scalar", np.array(7, np.int64))):
        workspace.FeedBlob(name, x)
        workspace.DeserializeBlob(name + "_copy", workspace.SerializeBlob(name))
        got = workspace.FetchBlob(name + "_copy")
        assert got.shape == x.shape and got.dtype == x.dtype
        np.testing.assert_array_equal(got, x)


def test_serialize_failures():
    with pytest.raises(RuntimeError, match="Can't find blob: gone"):
        workspace.SerializeBlob("gone")
    workspace.CreateBlob("empty")
    with pytest.raises(RuntimeError, match="'empty' is empty"):
        workspace.SerializeBlob("empty")
    workspace.FeedBlob("keep", np.ones(2, np.float32))
    with pytest.raises(ProtoParseError, match="DeserializeBlob"):
        workspace.DeserializeBlob("keep", b"\xff\xff")
    assert workspace.FetchBlob("keep").tolist() == [1, 1]


# -- odds and ends ---------------------------------------------------------------------
def test_registered_operators():
    ops = workspace.RegisteredOperators()
    assert ops == sorted(ops)
    assert "Relu" in ops and "ReluGradient" in ops


def test_blobs_dict_view():
    workspace.blobs["x"] = np.ones(3, np.float32)
    assert "x" in workspace.blobs and "y" not in workspace.blobs
    assert workspace.blobs["x"].tolist() == [1, 1, 1]
    workspace.blobs["s"] = "str"
    assert len(workspace.blobs) == 2 and sorted(workspace.blobs) == ["s", "x"]
    del workspace.blobs["s"]
    assert list(workspace.blobs) == ["x"]
    with pytest.raises(KeyError):
        del workspace.blobs["s"]
    with pytest.raises(RuntimeError, match="Can't find blob"):
        workspace.blobs["nope"]


def test_stringify_and_net_names():
    net = core.Net("stringify")
    assert workspace.StringifyProto(b"raw") == b"raw"
    assert workspace.StringifyProto(net) == net.Proto().SerializeToString()
    assert workspace.StringifyProto(net.Proto()) == net.Proto().SerializeToString()
    with pytest.raises(ValueError, match="Unexpected argument to StringifyProto"):
        workspace.StringifyProto(3)
    assert workspace.GetNetName(net) == net.Name()
    assert workspace.GetNetName(net.Proto()) == net.Name()
    assert workspace.GetNetName("n") == "n"
    with pytest.raises(Exception, match="Not a Net object"):
        workspace.GetNetName(3)


def test_workspace_object_api():
    ws = workspace.Workspace("standalone")
    ws.feed_blob("x", np.array([-1, 1], np.float32))
    assert ws.run(core.CreateOperator("Relu", ["x"], ["y"])) is True
    assert ws.fetch_blob("y").tolist() == [0, 1]
    assert ws.run(_relu_net("ws_net")) is True
    with pytest.raises(ValueError, match="Don't know how to do Workspace.run"):
        ws.run(42)
    assert not workspace.HasBlob("x")  # the current workspace is untouched
    assert workspace.Workspace.current is workspace.current()  # Caffe2's C.Workspace.current
    workspace.SwitchWorkspace(ws)
    assert workspace.Workspace.current is ws and ws.current is ws
    workspace.SwitchWorkspace("default")
