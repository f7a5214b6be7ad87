"""ONNX -> Caffe2: convolution, pooling, normalisation, Dropout.

``auto_pad`` and ``ceil_mode`` become explicit Caffe2 pads computed from the
input's static shape (ONNX's shape inference), so the output sizes are ONNX's:
SAME_UPPER / SAME_LOWER put the odd pad at the tail / head, ceil mode grows
the tail pad until the floor rule gives the ceiling size (MaxPool pads with
-inf and AveragePool without count_include_pad does not count pads, so the
grown pad changes no value).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx._import_widen import TAKES, widened
from caffe2lite.onnx.dtypes import caffe2_type, numpy_type


def _spatial_pads(node, cx, kernel, strides, dilations, *, ceil=False):
    """Explicit [heads..., tails...] pads for the node's auto_pad / pads / ceil_mode."""
    n = len(kernel)
    auto = node.attrs.get("auto_pad", "NOTSET")
    pads = list(node.attrs.get("pads", [0] * (2 * n)))
    if auto in ("", "NOTSET") and not ceil:
        return pads
    spatial = cx.static_shape(node, node.inputs[0])[2:]
    if auto == "VALID":
        pads = [0] * (2 * n)
    heads, tails = pads[:n], pads[n:]
    for i, size in enumerate(spatial):
        spread = dilations[i] * (kernel[i] - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + spread - size, 0)
            small, large = total // 2, total - total // 2
            heads[i], tails[i] = (small, large) if auto == "SAME_UPPER" else (large, small)
        elif ceil:
            span = size + heads[i] + tails[i] - spread
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= size + heads[i]:  # a window starting in the pad
                out -= 1
            tails[i] = max(tails[i], (out - 1) * strides[i] + spread - size - heads[i])
    return heads + tails


def _kernel(node, cx):
    kernel = node.attrs.get("kernel_shape")
    if kernel is None:  # Conv may leave it to the weight's shape
        kernel = list(cx.static_shape(node, node.inputs[1])[2:])
    return list(kernel)


@imports("Conv")
def conv(node, cx):
    kernel = _kernel(node, cx)
    n = len(kernel)
    strides = node.attrs.get("strides", [1] * n)
    dilations = node.attrs.get("dilations", [1] * n)
    pads = _spatial_pads(node, cx, kernel, strides, dilations)
    inputs = [x for x in node.inputs if x]
    return [op("Conv", inputs, node.outputs, node, kernels=kernel, strides=strides,
               dilations=dilations, pads=pads, group=node.attrs.get("group", 1))]


@imports("ConvTranspose")
def conv_transpose(node, cx):
    kernel = _kernel(node, cx)
    n = len(kernel)
    strides = node.attrs.get("strides", [1] * n)
    if any(d != 1 for d in node.attrs.get("dilations", [1] * n)):
        raise node.unsupported("dilated ConvTranspose has no Caffe2 mapping")
    adjs = list(node.attrs.get("output_padding", [0] * n))
    pads = list(node.attrs.get("pads", [0] * (2 * n)))
    auto = node.attrs.get("auto_pad", "NOTSET")
    if "output_shape" in node.attrs or auto not in ("", "NOTSET"):
        spatial = cx.static_shape(node, node.inputs[0])[2:]
        wanted = node.attrs.get("output_shape") or [s * st for s, st in zip(spatial, strides)]
        wanted = list(wanted)[-n:]
        for i in range(n):
            total = strides[i] * (spatial[i] - 1) + adjs[i] + kernel[i] - wanted[i]
            if total < 0:
                adjs[i] -= total
                total = 0
            half = total // 2
            pads[i], pads[n + i] = ((total - half, half) if auto == "SAME_LOWER"
                                    else (half, total - half))
    inputs = [x for x in node.inputs if x]
    return [op("ConvTranspose", inputs, node.outputs, node, kernels=kernel, strides=strides,
               pads=pads, adjs=adjs, group=node.attrs.get("group", 1))]


@imports("MaxPool", "AveragePool", "LpPool")
def pool(node, cx):
    if node.op_type in TAKES:
        return widened(node, cx, _pool, TAKES[node.op_type])
    return _pool(node, cx)


