"""Caffe2 -> ONNX: convolution, pooling, normalisation, FC, Softmax, Dropout.

Window arguments are read with the operators' own ``_conv_geometry`` (every
spelling Caffe2 accepted) and resolved against the input's shape, so Caffe2's
``legacy_pad`` rules (VALID, SAME, Caffe's ceil-mode pooling) become explicit,
possibly asymmetric ONNX pads: the output sizes are Caffe2's by construction.
NHWC ops are wrapped in Transposes (ONNX's layer ops are channels-first).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from caffe2lite.onnx._export_base import ArgsView, exports
from caffe2lite.operators import _conv_geometry as geometry


def _window(op, cx, *, pooling=False, transpose=False):
    view = ArgsView(op)
    window = geometry.parse(view, pooling=pooling, transpose=transpose)
    resolved = geometry.resolve(view, window, cx.shape(op.inputs[0], op))
    if min(resolved.heads + resolved.tails, default=0) < 0:
        raise op.unsupported("a SAME window smaller than its stride crops the input "
                             "(negative pads), which ONNX cannot express")
    return window, resolved


def _to_channels_first(op, cx, window, nodes, inputs):
    """NCHW names for the op's inputs (Transposes appended for NHWC)."""
    if not window.channels_last:
        return inputs
    rank = cx.rank(op.inputs[0], op)
    to_first = [0, rank - 1] + list(range(1, rank - 1))
    return [cx.transposed(inputs[0], to_first, cx.temp(op, "nchw"), nodes)] + inputs[1:]


def _channels_first_output(op, cx, window, nodes):
    """The name the ONNX op should write; for NHWC, a Transpose back to op.outputs[0]."""
    if not window.channels_last:
        return op.outputs[0], lambda: None
    rank = cx.rank(op.inputs[0], op)
    y = cx.temp(op, "nchw_out")
    to_last = [0] + list(range(2, rank)) + [1]
    return y, lambda: nodes.append(cx.node("Transpose", [y], [op.outputs[0]], perm=to_last))


def _conv_inputs_channels_first(op, cx, window, nodes):
    """X and the filter channels-first: an NHWC filter (M, *k, C/g) -- ConvTranspose's
    (C, *k, M/g) -- becomes (M, C/g, *k) as ONNX wants."""
    inputs = _to_channels_first(op, cx, window, nodes, list(op.inputs))
    if window.channels_last:
        rank = cx.rank(op.inputs[1], op)
        inputs[1] = cx.transposed(inputs[1], [0, rank - 1] + list(range(1, rank - 1)),
                                  cx.temp(op, "filter_nchw"), nodes)
    return inputs


@exports("Conv", "Conv1D", "Conv2D", "Conv3D")
def conv(op, cx):
    window, res = _window(op, cx)
    nodes = []
    inputs = _conv_inputs_channels_first(op, cx, window, nodes)
    y, finish = _channels_first_output(op, cx, window, nodes)
    nodes.append(cx.node("Conv", inputs, [y], name=op.name, kernel_shape=list(res.kernel),
                         strides=list(res.stride), dilations=list(res.dilation),
                         pads=list(res.heads + res.tails), group=window.group))
    finish()
    return nodes


@exports("ConvTranspose")
def conv_transpose(op, cx):
    window = geometry.parse(ArgsView(op), transpose=True)
    nodes = []
    inputs = _conv_inputs_channels_first(op, cx, window, nodes)
    y, finish = _channels_first_output(op, cx, window, nodes)
    pads = list(window.pads)
    if window.legacy_pad != geometry.NOTSET:
        raise op.unsupported(f"legacy_pad = {geometry.LEGACY_PAD_NAMES[window.legacy_pad]} "
                             f"on ConvTranspose has no ONNX mapping yet")
    nodes.append(cx.node("ConvTranspose", inputs, [y], name=op.name,
                         kernel_shape=list(window.kernel), strides=list(window.stride),
                         pads=pads, output_padding=list(window.adj), group=window.group))
    finish()
    return nodes


