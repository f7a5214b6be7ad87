"""Caffe2 -> ONNX: breadth-seq's and detection's shape ops (Caffe2's names and args).

breadth-seq's operators are mapped as data until they are merged
(tests/test_onnx_export_more_ops.py skips them, naming each, until then).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._export_base import exports

INT64 = 7


@exports("ExpandDims", "Squeeze")
def expand_dims_squeeze(op, cx):
    dims = list(op.args.get("dims") or [])
    if op.type == "ExpandDims":
        return [cx.unsqueeze(op.inputs[0], dims, op.outputs[0])]
    return [cx.squeeze(op.inputs[0], dims, op.outputs[0])]


@exports("Where")
def where(op, cx):
    return [cx.node("Where", op.inputs, op.outputs, name=op.name)]


@exports("Expand", "NumpyTile")
def expand_or_tile(op, cx):
    as_int64 = cx.temp(op, "int64")
    return [cx.node("Cast", [op.inputs[1]], [as_int64], to=INT64),
            cx.node("Expand" if op.type == "Expand" else "Tile", [op.inputs[0], as_int64],
                    op.outputs, name=op.name)]


@exports("Tile")
def tile(op, cx):
    """Caffe2's Tile: ``tiles`` copies along ``axis`` (arguments only here)."""
    if len(op.inputs) > 1:
        raise op.unsupported("tiles / axis from blobs have no ONNX mapping")
    rank = cx.rank(op.inputs[0], op)
    repeats = [1] * rank
    repeats[op.args.get("axis", 0) % rank] = op.args.get("tiles", 1)
    return [cx.node("Tile", [op.inputs[0], cx.int64s(repeats, "repeats")], op.outputs,
                    name=op.name)]


@exports("Range")
def range_(op, cx):
    """Caffe2's Range(stop), (start, stop) or (start, stop, step)."""
    dtype = cx.spec(op.inputs[0], op).dtype
    inputs = list(op.inputs)
    if len(inputs) == 1:
        inputs = [cx.const(np.zeros((), dtype), hint="start")] + inputs
    if len(inputs) == 2:
        inputs.append(cx.const(np.ones((), dtype), hint="step"))
    return [cx.node("Range", inputs, op.outputs, name=op.name)]


@exports("TopK")
def top_k(op, cx):
    if len(op.outputs) > 2 and cx.is_needed(op.outputs[2]):
        raise op.unsupported("TopK's flattened indices have no ONNX mapping")
    k = cx.int64s([op.args["k"]], "k")
    return [cx.node("TopK", [op.inputs[0], k], op.outputs[:2], name=op.name, axis=-1)]


@exports("Slice")
def slice_(op, cx):
    """detection's Slice: per-dim starts / ends, a negative one counted from dim + 1."""
    if len(op.inputs) > 1:
        raise op.unsupported("starts / ends from blobs have no ONNX mapping")
    shape = cx.shape(op.inputs[0], op)
    starts, ends = list(op.args["starts"]), list(op.args["ends"])
    resolved = [(s + d + 1 if s < 0 else s, e + d + 1 if e < 0 else e)
                for s, e, d in zip(starts, ends, shape)]
    return [cx.node("Slice", [op.inputs[0], cx.int64s([s for s, _ in resolved], "starts"),
                              cx.int64s([e for _, e in resolved], "ends"),
                              cx.int64s(range(len(resolved)), "axes")], op.outputs,
                    name=op.name)]
