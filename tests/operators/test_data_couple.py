"""DataCouple and AsyncNetBarrier change nothing; the barrier's devices follow Caffe2."""

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import get_schema


def test_data_couple_keeps_every_blob():
    values = {name: np.random.default_rng(i).random((3, 2))
              for i, name in enumerate(["param", "grad", "extra"])}
    for name, value in values.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator("DataCouple", ["param", "grad", "extra"],
                                                  ["param", "grad"]))
    for name, value in values.items():
        np.testing.assert_array_equal(workspace.FetchBlob(name), value)


def test_async_net_barrier_in_place_and_copying():
    a, b = np.arange(6.0).reshape(2, 3), np.array([b"x", b"y"], dtype=object)
    workspace.FeedBlob("a", a)
    workspace.FeedBlob("b", b)
    workspace.RunOperatorOnce(core.CreateOperator("AsyncNetBarrier", ["a", "b"], ["a", "b2"]))
    np.testing.assert_array_equal(workspace.FetchBlob("a"), a)
    assert workspace.FetchBlob("b2").tolist() == [b"x", b"y"]
    shapes, types = workspace.InferShapesAndTypes(
        [_net(core.CreateOperator("AsyncNetBarrier", ["a"], ["a2"]))], {"a": [2, 3]})
    assert shapes["a2"] == [2, 3]


def test_async_net_barrier_cross_device_inference():
    option = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA, device_id=0)
    op = core.CreateOperator("AsyncNetBarrier", ["a", "b"], ["a", "b"], cross_device=1,
                             device_option=option)
    inputs, outputs = get_schema("AsyncNetBarrier").infer_device(op)
    assert [(d.device_type, d.device_id) for d in inputs] == [(caffe2_pb2.CUDA, 0),
                                                              (caffe2_pb2.CUDA, 1)]
    assert [d.device_id for d in outputs] == [0, 1]


def _net(op):
    net = core.Net("barrier")
    net.Proto().op.extend([op])
    return net
