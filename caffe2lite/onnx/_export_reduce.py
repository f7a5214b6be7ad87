"""Caffe2 -> ONNX: the reductions and normalisations (Caffe2's names and args).

Checked against ONNX Runtime by tests/test_onnx_export_more_ops.py.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._export_base import exports

REDUCE = {"ReduceSum": "ReduceSum", "ReduceMean": "ReduceMean", "ReduceMax": "ReduceMax",
          "ReduceMin": "ReduceMin", "ReduceL1": "ReduceL1", "ReduceL2": "ReduceL2"}
# ReduceFront* / ReduceBack*: the first / last num_reduce_dim axes, dropped
FRONT_BACK = {f"Reduce{side}{kind}": (side, f"Reduce{kind}")
              for side in ("Front", "Back") for kind in ("Sum", "Mean", "Max")}


@exports(*REDUCE)
def reduce(op, cx):
    rank = cx.rank(op.inputs[0], op)
    axes = list(op.args.get("axes") or range(rank))
    return [cx.reduce(REDUCE[op.type], op.inputs[0], axes, op.outputs[0],
                      keepdims=int(bool(op.args.get("keepdims", 1))))]


@exports(*FRONT_BACK)
def reduce_front_back(op, cx):
    if len(op.inputs) > 1:
        raise op.unsupported("per-row lengths (a second input) have no ONNX mapping")
    side, onnx_type = FRONT_BACK[op.type]
    rank, n = cx.rank(op.inputs[0], op), op.args.get("num_reduce_dim", 1)
    axes = list(range(n)) if side == "Front" else list(range(rank - n, rank))
    return [cx.reduce(onnx_type, op.inputs[0], axes, op.outputs[0], keepdims=0)]


@exports("SumElements", "SumSqrElements")
def sum_elements(op, cx):
    rank = cx.rank(op.inputs[0], op)
    kind = ("ReduceSumSquare" if op.type == "SumSqrElements" else
            "ReduceMean" if op.args.get("average") else "ReduceSum")
    return [cx.reduce(kind, op.inputs[0], list(range(rank)), op.outputs[0], keepdims=0)]


@exports("ArgMax", "ArgMin")
def arg_reduce(op, cx):
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name,
                    axis=op.args.get("axis", -1), keepdims=int(bool(op.args.get("keepdims", 1))))]


@exports("Max", "Min", "Mean")
def variadic(op, cx):
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name)]


@exports("Normalize", "NormalizeL1")
def normalize(op, cx):
    return [cx.node("LpNormalization", op.inputs, op.outputs, name=op.name,
                    axis=op.args.get("axis", -1), p=2 if op.type == "Normalize" else 1)]


@exports("InstanceNorm")
def instance_norm(op, cx):
    if op.args.get("order", "NCHW") != "NCHW" or len(op.outputs) > 1:
        raise op.unsupported("only NCHW InstanceNorm with one output has an ONNX mapping")
    return [cx.node("InstanceNormalization", op.inputs, op.outputs, name=op.name,
                    epsilon=float(op.args.get("epsilon", 1e-5)))]


@exports("LayerNorm")
def layer_norm(op, cx):
    """LayerNormalization (opset 17); the mean / std outputs only when nothing reads them."""
    if cx.opset < 17:
        raise op.unsupported("ONNX has LayerNormalization from opset 17")
    if any(cx.is_needed(name) for name in op.outputs[1:]):
        raise op.unsupported("Caffe2's mean / std outputs have no ONNX mapping (ONNX gives "
                             "the inverse std)")
    shape = cx.shape(op.inputs[0], op)
    axis = op.args.get("axis", 1) % len(shape)
    inputs = list(op.inputs)
    if len(inputs) == 1:  # no elementwise affine: scale 1, bias 0
        dtype = cx.spec(op.inputs[0], op).dtype
        inputs += [cx.const(np.ones(shape[axis:], dtype), hint="ln_scale"),
                   cx.const(np.zeros(shape[axis:], dtype), hint="ln_bias")]
    return [cx.node("LayerNormalization", inputs, op.outputs[:1], name=op.name, axis=axis,
                    epsilon=float(op.args.get("epsilon", 1e-5)))]
