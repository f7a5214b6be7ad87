"""Caffe2 -> ONNX: the unary math and activation operators (Caffe2's names and args).

Checked against ONNX Runtime by tests/test_onnx_export_more_ops.py.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._export_base import exports

SAME_NAME = ("Reciprocal", "Floor", "Ceil", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
             "Sinh", "Cosh", "Erf", "Sign", "Softplus", "Softsign", "Asinh", "Acosh", "Atanh",
             "Round")
# Caffe2 type -> {caffe2 argument: onnx attribute}
WITH_ARGS = {"Elu": {"alpha": "alpha"}, "LeakyRelu": {"alpha": "alpha"},
             "Selu": {"alpha": "alpha", "scale": "gamma"},
             "ThresholdedRelu": {"alpha": "alpha"},
             "HardSigmoid": {"alpha": "alpha", "beta": "beta"}}


@exports(*SAME_NAME)
def same_name(op, cx):
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name)]


@exports("IsNaN")
def is_nan(op, cx):
    """ONNX's IsNaN gives bool; Caffe2's a uint8 mask."""
    mask = cx.temp(op, "mask")
    return [cx.node("IsNaN", op.inputs, [mask], name=op.name),
            cx.node("Cast", [mask], op.outputs, to=TensorProto.UINT8)]


@exports(*WITH_ARGS)
def with_args(op, cx):
    attrs = {onnx: float(op.args[c2]) for c2, onnx in WITH_ARGS[op.type].items()}
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name, **attrs)]


@exports("Swish")
def swish(op, cx):
    """x * sigmoid(x) (ONNX's own Swish is recent)."""
    s = cx.temp(op, "sigmoid")
    return [cx.node("Sigmoid", op.inputs, [s]),
            cx.node("Mul", [op.inputs[0], s], op.outputs, name=op.name)]


@exports("Gelu")
def gelu(op, cx):
    if cx.opset < 20:
        raise op.unsupported("ONNX has Gelu from opset 20")
    return [cx.node("Gelu", op.inputs, op.outputs, name=op.name,
                    approximate="tanh" if op.args.get("fast_gelu") else "none")]


@exports("PRelu")
def prelu(op, cx):
    """One slope, or one per channel: ONNX broadcasts the slope from the right, so a
    per-channel slope of an NCHW X becomes (C, 1, ..., 1)."""
    rank = cx.rank(op.inputs[0], op)
    slope_shape = cx.shape(op.inputs[1], op)
    nodes, slope = [], op.inputs[1]
    if int(np.prod(slope_shape)) != 1 and op.args.get("order", "NCHW") == "NCHW" and rank > 2:
        slope = cx.temp(op, "slope")
        nodes.append(cx.reshape(op.inputs[1], [-1] + [1] * (rank - 2), slope))
    nodes.append(cx.node("PRelu", [op.inputs[0], slope], op.outputs, name=op.name))
    return nodes


@exports("ReluN")
def relu_n(op, cx):
    """min(max(X, 0), n)."""
    dtype = cx.spec(op.inputs[0], op).dtype
    low = cx.temp(op, "relu")
    return [cx.node("Max", [op.inputs[0], cx.const(np.zeros((), dtype), hint="zero")], [low]),
            cx.node("Min", [low, cx.const(np.asarray(op.args["n"], dtype), hint="n")],
                    op.outputs, name=op.name)]


@exports("Logit")
def logit(op, cx):
    """log(p / (1 - p)) of X clamped to [eps, 1 - eps]."""
    dtype = cx.spec(op.inputs[0], op).dtype
    eps = float(op.args["eps"])
    t = {k: cx.temp(op, k) for k in ("low", "p", "rest", "odds")}
    one = cx.const(np.ones((), dtype), hint="one")
    return [cx.node("Max", [op.inputs[0], cx.const(np.asarray(eps, dtype), hint="eps")],
                    [t["low"]]),
            cx.node("Min", [t["low"], cx.const(np.asarray(1 - eps, dtype), hint="one_minus_eps")],
                    [t["p"]]),
            cx.node("Sub", [one, t["p"]], [t["rest"]]),
            cx.node("Div", [t["p"], t["rest"]], [t["odds"]]),
            cx.node("Log", [t["odds"]], op.outputs, name=op.name)]


@exports("Cube", "Rsqrt")
def cube_rsqrt(op, cx):
    x, part = op.inputs[0], cx.temp(op, "part")
    if op.type == "Cube":
        return [cx.node("Mul", [x, x], [part]),
                cx.node("Mul", [part, x], op.outputs, name=op.name)]
    return [cx.node("Sqrt", [x], [part]),
            cx.node("Reciprocal", [part], op.outputs, name=op.name)]


@exports("ReplaceNaN")
def replace_nan(op, cx):
    dtype = cx.spec(op.inputs[0], op).dtype
    nan = cx.temp(op, "is_nan")
    return [cx.node("IsNaN", op.inputs, [nan]),
            cx.node("Where", [nan, cx.const(np.asarray(op.args["value"], dtype), hint="value"),
                              op.inputs[0]], op.outputs, name=op.name)]
