"""ONNX -> Caffe2: shapes, layout, joining and splitting, Gather, ConstantOfShape.

Caffe2 ops with extra outputs ONNX lacks (Concat's split_info, Reshape's
old_shape) write them to fresh blobs nobody reads.  Inputs ONNX moved from
attributes to tensors over the opsets (Split's sizes, Unsqueeze's axes, ...)
must be constants here: Caffe2 took them as arguments.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx._import_widen import TAKES, dtype_of, widened
from caffe2lite.onnx.dtypes import caffe2_type, caffe2_type_of_onnx, onnx_type
from caffe2lite.onnx.error import Unsupported


def _axis(node, cx, axis, name=None):
    """A non-negative axis (Caffe2 ops differ on negative ones)."""
    if axis >= 0:
        return axis
    return axis + cx.rank(node, name or node.inputs[0])


@imports("Concat")
def concat(node, cx):
    rank = None
    for x in node.inputs:
        shape = cx.shape(x)
        if shape is not None:
            rank = len(shape)
    axis = node.attrs["axis"]
    if axis < 0 and rank is not None:  # else Caffe2's Concat counts it from the end itself
        axis += rank
    return [op("Concat", node.inputs, [node.outputs[0], cx.temp(node, "split_info")], node,
               axis=axis)]


@imports("Split")
def split(node, cx):
    axis = _axis(node, cx, node.attrs.get("axis", 0))
    sizes = node.attrs.get("split")
    if sizes is None and node.input(1):
        sizes = [int(s) for s in np.ravel(cx.constant(node, 1, "split"))]
    if sizes is None:
        dim = cx.static_shape(node, node.inputs[0])[axis]
        parts = len(node.outputs)
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    return [op("Split", node.inputs[:1], node.outputs, node, axis=axis, split=list(sizes))]


@imports("Reshape")
def reshape(node, cx):
    if node.attrs.get("allowzero", 0):
        # Caffe2's 0 copies the input dim; allowzero's 0 is a real 0. They agree when the
        # shape holds no 0 -- known from the constant, or from an output with no empty dim.
        shape = cx.constants.get(node.inputs[1])
        out = cx.shape(node.outputs[0])
        no_zero = (0 not in np.asarray(shape) if shape is not None else
                   out is not None and None not in out and 0 not in out)
        if not no_zero:
            raise node.unsupported("allowzero=1 with a zero (or an unknown) in the shape has "
                                   "no Caffe2 mapping (Caffe2's 0 copies the input dim)")
    old_shape = cx.temp(node, "old_shape")
    shape = cx.constants.get(node.inputs[1])
    if shape is not None:
        return [op("Reshape", node.inputs[:1], [node.outputs[0], old_shape], node,
                   shape=[int(d) for d in shape])]
    return [op("Reshape", node.inputs[:2], [node.outputs[0], old_shape], node)]


@imports("Flatten")
def flatten(node, cx):
    return [op("Flatten", node.inputs, node.outputs, node,
               axis=_axis(node, cx, node.attrs.get("axis", 1)))]


@imports("Transpose")
def transpose(node, cx):
    def build(node, cx):
        return [op("Transpose", node.inputs, node.outputs, node, axes=node.attrs.get("perm"))]
    return widened(node, cx, build, TAKES["Transpose"])


@imports("Shape")
def shape(node, cx):
    start, end = node.attrs.get("start"), node.attrs.get("end")
    if start is None and end is None:
        return [op("Shape", node.inputs, node.outputs, node)]
    rank = cx.rank(node, node.inputs[0])
    axes = list(range(rank))[slice(start, end)]
    if not axes:  # Caffe2's Shape reads no axes as all of them
        return [op("ConstantFill", [], node.outputs, node, shape=[0],
                   dtype=caffe2_type(np.int64), value=0)]
    return [op("Shape", node.inputs, node.outputs, node, axes=axes)]


@imports("Size")
def size(node, cx):
    return [op("Size", node.inputs, node.outputs, node)]


@imports("Gather")
def gather(node, cx):
    return [op("Gather", node.inputs, node.outputs, node,
               axis=_axis(node, cx, node.attrs.get("axis", 0)), wrap_indices=1)]


@imports("ConstantOfShape")
def constant_of_shape(node, cx):
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    try:
        data_type = caffe2_type_of_onnx(onnx_type(value.dtype))
    except Unsupported as e:
        raise node.unsupported(str(e)) from None
    scalar = value.ravel()[0].item()
    return [op("ConstantFill", node.inputs, node.outputs, node, input_as_shape=1,
               dtype=data_type, value=scalar)]


def _axes(node, cx, what="axes"):
    axes = node.attrs.get("axes")
    if axes is None and node.input(1):
        axes = [int(a) for a in np.ravel(cx.constant(node, 1, what))]
    return axes


def _reshape_codes(node, cx, kept, out_rank, ones):
    """Caffe2 Reshape codes for an output of ``out_rank`` dims: 1 at ``ones``, input dim
    ``kept[p]`` at output position p -- 0 (copy) where it sits at its own index, its
    static size elsewhere, -1 for at most one unknown.  None when that cannot be said."""
    shape = cx.shape(node.inputs[0])
    codes, inferred = [], False
    for p in range(out_rank):
        if p in ones:
            codes.append(1)
            continue
        source = kept[len(codes) - sum(1 for c in range(len(codes)) if c in ones)]
        if source == p:
            codes.append(0)
        elif shape is not None and shape[source] is not None:
            codes.append(shape[source])
        elif not inferred:
            codes.append(-1)
            inferred = True
        else:
            return None
    return codes


@imports("Unsqueeze")
def unsqueeze(node, cx):
    """A Reshape (Caffe2's own op) where the new shape can be written down; else
    breadth-seq's ExpandDims."""
    axes = _axes(node, cx)
    rank = cx.rank(node, node.inputs[0]) + len(axes)
    dims = sorted(a + rank if a < 0 else a for a in axes)
    codes = _reshape_codes(node, cx, list(range(rank - len(dims))), rank, set(dims))
    if codes is not None:
        return [op("Reshape", node.inputs[:1], [node.outputs[0], cx.temp(node, "old_shape")],
                   node, shape=codes)]
    return [op("ExpandDims", node.inputs[:1], node.outputs, node, dims=dims)]


@imports("Squeeze")
def squeeze(node, cx):
    """A Reshape where the new shape can be written down; else breadth-seq's Squeeze."""
    axes = _axes(node, cx)
    rank = cx.rank(node, node.inputs[0])
    if axes is None:
        shape = cx.static_shape(node, node.inputs[0])
        axes = [i for i, d in enumerate(shape) if d == 1]
    dims = sorted(a + rank if a < 0 else a for a in axes)
    kept = [i for i in range(rank) if i not in dims]
    codes = _reshape_codes(node, cx, kept, len(kept), set())
    if codes is not None:
        return [op("Reshape", node.inputs[:1], [node.outputs[0], cx.temp(node, "old_shape")],
                   node, shape=codes)]
    return [op("Squeeze", node.inputs[:1], node.outputs, node, dims=dims)]


# breadth-seq's operators whose inputs match ONNX's
SEQ_SAME = {"Expand": "Expand", "Range": "Range"}


@imports(*SEQ_SAME)
def seq_same(node, cx):
    return [op(SEQ_SAME[node.op_type], node.inputs, node.outputs, node)]


@imports("Where")
def where(node, cx):
    """breadth-seq's Where (Caffe2's: C, X and Y of one shape), after broadcasting."""
    ops, inputs = broadcast_inputs(node, cx, node.inputs, result=node.outputs[0])
    return ops + [op("Where", inputs, node.outputs, node)]


@imports("Tile")
def tile(node, cx):
    """breadth-seq's NumpyTile (numpy.tile with the repeats as a tensor)."""
    return [op("NumpyTile", node.inputs, node.outputs, node)]


@imports("DepthToSpace", "SpaceToDepth")
def depth_space(node, cx):
    """Reshape, Transpose, Reshape on a static NCHW shape (Caffe2 had neither op)."""
    n, c, h, w = cx.static_shape(node, node.inputs[0])
    b = node.attrs["blocksize"]
    steps = cx.temp(node, "blocks"), cx.temp(node, "moved")
    mode = node.attrs.get("mode", "DCR")
    if node.op_type == "SpaceToDepth":
        first, last = (n, c, h // b, b, w // b, b), (n, c * b * b, h // b, w // b)
        perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    elif mode == "DCR":
        first, perm, last = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2), \
            (n, c // (b * b), h * b, w * b)
    else:  # CRD
        first, perm, last = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3), \
            (n, c // (b * b), h * b, w * b)
    return [op("Reshape", node.inputs[:1], [steps[0], cx.temp(node, "old0")], shape=first),
            op("Transpose", [steps[0]], [steps[1]], axes=list(perm)),
            op("Reshape", [steps[1]], [node.outputs[0], cx.temp(node, "old1")], node,
               shape=last)]


@imports("Slice")
def slice_(node, cx):
    """detection's Slice (Caffe2's: per-dim starts / exclusive ends from 0), on a static
    shape with steps of 1: ONNX's negative and out-of-range bounds are resolved here."""
    if cx.opset < 10:
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes, steps = node.attrs.get("axes"), None
    else:
        starts = np.ravel(cx.constant(node, 1, "starts")).tolist()
        ends = np.ravel(cx.constant(node, 2, "ends")).tolist()
        axes = cx.constant(node, 3, "axes")
        steps = cx.constant(node, 4, "steps")
        axes = None if axes is None else np.ravel(axes).tolist()
    shape = cx.static_shape(node, node.inputs[0])
    axes = list(range(len(starts))) if axes is None else [a % len(shape) for a in axes]
    if steps is not None and any(int(s) != 1 for s in np.ravel(steps)):
        return _strided_slice(node, cx, shape, axes, starts, ends, np.ravel(steps).tolist())
    cuts = []  # Caffe2's Slice cuts one dim at a time: one op per cut dim
    for axis, s, e in zip(axes, starts, ends):
        size = shape[axis]
        s = min(max(s + size if s < 0 else s, 0), size)
        e = max(min(max(e + size if e < 0 else e, 0), size), s)
        if (s, e) != (0, size):
            begin, end = [0] * len(shape), list(shape)
            begin[axis], end[axis] = s, e
            cuts.append((begin, end))
    if not cuts:
        return [op("Copy", node.inputs[:1], node.outputs, node)]
    ops, x = [], node.inputs[0]
    for i, (begin, end) in enumerate(cuts):
        y = node.outputs[0] if i == len(cuts) - 1 else cx.temp(node, f"cut{i}")
        ops.append(op("Slice", [x], [y], node, starts=begin, ends=end))
        x = y
    return ops


def _strided_slice(node, cx, shape, axes, starts, ends, steps):
    """Steps other than 1 (Caffe2's Slice has none): a Gather per cut axis of the indices
    ONNX's rule picks, which is Python's slice rule (negative bounds from the end,
    out-of-range ones clamped, a negative step walking back)."""
    ops, x = [], node.inputs[0]
    for i, (axis, s, e, step) in enumerate(zip(axes, starts, ends, steps)):
        y = node.outputs[0] if i == len(axes) - 1 else cx.temp(node, f"cut{i}")
        index = np.arange(shape[axis], dtype=np.int64)[slice(int(s), int(e), int(step))]
        ops.append(op("Gather", [x, cx.temp_const(node, f"index{axis}", index)], [y], node,
                      axis=axis, wrap_indices=0))
        x = y
    return ops


@imports("TopK")
def top_k(node, cx):
    """breadth-seq's TopK (Caffe2's: the k largest along an axis, sorted, ties to the
    lower index); the k smallest are the k largest of -X, negated back (signed and float
    types; sorted=0 leaves the order free, so sorted is a right answer)."""
    k = node.attrs.get("k") if cx.opset < 10 else int(np.ravel(cx.constant(node, 1, "K"))[0])
    args = dict(k=k, axis=node.attrs.get("axis", -1))
    if node.attrs.get("largest", 1):
        return [op("TopK", node.inputs[:1], node.outputs, node, **args)]
    dtype = dtype_of(node, cx, node.inputs[0])
    if dtype is None or dtype.kind not in "if":
        raise node.unsupported(f"the k smallest of {dtype} values (Caffe2's TopK takes "
                               f"the largest; -X needs a signed type)")
    t = cx.temps(node)
    return [op("Negative", node.inputs[:1], [t("negated")]),
            op("TopK", [t("negated")], [t("largest")] + node.outputs[1:], node, **args),
            op("Negative", [t("largest")], node.outputs[:1])]