_POOLS = {"MaxPool": "MaxPool", "AveragePool": "AveragePool", "LpPool": "LpPool"}


@exports("MaxPool", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AveragePool", "AveragePool1D",
         "AveragePool2D", "AveragePool3D", "LpPool")
def pool(op, cx):
    kind = op.type.rstrip("123D") if op.type[-2:] in ("1D", "2D", "3D") else op.type
    window, res = _window(op, cx, pooling=True)
    nodes = []
    inputs = _to_channels_first(op, cx, window, nodes, [op.inputs[0]])
    y, finish = _channels_first_output(op, cx, window, nodes)
    attrs = {}
    if kind == "LpPool":
        p = op.args["p"]
        if p != int(p):
            raise op.unsupported(f"p = {p}: ONNX's LpPool takes an integer p")
        attrs["p"] = int(p)
    if window.global_pooling:
        nodes.append(cx.node("Global" + _POOLS[kind], inputs, [y], name=op.name, **attrs))
    else:
        if kind == "AveragePool":
            attrs["count_include_pad"] = int(op.args["count_include_pad"])
            if (window.legacy_pad == geometry.CAFFE_LEGACY_POOLING and attrs["count_include_pad"]
                    and res.tails != tuple(window.pads[len(res.tails):])):
                raise op.unsupported("Caffe's ceil-mode pooling with count_include_pad counts "
                                     "only the given pads; ONNX would count the grown tail pad")
        nodes.append(cx.node(_POOLS[kind], inputs, [y], name=op.name,
                             kernel_shape=list(res.kernel), strides=list(res.stride),
                             pads=list(res.heads + res.tails), **attrs))
    finish()
    return nodes


@exports("SpatialBN")
def spatial_bn(op, cx):
    if not op.args["is_test"] or len(op.outputs) != 1:
        raise op.unsupported("only inference SpatialBN (is_test=1) has an ONNX mapping")
    nodes = []
    channels_last = op.args["order"] == "NHWC"
    rank = cx.rank(op.inputs[0], op)
    x = op.inputs[0]
    if channels_last:
        x = cx.transposed(x, [0, rank - 1] + list(range(1, rank - 1)), cx.temp(op, "nchw"),
                          nodes)
    y = cx.temp(op, "nchw_out") if channels_last else op.outputs[0]
    nodes.append(cx.node("BatchNormalization", [x] + list(op.inputs[1:5]), [y], name=op.name,
                         epsilon=float(op.args["epsilon"]),
                         momentum=float(op.args["momentum"])))
    if channels_last:
        nodes.append(cx.node("Transpose", [y], [op.outputs[0]],
                             perm=[0] + list(range(2, rank)) + [1]))
    return nodes


@exports("FC", "PackedFC")
def fc(op, cx):
    """Gemm(X, W, b, transB=1), with Flattens and a Reshape where axis / axis_w ask
    (model2's PackedFC is FC with W flattened at 1)."""
    x, w, b = op.inputs
    x_shape, w_shape = cx.shape(x, op), cx.shape(w, op)
    axis = op.args["axis"] % max(len(x_shape), 1) if op.args["axis"] < 0 else op.args["axis"]
    axis_w = op.args.get("axis_w", 1)
    axis_w = axis_w % len(w_shape) if axis_w < 0 else axis_w
    nodes = []
    if len(x_shape) != 2 or axis != 1:
        x2 = cx.temp(op, "x2d")
        nodes.append(cx.node("Flatten", [x], [x2], axis=axis))
        x = x2
    if len(w_shape) != 2 or axis_w != 1:
        w2 = cx.temp(op, "w2d")
        nodes.append(cx.node("Flatten", [w], [w2], axis=axis_w))
        w = w2
    n = 1
    for d in w_shape[:axis_w]:
        n *= d
    out_shape = tuple(x_shape[:axis]) + (n,)
    y = op.outputs[0] if len(out_shape) == 2 else cx.temp(op, "2d")
    nodes.append(cx.node("Gemm", [x, w, b], [y], name=op.name, transB=1))
    if y != op.outputs[0]:
        nodes.append(cx.reshape(y, out_shape, op.outputs[0]))
    return nodes


