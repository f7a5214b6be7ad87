"""core.Net's editing helpers: Clone, ClonePartial, AppendNet and Const.

Expected nets are written out by hand from Caffe2's documented behaviour
(shared/reference/caffe2_facts.md, core.Net), and every cloned net is also
run against NumPy.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2


def _ops(net):
    return [(op.type, list(op.input), list(op.output)) for op in net.Proto().op]


def _chain():
    """x -> a = 2x -> b = relu(a) -> c = 3b -> d = c + w; plus an op nobody needs."""
    net = core.Net("chain")
    net.Scale("x", "a", scale=2.0)
    net.Relu("a", "b")
    net.Scale("b", "c", scale=3.0)
    net.Add(["c", "w"], "d")
    net.Scale("x", "unused", scale=5.0)
    return net


def test_clone_renames_blobs_and_masks_ops():
    net = _chain()
    clone = net.Clone("copy", {"x": "x2"}, op_id_mask=[0, 1])
    assert re.fullmatch(r"copy(_\d+)?", clone.Name())  # net names are unique per process
    assert _ops(clone) == [("Scale", ["x2"], ["a"]), ("Relu", ["a"], ["b"])]
    assert list(clone.Proto().external_input) == ["x2", "w"]
    assert len(net.Proto().op) == 5  # the original is untouched


def test_clone_partial_keeps_only_the_ops_between_inputs_and_outputs():
    net = _chain()
    part, outs = net.ClonePartial("part", {"b": "b_in"}, ["d"])
    assert _ops(part) == [("Scale", ["b_in"], ["part/c"]), ("Add", ["part/c", "w"], ["part/d"])]
    assert list(part.Proto().external_input) == ["b_in", "w"]  # w: read, neither given nor made
    assert list(part.Proto().external_output) == ["part/d"] and [str(o) for o in outs] == ["part/d"]
    b, w = np.array([-1.0, 2.0], np.float32), np.array([10.0, 20.0], np.float32)
    workspace.FeedBlob("b_in", b)
    workspace.FeedBlob("w", w)
    workspace.RunNetOnce(part)
    np.testing.assert_allclose(workspace.FetchBlob("part/d"), 3 * b + w)


def test_clone_partial_with_names_and_pairs():
    net = _chain()
    part, _ = net.ClonePartial("p", ["x"], ["c"])
    assert _ops(part) == [("Scale", ["x"], ["p/a"]), ("Relu", ["p/a"], ["p/b"]),
                          ("Scale", ["p/b"], ["p/c"])]
    pairs, _ = net.ClonePartial("q", [("a", "given_a")], ["b"])
    assert _ops(pairs) == [("Relu", ["given_a"], ["q/b"])]


def test_clone_partial_follows_versions_of_in_place_blobs():
    net = core.Net("inplace")
    net.Scale("x", "x", scale=2.0)  # x version 1
    net.Relu("x", "y")              # reads x version 1
    part, _ = net.ClonePartial("p", ["x"], ["y"])  # x given at its last version
    assert _ops(part) == [("Relu", ["x"], ["p/y"])]
    whole, _ = net.ClonePartial("w", [], ["y"])    # nothing given: both ops, x from outside
    assert _ops(whole) == [("Scale", ["x"], ["x"]), ("Relu", ["x"], ["w/y"])]


def test_clone_partial_refuses_outputs_that_need_an_older_input():
    net = core.Net("older")
    net.Scale("x", "a", scale=2.0)
    net.Relu("a", "b")                 # b needs a as the Scale made it ...
    net.Scale("a", "a", scale=3.0)     # ... but "a" given means this later version
    with pytest.raises(ValueError, match="would generate the given input"):
        net.ClonePartial("p", ["a"], ["b"])
    with pytest.raises(AssertionError, match="nowhere is not defined"):
        net.ClonePartial("p", ["x"], ["nowhere"])


def test_append_net_adds_ops_and_missing_externals():
    first = core.Net("first")
    y = first.Relu("x", "y")
    first.AddExternalOutput(y)
    second = core.Net("second")
    z = second.Scale(["y"], "z", scale=2.0)
    second.AddExternalOutput(second.Add([z, "w"], "out"))
    gpu = core.DeviceOption(caffe2_pb2.CUDA, 1)
    assert first.AppendNet(second, device_option=gpu) is first
    assert _ops(first) == [("Relu", ["x"], ["y"]), ("Scale", ["y"], ["z"]),
                           ("Add", ["z", "w"], ["out"])]
    assert list(first.Proto().external_input) == ["x", "w"]  # y is made by first already
    assert list(first.Proto().external_output) == ["y", "out"]
    assert [op.device_option.device_id for op in first.Proto().op[1:]] == [1, 1]
    assert not first.Proto().op[0].HasField("device_option")
    assert not second.Proto().op[0].HasField("device_option")  # the appended net is unchanged


@pytest.mark.parametrize("value, fill, expected", [
    (np.array([[1, 2], [3, 4]], np.int32), "GivenTensorIntFill", None),
    (np.array([5, 6], np.int64), "GivenTensorInt64Fill", None),
    (np.array([True, False]), "GivenTensorBoolFill", None),
    ([1.5, 2.5], "GivenTensorFill", np.array([1.5, 2.5], np.float32)),
    (np.array([0.25], np.float64), "GivenTensorFill", np.array([0.25], np.float32)),
    (["a", "bc"], "GivenTensorStringFill", np.array([b"a", b"bc"], dtype=object)),
    (True, "ConstantFill", np.array(True)),
])
def test_const_picks_the_fill_by_dtype(value, fill, expected):
    net = core.Net("consts")
    ref = net.Const(value, "k")
    assert str(ref) == "k" and net.Proto().op[0].type == fill
    workspace.RunNetOnce(net)
    got = workspace.FetchBlob("k")
    want = np.asarray(value) if expected is None else expected
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_const_names_its_output_like_other_sugar():
    net = core.Net("auto")
    assert str(net.Const(np.array([1], np.int32))) == "auto/GivenTensorIntFill:0"
