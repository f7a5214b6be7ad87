"""Caffe2 -> ONNX: the unary math and activation operators (Caffe2's names and args).

Checked against ONNX Runtime by tests/test_onnx_export_more_ops.py.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._export_base import exports

SAME_NAME = ("Reciprocal", "Floor", "Ceil", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
             "Sinh", "Cosh", "Erf", "Sign", "Softplus", "Softsign")
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
