"""Caffe2 -> ONNX: elementwise arithmetic, comparisons, logic, unary math, Cast, MatMul.

Caffe2's legacy broadcasting (``broadcast=1`` with ``axis`` / ``axis_str``:
B's dims line up with A's from ``axis`` on) becomes NumPy broadcasting by
reshaping B to A's rank with ones around it, using the operators' own
``legacy_b_shape`` so the rule is read once for both directions.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._export_base import ArgsView, exports
from caffe2lite.onnx.dtypes import onnx_type_of_caffe2
from caffe2lite.operators import binary_elementwise
from caffe2lite.operators.cast import cast_data_type

# Caffe2 type -> ONNX type, for ops that differ only in name.
UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Exp": "Exp", "Log": "Log",
         "Sqrt": "Sqrt", "Abs": "Abs", "Negative": "Neg", "Not": "Not"}
BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "And": "And", "Or": "Or",
          "Xor": "Xor", "EQ": "Equal", "LT": "Less", "GT": "Greater"}
# Comparisons ONNX had only as negations before opset 12 (and NE has none at all).
NEGATED = {"NE": "Equal", "LE": "Greater", "GE": "Less"}
OR_EQUAL = {"LE": "LessOrEqual", "GE": "GreaterOrEqual"}


@exports(*UNARY)
def unary(op, cx):
    return [cx.node(UNARY[op.type], op.inputs, op.outputs, name=op.name)]


@exports("Sqr")
def sqr(op, cx):
    return [cx.node("Mul", [op.inputs[0], op.inputs[0]], op.outputs, name=op.name)]


def _operands(op, cx, nodes, first=0):
    """A and B, with B reshaped for Caffe2's legacy broadcast when the op asks for it."""
    a, b = op.inputs[first], op.inputs[first + 1]
    if not op.args.get("broadcast"):
        return a, b
    a_shape, b_shape = cx.shape(a, op), cx.shape(b, op)
    view = binary_elementwise.legacy_b_shape(ArgsView(op), a_shape, b_shape, first)
    if tuple(view[len(view) - len(b_shape):]) == tuple(b_shape):
        return a, b  # already NumPy-aligned (B matches A's trailing dims)
    b_view = cx.temp(op, "broadcast")
    nodes.append(cx.reshape(b, view, b_view))
    return a, b_view


@exports(*BINARY, *NEGATED)
def binary(op, cx):
    nodes = []
    a, b = _operands(op, cx, nodes)
    if op.type in ("EQ", "NE") and cx.opset < 11 and cx.spec(a, op).dtype.kind == "f":
        # Equal took no floats before opset 11: a != b is a < b or a > b
        less, greater = cx.temp(op, "less"), cx.temp(op, "greater")
        differ = op.outputs[0] if op.type == "NE" else cx.temp(op, "differ")
        nodes += [cx.node("Less", [a, b], [less]), cx.node("Greater", [a, b], [greater]),
                  cx.node("Or", [less, greater], [differ], name=op.name)]
        if op.type == "EQ":
            nodes.append(cx.node("Not", [differ], op.outputs))
        return nodes
    if op.type in BINARY:
        nodes.append(cx.node(BINARY[op.type], [a, b], op.outputs, name=op.name))
    elif op.type in OR_EQUAL and cx.opset >= 12:
        nodes.append(cx.node(OR_EQUAL[op.type], [a, b], op.outputs, name=op.name))
    else:
        opposite = cx.temp(op, "opposite")
        nodes += [cx.node(NEGATED[op.type], [a, b], [opposite], name=op.name),
                  cx.node("Not", [opposite], op.outputs)]
    return nodes


@exports("Pow")
def pow_(op, cx):
    nodes = []
    if len(op.inputs) == 1:
        dtype = cx.spec(op.inputs[0], op).dtype
        exponent = cx.const(np.asarray(op.args["exponent"], dtype=dtype), hint="exponent")
        return [cx.node("Pow", [op.inputs[0], exponent], op.outputs, name=op.name)]
    a, b = _operands(op, cx, nodes)
    nodes.append(cx.node("Pow", [a, b], op.outputs, name=op.name))
    return nodes


@exports("Sum")
def sum_(op, cx):
    if len(op.inputs) == 1:
        return [cx.node("Identity", op.inputs, op.outputs, name=op.name)]
    return [cx.node("Sum", op.inputs, op.outputs, name=op.name)]