def _pool(node, cx):
    if len([o for o in node.outputs if o]) > 1:
        raise node.unsupported("MaxPool's Indices output has no Caffe2 mapping")
    if node.attrs.get("storage_order", 0):
        raise node.unsupported("storage_order=1 has no Caffe2 mapping")
    kernel = list(node.attrs["kernel_shape"])
    n = len(kernel)
    strides = node.attrs.get("strides", [1] * n)
    dilations = node.attrs.get("dilations", [1] * n)
    ceil = bool(node.attrs.get("ceil_mode", 0))
    count_pad = node.attrs.get("count_include_pad", 0)
    if ceil and count_pad:
        raise node.unsupported("ceil_mode with count_include_pad has no Caffe2 mapping")
    pads = _spatial_pads(node, cx, kernel, strides, dilations, ceil=ceil)
    args = dict(kernels=kernel, strides=strides, pads=pads)
    if any(d != 1 for d in dilations):
        args["dilations"] = dilations
    if node.op_type == "AveragePool":
        args["count_include_pad"] = count_pad
    if node.op_type == "LpPool":
        args["p"] = float(node.attrs.get("p", 2))
    return [op(node.op_type, node.inputs, node.outputs[:1], node, **args)]


@imports("GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool")
def global_pool(node, cx):
    kind = node.op_type[len("Global"):]
    args = {"p": float(node.attrs.get("p", 2))} if kind == "LpPool" else {}
    return [op(kind, node.inputs, node.outputs, node, global_pooling=1, **args)]