@exports("LRN")
def lrn(op, cx):
    nodes = []
    channels_last = op.args["order"] == "NHWC"
    x = op.inputs[0]
    if channels_last:
        x = cx.transposed(x, [0, 3, 1, 2], cx.temp(op, "nchw"), nodes)
    y = cx.temp(op, "nchw_out") if channels_last else op.outputs[0]
    nodes.append(cx.node("LRN", [x], [y], name=op.name, size=op.args["size"],
                         alpha=float(op.args["alpha"]), beta=float(op.args["beta"]),
                         bias=float(op.args["bias"])))
    if channels_last:
        nodes.append(cx.node("Transpose", [y], [op.outputs[0]], perm=[0, 2, 3, 1]))
    if len(op.outputs) > 1 and cx.is_needed(op.outputs[1]):
        raise op.unsupported("LRN's second output (the scale) has no ONNX mapping; it is "
                             "dropped only when nothing reads it")
    return nodes


@exports("Softmax")
def softmax(op, cx):
    """Caffe2 coerces X to 2-D at ``axis``; ONNX >= 13 works on one axis, so flatten
    the tail, take the softmax of the last axis and reshape back."""
    x, y = op.inputs[0], op.outputs[0]
    rank = cx.rank(x, op)
    axis = op.args["axis"] % rank if rank else 0
    if cx.opset < 13 or axis == rank - 1:
        return [cx.node("Softmax", [x], [y], name=op.name, axis=axis)]
    flat, soft = cx.temp(op, "2d"), cx.temp(op, "2d_softmax")
    return [cx.node("Flatten", [x], [flat], axis=axis),
            cx.node("Softmax", [flat], [soft], name=op.name, axis=1),
            cx.reshape(soft, cx.shape(x, op), y)]


@exports("Dropout")
def dropout(op, cx):
    if not op.args["is_test"]:
        raise op.unsupported("only inference Dropout (is_test=1) has an ONNX mapping")
    nodes = [cx.node("Identity", [op.inputs[0]], [op.outputs[0]], name=op.name)]
    if len(op.outputs) > 1:  # the mask: all kept
        shape = cx.temp(op, "shape")
        nodes += [cx.node("Shape", [op.inputs[0]], [shape]),
                  cx.node("ConstantOfShape", [shape], [op.outputs[1]],
                          value=_bool_tensor(True))]
    return nodes


def _bool_tensor(value):
    return helper.make_tensor("value", 9, [1], [bool(value)])


@exports("GroupNorm")
def group_norm(op, cx):
    """breadth-math's GroupNorm: ONNX's GroupNormalization from opset 21 (per-channel
    scale and bias; opset 18's were per group)."""
    if cx.opset < 21:
        raise op.unsupported("ONNX's GroupNormalization takes per-channel scales from "
                             "opset 21")
    if any(cx.is_needed(o) for o in op.outputs[1:]):
        raise op.unsupported("GroupNorm's mean and inv_std outputs have no ONNX mapping")
    nodes = []
    channels_last = op.args["order"] == "NHWC"
    x = op.inputs[0]
    rank = cx.rank(x, op)
    if channels_last:
        x = cx.transposed(x, [0, rank - 1] + list(range(1, rank - 1)), cx.temp(op, "nchw"),
                          nodes)
    y = cx.temp(op, "nchw_out") if channels_last else op.outputs[0]
    nodes.append(cx.node("GroupNormalization", [x] + list(op.inputs[1:3]), [y], name=op.name,
                         num_groups=op.args["group"], epsilon=float(op.args["epsilon"])))
    if channels_last:
        nodes.append(cx.node("Transpose", [y], [op.outputs[0]],
                             perm=[0] + list(range(2, rank)) + [1]))
    return nodes


