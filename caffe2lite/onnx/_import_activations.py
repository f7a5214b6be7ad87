"""ONNX -> Caffe2: activations and normalisations Caffe2 lacked, as compositions of its ops.

Swish(alpha) = X * Sigmoid(alpha X) (Caffe2's Swish where alpha is 1); HardSwish =
X * HardSigmoid(X; 1/6, 1/2); Mish = X * Tanh(Softplus(X)); Celu(alpha) = alpha *
Elu(X / alpha); Shrink = X + bias below -lambd, X - bias above lambd, 0 between;
MeanVarianceNormalization = (X - mean) / (sqrt(E[X^2] - mean^2) + 1e-9), ONNX's own
function body; GroupNormalization is breadth-math's GroupNorm (per-group scales of
opset 18 spread over the channels); EyeLike of a static shape is a constant.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx.dtypes import numpy_type


@imports("Swish")
def swish(node, cx):
    alpha = float(node.attrs.get("alpha", 1.0))
    if alpha == 1.0:
        return [op("Swish", node.inputs, node.outputs, node)]
    x, t = node.inputs[0], cx.temps(node)
    return [op("Scale", [x], [t("scaled")], scale=alpha),
            op("Sigmoid", [t("scaled")], [t("gate")]),
            op("Mul", [x, t("gate")], node.outputs, node)]


@imports("HardSwish", "Mish")
def gated(node, cx):
    """X times a gate of X: HardSigmoid(1/6, 1/2) for HardSwish, Tanh(Softplus) for Mish."""
    x, t = node.inputs[0], cx.temps(node)
    if node.op_type == "HardSwish":
        ops = [op("HardSigmoid", [x], [t("gate")], alpha=1 / 6, beta=0.5)]
    else:
        ops = [op("Softplus", [x], [t("softplus")]), op("Tanh", [t("softplus")], [t("gate")])]
    return ops + [op("Mul", [x, t("gate")], node.outputs, node)]


@imports("Celu")
def celu(node, cx):
    alpha = float(node.attrs.get("alpha", 1.0))
    x, t = node.inputs[0], cx.temps(node)
    if alpha == 1.0:
        return [op("Elu", [x], node.outputs, node, alpha=1.0)]
    return [op("Scale", [x], [t("shrunk")], scale=1 / alpha),
            op("Elu", [t("shrunk")], [t("elu")], node, alpha=1.0),
            op("Scale", [t("elu")], node.outputs, scale=alpha)]


@imports("Shrink")
def shrink(node, cx):
    x, y = node.inputs[0], node.outputs[0]
    dtype = numpy_type(cx.elem_type(node, x))
    if dtype.kind != "f":
        raise node.unsupported(f"Shrink of {dtype} (floats only here)")
    lambd, bias = float(node.attrs.get("lambd", 0.5)), float(node.attrs.get("bias", 0.0))
    t = cx.temps(node)

    def const(what, value):
        return cx.temp_const(node, what, np.asarray(value, dtype))
    shape = cx.shape(x)
    for name, elem in (("below", TensorProto.BOOL), ("above", TensorProto.BOOL),
                       ("up", None), ("down", None), ("middle", None)):
        cx.shapes[t(name)] = (shape, elem or cx.elem_type(node, x))
    ops = [op("LT", [x, const("low", -lambd)], [t("below")]),
           op("GT", [x, const("high", lambd)], [t("above")]),
           op("Add", [x, const("bias", bias)], [t("up")]),
           op("Sub", [x, const("bias_down", bias)], [t("down")])]
    inner = replace(node, op_type="Where", inputs=[t("above"), t("down"), const("zero", 0)],
                    outputs=[t("middle")])
    expand, inputs = broadcast_inputs(inner, cx, inner.inputs, result=x)
    ops += expand + [op("Where", inputs, [t("middle")])]
    return ops + [op("Where", [t("below"), t("up"), t("middle")], [y], node)]


@imports("MeanVarianceNormalization")
def mean_variance_normalization(node, cx):
    x, y, t = node.inputs[0], node.outputs[0], cx.temps(node)
    axes = list(node.attrs.get("axes", [0, 2, 3]))
    dtype = numpy_type(cx.elem_type(node, x))
    return [op("ReduceMean", [x], [t("mean")], axes=axes, keepdims=1),
            op("Sqr", [x], [t("square")]),
            op("ReduceMean", [t("square")], [t("mean_square")], axes=axes, keepdims=1),
            op("Sqr", [t("mean")], [t("square_mean")]),
            op("Sub", [t("mean_square"), t("square_mean")], [t("variance")]),
            op("Sqrt", [t("variance")], [t("std")]),
            op("Add", [t("std"), cx.temp_const(node, "epsilon", np.asarray(1e-9, dtype))],
               [t("std_eps")]),
            op("Sub", [x, t("mean")], [t("centred")]),
            op("Div", [t("centred"), t("std_eps")], [y], node)]


@imports("GroupNormalization")
def group_normalization(node, cx):
    """breadth-math's GroupNorm (per-channel gamma / beta, NCHW); before opset 21 ONNX's
    scale and bias are per group, so each is gathered out to the channels first."""
    x, scale, bias = node.inputs
    groups = node.attrs["num_groups"]
    args = dict(group=groups, epsilon=float(node.attrs.get("epsilon", 1e-5)))
    if cx.opset >= 21:
        return [op("GroupNorm", [x, scale, bias], node.outputs[:1], node, **args)]
    channels = cx.static_shape(node, x)[1]
    spread = cx.temp_const(node, "group_of_channel",
                           np.repeat(np.arange(groups), channels // groups))
    t = cx.temps(node)
    return [op("Gather", [scale, spread], [t("gamma")]),
            op("Gather", [bias, spread], [t("beta")]),
            op("GroupNorm", [x, t("gamma"), t("beta")], node.outputs[:1], node, **args)]


@imports("EyeLike")
def eye_like(node, cx):
    rows, cols = cx.static_shape(node, node.inputs[0])
    elem = node.attrs.get("dtype") or cx.elem_type(node, node.inputs[0])
    eye = np.eye(rows, cols, node.attrs.get("k", 0), dtype=numpy_type(elem))
    return [op("Copy", [cx.temp_const(node, "eye", eye)], node.outputs, node)]
