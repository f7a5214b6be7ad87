"""caffe2lite.param_init: a predict net's parameter shapes, and its random init net.

Expected shapes are written out from Caffe2's documented layouts (Conv filter
(M, C/group, *kernel) in NCHW and (M, *kernel, C/group) in NHWC, ConvTranspose
(C, M/group, *kernel), FC W (N, K), SpatialBN vectors (C,)) or read from the
corpus's real trained init nets -- never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace, zoo_widths
from caffe2lite.errors import EnforceError
from caffe2lite.param_init import parameter_shapes, random_init_net
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import load_net
from helpers import skip_unless_runnable


def _net(*ops, name="p"):
    net = caffe2_pb2.NetDef(name=name)
    for op in ops:
        net.op.add().CopyFrom(op)
    return net


def _op(op_type, inputs, outputs, **args):
    return core.CreateOperator(op_type, inputs, outputs, **args)


@pytest.mark.parametrize("x_shape, args, width, expected", [
    ((2, 6, 9, 9), dict(kernel=3, group=2), 8, (8, 3, 3, 3)),
    ((2, 6, 9, 9), dict(kernel_h=3, kernel_w=2), 5, (5, 6, 3, 2)),
    ((2, 9, 9, 6), dict(kernel_h=3, kernel_w=2, order="NHWC"), 5, (5, 3, 2, 6)),
    ((2, 9, 9, 6), dict(kernels=[3, 2], group=3, order="NHWC"), 6, (6, 3, 2, 2)),
    ((1, 4, 5, 6, 7), dict(kernels=[1, 2, 3]), 5, (5, 4, 1, 2, 3)),
    ((1, 4, 10), dict(kernel=3), 5, (5, 4, 3)),
])
def test_conv_filter_and_bias(x_shape, args, width, expected):
    net = _net(_op("Conv", ["x", "w", "b"], ["y"], **args))
    assert parameter_shapes(net, {"x": x_shape}, {"w": width}) == {"w": expected,
                                                                    "b": (width,)}


def test_conv_transpose_filter_is_input_channels_first():
    net = _net(_op("ConvTranspose", ["x", "w", "b"], ["y"], kernel=3, group=2))
    assert parameter_shapes(net, {"x": (1, 4, 5, 5)}, {"w": 6}) == {"w": (4, 3, 3, 3),
                                                                     "b": (6,)}


@pytest.mark.parametrize("op_type, args, expected_w", [
    ("FC", {}, (7, 20)),
    ("FC", {"axis": 2}, (7, 5)),
    ("FC", {"axis_w": 3}, (7, 1, 1, 20)),  # inception_v1's translated classifier
    ("FCTransposed", {}, (20, 7)),
])
def test_fc_weight_from_the_flattened_input(op_type, args, expected_w):
    net = _net(_op(op_type, ["x", "w", "b"], ["y"], **args))
    shapes = parameter_shapes(net, {"x": (3, 4, 5)}, lambda blob: {"w": 7}.get(blob))
    assert shapes == {"w": expected_w, "b": (7,)}


@pytest.mark.parametrize("order, x_shape", [("NCHW", (2, 5, 3, 4)), ("NHWC", (2, 3, 4, 5))])
def test_spatial_bn_vectors_have_the_channel_count(order, x_shape):
    net = _net(_op("SpatialBN", ["x", "s", "b", "m", "v"], ["y"], is_test=1, order=order))
    assert parameter_shapes(net, {"x": x_shape}) == {k: (5,) for k in "sbmv"}


def test_broadcast_bias_is_a_vector_along_axis():
    net = _net(_op("Add", ["x", "b"], ["y"], broadcast=1, axis=1))
    assert parameter_shapes(net, {"x": (2, 5, 3, 3)}) == {"b": (5,)}


def test_shapes_carry_through_fc_relu_and_reshape():
    """An exported MLP: Reshape(-1, 20) -> FC -> Relu -> FC; the second K is the first N."""
    net = _net(_op("Reshape", ["x"], ["flat", "old"], shape=[-1, 20]),
               _op("FC", ["flat", "w1", "b1"], ["h"]), _op("Relu", ["h"], ["r"]),
               _op("FC", ["r", "w2", "b2"], ["y"]))
    shapes = parameter_shapes(net, {"x": (2, 4, 5)}, {"w1": 6, "w2": 3})
    assert shapes == {"w1": (6, 20), "b1": (6,), "w2": (3, 6), "b2": (3,)}


def test_reshape_infers_shapes_from_its_argument_only():
    """0 copies the input dim, -1 takes the rest; a shape given as a blob is a value."""
    net = core.Net("reshapes")
    net.Reshape(["x"], ["y", "old"], shape=[0, -1, 2])
    net.Reshape(["x", "new_shape"], ["z", "old2"])
    shapes, _ = workspace.InferShapesAndTypes([net], {"x": [3, 4, 5], "new_shape": [2]})
    assert shapes["y"] == [3, 10, 2] and shapes["old"] == [3]
    assert "z" not in shapes and "old2" not in shapes


def test_errors_name_the_op_and_the_blob():
    net = _net(_op("FC", ["x", "w", "b"], ["y"]), name="errs")
    with pytest.raises(EnforceError, match=r'op #0 FC in net "errs".*weight \'w\'.*--width w=N'):
        parameter_shapes(net, {"x": (2, 3)})
    net = _net(_op("Relu", ["x"], ["r"]), _op("Gather", ["r", "idx"], ["y"]), name="errs")
    with pytest.raises(EnforceError, match=r"op #1 Gather.*no rule.*'idx'"):
        parameter_shapes(net, {"x": (2, 3)})
    for group in (0, 4):  # 4 divides neither 6 channels nor 6 outputs
        net = _net(_op("Conv", ["x", "w"], ["y"], kernel=1, group=group))
        with pytest.raises(EnforceError, match=f"group {group} does not divide the 6 input"):
            parameter_shapes(net, {"x": (1, 6, 3, 3)}, {"w": 6})
    net = _net(_op("NoShapeFunctionOp", ["x"], ["h"]), _op("FC", ["h", "w", "b"], ["y"]))
    with pytest.raises(EnforceError, match=r"op #1 FC.*input 'h' is unknown"):
        parameter_shapes(net, {"x": (2, 3)}, {"w": 4})


def _run_init(init) -> dict:
    workspace.ResetWorkspace()
    workspace.RunNetOnce(init)
    return {name: workspace.FetchBlob(name) for name in init.external_output}


def test_random_init_net_fills_every_parameter_reproducibly():
    net = _net(_op("FC", ["x", "w1", "b1"], ["h"]), _op("Relu", ["h"], ["r"]),
               _op("SpatialBN", ["r", "s", "bias", "m", "v"], ["z"], is_test=1),
               name="mlp")  # SpatialBN over the (N, C) activations
    init = random_init_net(net, {"x": (4, 300)}, {"w1": 200}, seed=3)
    values = _run_init(init)
    assert {k: v.shape for k, v in values.items()} == {
        "w1": (200, 300), "b1": (200,), "s": (200,), "bias": (200,), "m": (200,), "v": (200,)}
    assert all(v.dtype == np.float32 for v in values.values())
    # He scaling: std sqrt(2 / fan_in); 60000 draws put the sample std within 2 %.
    assert abs(values["w1"].std() / np.sqrt(2 / 300) - 1) < 0.02
    assert values["v"].min() >= 0.5 and values["v"].max() <= 1.5  # variances positive
    assert values["s"].min() >= 0.5
    again = _run_init(random_init_net(net, {"x": (4, 300)}, {"w1": 200}, seed=3))
    assert all(np.array_equal(values[k], again[k]) for k in values)
    other = _run_init(random_init_net(net, {"x": (4, 300)}, {"w1": 200}, seed=4))
    assert not np.array_equal(values["w1"], other["w1"])


def test_random_init_net_fills_on_the_predict_nets_device():
    net = _net(_op("FC", ["x", "w", "b"], ["y"]))
    net.device_option.device_type, net.device_option.device_id = caffe2_pb2.CUDA, 1
    init = random_init_net(net, {"x": (2, 3)}, {"w": 4}, seed=10)
    options = [(op.device_option.device_type, op.device_option.device_id,
                op.device_option.random_seed) for op in init.op]
    assert options == [(caffe2_pb2.CUDA, 1, 10), (caffe2_pb2.CUDA, 1, 11)]
    assert [op.type for op in init.op] == ["GaussianFill", "GaussianFill"]


# -- real nets: the derivation against trained init nets and published sizes ----------
def _init_shapes(init) -> dict:
    return {op.output[0]: tuple(arg.ints) for op in init.op for arg in op.arg
            if arg.name == "shape"}


@pytest.mark.parametrize("stem, data, shape", [
    ("HungMingWu__pytorch_caffe2_cpp_binding__", "1", (1, 1, 28, 28)),
    ("Miyuan2018__TrafficLight-Test__", "data", (1, 3, 227, 227)),
])
def test_derived_shapes_match_the_trained_init_nets(nets_dir, stem, data, shape):
    predict = load_net(nets_dir / f"{stem}predict_net.pb")
    skip_unless_runnable(predict, stem)  # the walk needs Conv/MaxPool's shape functions
    real = _init_shapes(load_net(nets_dir / f"{stem}init_net.pb"))
    real.pop(data, None)  # TrafficLight's init net holds a placeholder for the input
    widths = {blob: dims[0] for blob, dims in real.items()}
    assert parameter_shapes(predict, {data: shape}, widths) == real


def test_squeezenet_widths_match_the_trained_traffic_light_net(nets_dir):
    stem = "Miyuan2018__TrafficLight-Test__"
    predict = load_net(nets_dir / f"{stem}predict_net.pb")
    skip_unless_runnable(predict, stem)
    real = _init_shapes(load_net(nets_dir / f"{stem}init_net.pb"))
    real.pop("data")
    widths = zoo_widths.squeezenet(conv1=96, classes=real["conv10_w"][0])  # v1.0 layout
    assert parameter_shapes(predict, {"data": (1, 3, 227, 227)}, widths) == real


@pytest.mark.parametrize("name, data, size, widths, expected", [
    # AlexNet: 256 x 6 x 6 into fc6 at 227 x 227; GoogLeNet: 1024 into the classifier;
    # ResNet-50: a 7 x 7 x 64 stem and 2048 into pred.
    ("facebookarchive__models__bvlc_alexnet_predict_net.pbtxt", "data", 227,
     zoo_widths.alexnet(),
     {"conv1_w": (96, 3, 11, 11), "conv2_w": (256, 48, 5, 5), "fc6_w": (4096, 9216),
      "fc8_w": (1000, 4096)}),
    ("facebookarchive__models__inception_v1_predict_net.pbtxt", "data", 224,
     zoo_widths.inception_v1(),
     {"conv1/7x7_s2_w": (64, 3, 7, 7), "inception_5b/pool_proj_w": (128, 832, 1, 1),
      "loss3/classifier_w": (1000, 1, 1, 1024)}),
    ("facebookarchive__models__resnet50_predict_net.pbtxt", "gpu_0/data", 224,
     zoo_widths.resnet50(),
     {"gpu_0/conv1_w": (64, 3, 7, 7), "gpu_0/res5_2_branch2c_w": (2048, 512, 1, 1),
      "gpu_0/res_conv1_bn_s": (64,), "gpu_0/pred_w": (1000, 2048)}),
])
def test_model_zoo_shapes_match_the_published_architectures(nets_dir, name, data, size,
                                                            widths, expected):
    predict = load_net(nets_dir / name)
    skip_unless_runnable(predict, name)
    shapes = parameter_shapes(predict, {data: (1, 3, size, size)}, widths)
    assert {blob: shapes[blob] for blob in expected} == expected
    fed_or_written = {data} | {out for op in predict.op for out in op.output}
    needed = {blob for op in predict.op for blob in op.input} - fed_or_written
    assert set(shapes) == needed