@imports("BatchNormalization")
def batch_norm(node, cx):
    if node.attrs.get("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
        raise node.unsupported("training-mode BatchNormalization has no Caffe2 mapping "
                               "(its running statistics are updated differently)")
    return [op("SpatialBN", node.inputs, node.outputs[:1], node, is_test=1,
               epsilon=float(node.attrs.get("epsilon", 1e-5)))]


@imports("InstanceNormalization")
def instance_norm(node, cx):
    """breadth-math's InstanceNorm."""
    return [op("InstanceNorm", node.inputs, node.outputs, node,
               epsilon=float(node.attrs.get("epsilon", 1e-5)))]


@imports("LRN")
def lrn(node, cx):
    return [op("LRN", node.inputs, node.outputs[:1], node, size=node.attrs["size"],
               alpha=float(node.attrs.get("alpha", 1e-4)),
               beta=float(node.attrs.get("beta", 0.75)), bias=float(node.attrs.get("bias", 1.0)))]


@imports("Dropout")
def dropout(node, cx):
    """Inference, or training with a ratio of 0: Y = X (and a mask of all True); other
    training has no Caffe2 match (different draws), so it is refused."""
    training = node.attrs.get("is_test", 1) == 0 if cx.opset < 7 else False
    if node.input(2):
        mode = cx.constant(node, 2, "training_mode")
        training = bool(mode)
    if training:
        ratio = cx.constant(node, 1, "ratio") if node.input(1) else node.attrs.get("ratio")
        if ratio is None or float(np.ravel(ratio)[0]) != 0:
            raise node.unsupported("training-mode Dropout has no Caffe2 mapping (its draws "
                                   "differ)")
    ops = [op("Copy", node.inputs[:1], node.outputs[:1], node)]
    if len(node.outputs) > 1 and node.outputs[1]:
        ops.append(op("ConstantFill", node.inputs[:1], node.outputs[1:2], value=1,
                      dtype=caffe2_type(np.bool_)))
    return ops


@imports("LayerNormalization")
def layer_norm(node, cx):
    """breadth-math's LayerNorm with elementwise_affine (Caffe2's).  Caffe2's other
    outputs are the mean and the standard deviation sqrt(var + epsilon); ONNX's the mean
    and its inverse, both shaped X.shape[:axis] + ones: reshaped and inverted here."""
    rank = cx.rank(node, node.inputs[0])
    axis = node.attrs.get("axis", -1)
    axis = axis + rank if axis < 0 else axis
    inputs = [x for x in node.inputs if x]
    if len(inputs) == 2:  # no bias: LayerNorm takes both or neither
        raise node.unsupported("LayerNormalization without B has no Caffe2 mapping")
    outputs = list(node.outputs) + [""] * (3 - len(node.outputs))
    mean, std = cx.temp(node, "mean"), cx.temp(node, "std")
    ops = [op("LayerNorm", inputs, [outputs[0], mean, std], node, axis=axis,
              epsilon=float(node.attrs.get("epsilon", 1e-5)), elementwise_affine=1)]
    if outputs[1] or outputs[2]:
        moments = list(cx.static_shape(node, node.inputs[0])[:axis]) + [1] * (rank - axis)
        if outputs[1]:
            ops.append(op("Reshape", [mean], [outputs[1], cx.temp(node, "old1")],
                          shape=moments))
        if outputs[2]:
            shaped = cx.temp(node, "std_shaped")
            ops += [op("Reshape", [std], [shaped, cx.temp(node, "old2")], shape=moments),
                    op("Pow", [shaped], [outputs[2]], exponent=-1.0)]
    return ops


@imports("LpNormalization")
def lp_normalization(node, cx):
    """breadth-math's Normalize (p=2) and NormalizeL1 (p=1)."""
    p = node.attrs.get("p", 2)
    if p not in (1, 2):
        raise node.unsupported(f"p={p}: Caffe2 normalised by the L1 or L2 norm only")
    axis = node.attrs.get("axis", -1)
    axis = axis + cx.rank(node, node.inputs[0]) if axis < 0 else axis
    return [op("Normalize" if p == 2 else "NormalizeL1", node.inputs, node.outputs, node,
               axis=axis)]


@imports("PRelu")
def prelu(node, cx):
    """breadth-math's PRelu: one slope, or one per channel (axis 1)."""
    x_shape, slope_shape = cx.shape(node.inputs[0]), cx.shape(node.inputs[1])
    if slope_shape is None or x_shape is None:
        raise node.unsupported("PRelu needs the slope's and X's shapes")
    size = int(np.prod(slope_shape)) if slope_shape else 1
    per_channel = (len(x_shape) >= 2 and size == x_shape[1]
                   and all(d == 1 for d in slope_shape[1:]) and len(slope_shape) <= len(x_shape) - 1)
    if size == 1 or per_channel:
        return [op("PRelu", node.inputs, node.outputs, node)]
    # any other slope broadcasts against X, as ONNX's: Where(X < 0, X * slope, X)
    x, slope = node.inputs
    t = cx.temps(node)
    zero = cx.temp_const(node, "zero", np.zeros((), numpy_type(cx.elem_type(node, x))))
    cx.shapes[t("negative")] = (x_shape, TensorProto.BOOL)
    cx.shapes[t("scaled")] = (cx.shape(node.outputs[0]), cx.elem_type(node, x))
    where = replace(node, op_type="Where", inputs=[t("negative"), t("scaled"), x])
    expand, inputs = broadcast_inputs(where, cx, where.inputs, result=node.outputs[0])
    return [op("LT", [x, zero], [t("negative")]), op("Mul", [x, slope], [t("scaled")])] + \
        expand + [op("Where", inputs, node.outputs, node)]


@imports("Gelu")
def gelu(node, cx):
    """breadth-math's Gelu (fast_gelu: the tanh approximation)."""
    fast = node.attrs.get("approximate", "none") == "tanh"
    return [op("Gelu", node.inputs, node.outputs, node, fast_gelu=int(fast))]


@imports("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def nll_losses(node, cx):
    args = {"reduction": node.attrs.get("reduction", "mean")}
    if "ignore_index" in node.attrs:
        args["ignore_index"] = node.attrs["ignore_index"]
    outputs = [o for o in node.outputs if o]
    return [op(node.op_type, [x for x in node.inputs if x], outputs, node, **args)]


@imports("Col2Im")
def col2im(node, cx):
    """breadth-seq's Col2Im (Caffe2's: 2-D kernels, columns (N, C*kh*kw, out_h, out_w),
    the image's shape taken from a second blob): ONNX's columns (N, C*kh*kw, L) are
    reshaped to out_h x out_w, and a zero image of the target shape gives the shape."""
    x, y = node.inputs[0], node.outputs[0]
    image = [int(d) for d in np.ravel(cx.constant(node, 1, "image_shape"))]
    kernel = [int(d) for d in np.ravel(cx.constant(node, 2, "block_shape"))]
    if len(kernel) != 2:
        raise node.unsupported(f"a {len(kernel)}-D block: Caffe2's Col2Im takes 2-D kernels")
    strides = node.attrs.get("strides", [1, 1])
    dilations = node.attrs.get("dilations", [1, 1])
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    n, rows, _ = cx.static_shape(node, x)
    out = [(image[i] + pads[i] + pads[i + 2] - dilations[i] * (kernel[i] - 1) - 1)
           // strides[i] + 1 for i in range(2)]
    t = cx.temps(node)
    channels = rows // (kernel[0] * kernel[1])
    return [op("Reshape", [x], [t("columns"), t("old")], shape=[n, rows] + out),
            op("ConstantFill", [], [t("like")], shape=[n, channels] + image, value=0.0),
            op("Col2Im", [t("columns"), t("like")], [y], node, kernels=kernel,
               strides=strides, dilations=dilations, pads=pads)]
