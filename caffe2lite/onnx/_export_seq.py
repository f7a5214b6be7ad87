"""Caffe2 -> ONNX: breadth-seq's and detection's shape, selection and padding ops
(Caffe2's names and args).

Checked against ONNX Runtime by tests/test_onnx_export_more_ops.py.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._export_base import ArgsView, exports
from caffe2lite.operators import pad_image as pad_image_op

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
    return [cx.node("TopK", [op.inputs[0], k], op.outputs[:2], name=op.name,
                    axis=op.args["axis"])]


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


@exports("OneHot")
def one_hot(op, cx):
    """Float rows, 1.0 at each index: ONNX's OneHot with (off, on) = (0, 1)."""
    values = cx.const(np.array([0, 1], np.float32), hint="off_on")
    return [cx.node("OneHot", [op.inputs[0], op.inputs[1], values], op.outputs, name=op.name,
                    axis=-1)]


@exports("BooleanMask")
def boolean_mask(op, cx):
    """The rows where the mask is true (Compress along axis 0); the kept positions, the
    optional second output, are NonZero's."""
    nodes = [cx.node("Compress", op.inputs, op.outputs[:1], name=op.name, axis=0)]
    if len(op.outputs) > 1 and cx.is_needed(op.outputs[1]):
        where = cx.temp(op, "nonzero")
        nodes += [cx.node("NonZero", [op.inputs[1]], [where]),
                  cx.squeeze(where, [0], op.outputs[1])]
    return nodes


@exports("PadImage")
def pad_image(op, cx):
    """The H and W of an NCHW (NHWC) image, by the op's own reading of its pad args."""
    (top, bottom), (left, right) = pad_image_op._pads(ArgsView(op))
    h, w = (1, 2) if op.args["order"] == "NHWC" else (2, 3)
    heads, tails = [0] * 4, [0] * 4
    heads[h], heads[w], tails[h], tails[w] = top, left, bottom, right
    mode = op.args["mode"]
    if mode != "constant" and min(heads + tails) < 0:
        raise op.unsupported(f"a negative pad (a crop) in {mode} mode")
    value = float(op.args["value"])
    if cx.opset < 11:
        return [cx.node("Pad", op.inputs, op.outputs, name=op.name, mode=mode,
                        pads=heads + tails, value=value)]
    dtype = cx.spec(op.inputs[0], op).dtype
    return [cx.node("Pad", [op.inputs[0], cx.int64s(heads + tails, "pads"),
                            cx.const(np.asarray(value, dtype), hint="value")], op.outputs,
                    name=op.name, mode=mode)]


@exports("ChannelShuffle")
def channel_shuffle(op, cx):
    """Channels (g, C/g) read as (C/g, g): Reshape, Transpose, Reshape."""
    shape = list(cx.shape(op.inputs[0], op))
    group = op.args["group"]
    axis = len(shape) - 1 if op.args["order"] == "NHWC" else 1
    split = shape[:axis] + [group, shape[axis] // group] + shape[axis + 1:]
    perm = list(range(len(split)))
    perm[axis], perm[axis + 1] = axis + 1, axis
    grouped, moved = cx.temp(op, "grouped"), cx.temp(op, "moved")
    return [cx.reshape(op.inputs[0], split, grouped),
            cx.node("Transpose", [grouped], [moved], perm=perm),
            cx.reshape(moved, shape, op.outputs[0])]