@exports("RoIAlign")
def roi_align(op, cx):
    """detection's RoIAlign: ONNX's RoiAlign takes the boxes and their batch indices
    apart (Caffe2's RoIs are (R, 5) [batch, x1, y1, x2, y2], or (R, 4) for one image);
    Caffe2's sampling_ratio <= 0 (adaptive) is ONNX's 0; aligned is half_pixel."""
    if cx.opset < 16:
        raise op.unsupported("ONNX's RoiAlign has coordinate_transformation_mode from "
                             "opset 16")
    x, rois = op.inputs
    nodes = []
    count, width = cx.shape(rois, op)
    if width == 5:
        batch, batch_float, boxes = (cx.temp(op, k) for k in ("batch", "batch_f", "boxes"))
        nodes += [cx.node("Gather", [rois, cx.int64s([0], "batch_col")], [batch_float],
                          axis=1),
                  cx.node("Cast", [batch_float], [cx.temp(op, "batch_2d")],
                          to=TensorProto.INT64)]
        nodes.append(cx.reshape(nodes[-1].output[0], [-1], batch))
        nodes.append(cx.node("Gather", [rois, cx.int64s([1, 2, 3, 4], "box_cols")], [boxes],
                             axis=1))
    else:
        batch = cx.int64s([0] * count, "batch")
        boxes = rois
    channels_last = op.args["order"] == "NHWC"
    if channels_last:
        x = cx.transposed(x, [0, 3, 1, 2], cx.temp(op, "nchw"), nodes)
    y = cx.temp(op, "nchw_out") if channels_last else op.outputs[0]
    nodes.append(cx.node(
        "RoiAlign", [x, boxes, batch], [y], name=op.name, mode="avg",
        output_height=op.args["pooled_h"], output_width=op.args["pooled_w"],
        sampling_ratio=max(op.args["sampling_ratio"], 0),
        spatial_scale=float(op.args["spatial_scale"]),
        coordinate_transformation_mode="half_pixel" if op.args["aligned"]
        else "output_half_pixel"))
    if channels_last:
        nodes.append(cx.node("Transpose", [y], [op.outputs[0]], perm=[0, 2, 3, 1]))
    return nodes


@exports("ResizeNearest", "UpsampleNearest")
def resize_nearest(op, cx):
    """Caffe2's nearest resizing reads input int(y / scale) for output y, which is
    ONNX's Resize with asymmetric coordinates rounded down (floor of the size, too)."""
    if len(op.inputs) > 1:
        raise op.unsupported("scales from a blob have no ONNX mapping")
    if cx.opset < 11:
        raise op.unsupported("ONNX's Resize has asymmetric coordinates from opset 11")
    rank = cx.rank(op.inputs[0], op)
    if op.type == "UpsampleNearest":
        scales = [1.0] * (rank - 2) + [float(op.args["scale"])] * 2
    else:
        h, w = (1, 2) if op.args["order"] == "NHWC" else (2, 3)
        scales = [1.0] * rank
        scales[h], scales[w] = float(op.args["height_scale"]), float(op.args["width_scale"])
    return [cx.node("Resize", [op.inputs[0], "", cx.const(np.asarray(scales, np.float32),
                                                           hint="scales")],
                    op.outputs, name=op.name, mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")]


@exports("Col2Im")
def col2im(op, cx):
    """breadth-seq's Col2Im (columns (N, C*kh*kw, out_h, out_w), the image's shape from
    the second input): ONNX's Col2Im (opset 18) on the columns with the positions
    flattened."""
    if cx.opset < 18:
        raise op.unsupported("ONNX has Col2Im from opset 18")
    view = ArgsView(op)
    window = geometry.parse(view)
    if window.channels_last:
        raise op.unsupported("an NHWC Col2Im has no ONNX mapping")
    image = cx.shape(op.inputs[1], op)
    res = geometry.resolve(view, window, image)
    n, rows = cx.shape(op.inputs[0], op)[:2]
    flat = cx.temp(op, "columns")
    return [cx.reshape(op.inputs[0], [n, rows, -1], flat),
            cx.node("Col2Im", [flat, cx.int64s(image[2:], "image_shape"),
                               cx.int64s(res.kernel, "block_shape")], op.outputs,
                    name=op.name, strides=list(res.stride), dilations=list(res.dilation),
                    pads=list(res.heads + res.tails))]
