"""caffe2lite.utils: Caffe2's caffe2.python.utils helpers, checked against protos and
arrays written out here."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, utils
from caffe2lite.errors import ProtoParseError
from caffe2lite.proto import caffe2_pb2


def test_make_argument_follows_caffe2_typing():
    assert utils.MakeArgument("f", 0.5) == caffe2_pb2.Argument(name="f", f=0.5)
    assert utils.MakeArgument("b", True) == caffe2_pb2.Argument(name="b", i=1)
    assert utils.MakeArgument("s", "x") == caffe2_pb2.Argument(name="s", s=b"x")
    assert utils.MakeArgument("v", np.array([1.5, 2.0], np.float32)) == \
        caffe2_pb2.Argument(name="v", floats=[1.5, 2.0])


def test_args_to_dict_gives_stored_values():
    net = caffe2_pb2.NetDef(name="inner")
    op = core.CreateOperator("Relu", ["x"], ["y"], i=3, f=0.25, s="word", ints=[1, 2],
                             floats=[0.5], strings=["a", "b"], n=net)
    op.arg.add(name="empty")
    op.arg.add(i=9)  # no name: skipped
    assert utils.ArgsToDict(op.arg) == {
        "i": 3, "f": 0.25, "s": b"word", "ints": [1, 2], "floats": [0.5],
        "strings": [b"a", b"b"], "n": net, "empty": None}


@pytest.mark.parametrize("arr, field, stored", [
    (np.array([[1.5, -2.0]], np.float32), "float_data", [1.5, -2.0]),
    (np.array([7, -8], np.int32), "int32_data", [7, -8]),
    (np.array([2**40], np.int64), "int64_data", [2**40]),
    (np.array([0.1], np.float64), "double_data", [0.1]),
    (np.array([True, False]), "int32_data", [1, 0]),
    (np.array([b"ab", b"c"], dtype=object), "string_data", [b"ab", b"c"]),
])
def test_numpy_array_to_tensor_and_back(arr, field, stored):
    proto = utils.NumpyArrayToCaffe2Tensor(arr, "t")
    assert proto.name == "t" and list(proto.dims) == list(arr.shape)
    assert list(getattr(proto, field)) == stored
    back = utils.Caffe2TensorToNumpyArray(proto)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_try_read_proto_with_class_reads_text_and_binary():
    net = caffe2_pb2.NetDef(name="n", external_input=["x"])
    assert utils.TryReadProtoWithClass(caffe2_pb2.NetDef, net.SerializeToString()) == net
    assert utils.TryReadProtoWithClass(caffe2_pb2.NetDef, 'name: "n" external_input: "x"') == net
    with pytest.raises(ProtoParseError, match="TryReadProtoWithClass\\(NetDef\\)"):
        utils.TryReadProtoWithClass(caffe2_pb2.NetDef, b"\xff\xff not a net")