@exports("Clip")
def clip(op, cx):
    dtype = cx.spec(op.inputs[0], op).dtype
    low, high = op.args["min"], op.args["max"]
    if cx.opset < 11:
        return [cx.node("Clip", op.inputs, op.outputs, name=op.name,
                        min=None if low is None else float(low),
                        max=None if high is None else float(high))]
    bounds = [cx.const(np.asarray(v, dtype), hint=k) if v is not None else ""
              for k, v in (("min", low), ("max", high))]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return [cx.node("Clip", [op.inputs[0]] + bounds, op.outputs, name=op.name)]


@exports("Scale")
def scale(op, cx):
    dtype = cx.spec(op.inputs[0], op).dtype
    factor = cx.const(np.asarray(op.args["scale"], dtype), hint="scale")
    return [cx.node("Mul", [op.inputs[0], factor], op.outputs, name=op.name)]


@exports("Cast")
def cast(op, cx):
    def fail(msg):
        raise op.unsupported(msg)

    to = cast_data_type(op.args["to"], "to", fail)
    return [cx.node("Cast", op.inputs, op.outputs, name=op.name, to=onnx_type_of_caffe2(to))]


@exports("BatchMatMul")
def batch_matmul(op, cx):
    nodes, operands = [], []
    for i, flag in ((0, "trans_a"), (1, "trans_b")):
        x = op.inputs[i]
        rank = cx.rank(x, op)
        if op.args[flag] and rank >= 2:
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            x = cx.transposed(x, perm, cx.temp(op, flag), nodes)
        operands.append(x)
    nodes.append(cx.node("MatMul", operands, op.outputs, name=op.name))
    return nodes


@exports("BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot")
def bitwise(op, cx):
    if cx.opset < 18:
        raise op.unsupported("ONNX has the bitwise ops from opset 18")
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name)]


@exports("Mod")
def mod(op, cx):
    """breadth-math's Mod (a scalar divisor argument): ONNX's Mod against a constant;
    the remainder takes the dividend's sign (fmod=1, C's %) unless sign_follow_divisor."""
    dtype = cx.spec(op.inputs[0], op).dtype
    divisor = cx.const(np.asarray(op.args["divisor"], dtype), hint="divisor")
    return [cx.node("Mod", [op.inputs[0], divisor], op.outputs, name=op.name,
                    fmod=0 if op.args["sign_follow_divisor"] else 1)]


@exports("MatMul")
def matmul(op, cx):
    """Caffe2's MatMul: A and B as 2-D matrices (flattened at axis_a / axis_b), each
    optionally transposed."""
    if len(op.inputs) > 2:
        raise op.unsupported("MatMul's third input has no ONNX mapping")
    nodes, operands = [], []
    for x, axis, flag in ((op.inputs[0], op.args["axis_a"], "trans_a"),
                          (op.inputs[1], op.args["axis_b"], "trans_b")):
        rank = cx.rank(x, op)
        if rank != 2 or axis % rank != 1:
            flat = cx.temp(op, f"{flag[-1]}_2d")
            nodes.append(cx.node("Flatten", [x], [flat], axis=axis % rank))
            x = flat
        if op.args[flag]:
            x = cx.transposed(x, [1, 0], cx.temp(op, flag), nodes)
        operands.append(x)
    nodes.append(cx.node("MatMul", operands, op.outputs, name=op.name))
    return nodes


@exports("HalfToFloat", "FloatToHalf")
def half_float(op, cx):
    to = TensorProto.FLOAT if op.type == "HalfToFloat" else TensorProto.FLOAT16
    return [cx.node("Cast", op.inputs, op.outputs, name=op.name, to=to)]


@exports("SquaredL2Distance")
def squared_l2_distance(op, cx):
    """0.5 * sum((X - Y)**2) over every axis but the first."""
    rank = cx.rank(op.inputs[0], op)
    dtype = cx.spec(op.inputs[0], op).dtype
    diff, sq = cx.temp(op, "diff"), cx.temp(op, "sq")
    nodes = [cx.node("Sub", op.inputs[:2], [diff]), cx.node("Mul", [diff, diff], [sq])]
    if rank < 2:
        half_sum = sq
    else:
        half_sum = cx.temp(op, "sum")
        nodes.append(cx.reduce("ReduceSum", sq, list(range(1, rank)), half_sum, keepdims=0))
    nodes.append(cx.node("Mul", [half_sum, cx.const(np.asarray(0.5, dtype), hint="half")],
                         op.outputs, name=op.name))
    return nodes
