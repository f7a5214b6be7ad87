"""ONNX -> Caffe2: indexing and the ONNX-only ops caffe2lite adds under ONNX's names.

Scatter is Caffe2's own (ScatterElements' first name in ONNX, too); Trilu,
CumSum, GatherElements, ScatterND, GatherND, Einsum, Hardmax and BitShift have
no Caffe2 ancestor, so caffe2lite's operators keep ONNX's names and meaning (as do
NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, mapped in _import_nn).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx.dtypes import caffe2_type


@imports("ScatterElements", "Scatter")
def scatter_elements(node, cx):
    return [op("Scatter", node.inputs, node.outputs, node, axis=node.attrs.get("axis", 0),
               reduction=node.attrs.get("reduction", "none"))]


# ONNX type -> its attributes (with ONNX's defaults), which caffe2lite's op takes as they are
SAME_ATTRIBUTES = {"GatherElements": {"axis": 0}, "ScatterND": {"reduction": "none"},
                   "GatherND": {"batch_dims": 0}, "Einsum": {"equation": None},
                   "BitShift": {"direction": None}}


@imports(*SAME_ATTRIBUTES)
def same_attributes(node, cx):
    args = {k: node.attrs.get(k, default) for k, default in SAME_ATTRIBUTES[node.op_type].items()}
    return [op(node.op_type, node.inputs, node.outputs, node, **args)]


@imports("Trilu")
def trilu(node, cx):
    return [op("Trilu", [x for x in node.inputs if x], node.outputs, node,
               upper=node.attrs.get("upper", 1))]


@imports("CumSum", "CumProd")
def cumulative(node, cx):
    return [op(node.op_type, node.inputs, node.outputs, node,
               exclusive=node.attrs.get("exclusive", 0), reverse=node.attrs.get("reverse", 0))]


@imports("Hardmax")
def hardmax(node, cx):
    """One axis from opset 13; before, X coerced to 2-D at ``axis`` (default 1)."""
    if cx.opset >= 13:
        return [op("Hardmax", node.inputs, node.outputs, node, axis=node.attrs.get("axis", -1))]
    x, y = node.inputs[0], node.outputs[0]
    flat, hard, shape = cx.temp(node, "2d"), cx.temp(node, "2d_hardmax"), cx.temp(node, "shape")
    axis = node.attrs.get("axis", 1)
    axis = axis + cx.rank(node, x) if axis < 0 else axis
    return [op("Flatten", [x], [flat], axis=axis),
            op("Hardmax", [flat], [hard], node, axis=1),
            op("Shape", [x], [shape]),
            op("Reshape", [hard, shape], [y, cx.temp(node, "old_shape")])]


@imports("RMSNormalization")
def rms_normalization(node, cx):
    return [op("RMSNormalization", node.inputs, node.outputs, node,
               axis=node.attrs.get("axis", -1), epsilon=float(node.attrs.get("epsilon", 1e-5)),
               stash_type=node.attrs.get("stash_type", 1))]


ATTENTION_ATTRS = ("is_causal", "q_num_heads", "kv_num_heads", "scale", "softcap",
                   "softmax_precision", "qk_matmul_output_mode", "left_window_size",
                   "right_window_size")


@imports("Attention")
def attention(node, cx):
    """caffe2lite's Attention (ONNX's, opsets 23-25); absent optional inputs and
    outputs in the middle get placeholder names Caffe2 can carry."""
    optional = ("attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")
    given = [(name, x) for name, x in zip(optional, node.inputs[3:]) if x]
    inputs = node.inputs[:3] + [x for _, x in given]
    args = {"optional_inputs": [name for name, _ in given]} if len(given) < len(
        [x for x in node.inputs[3:]]) else {}
    outputs = [o or cx.temp(node, f"unused{i}") for i, o in enumerate(node.outputs)]
    while len(outputs) > 1 and not node.outputs[len(outputs) - 1]:
        outputs.pop()
    args.update({k: node.attrs[k] for k in ATTENTION_ATTRS if k in node.attrs})
    if "scale" in args:
        args["scale"] = float(args["scale"])
    if "softcap" in args:
        args["softcap"] = float(args["softcap"])
    return [op("Attention", inputs, outputs, node, **args)]


@imports("QuantizeLinear", "DequantizeLinear")
def linear_quantization(node, cx):
    names = ("axis", "block_size", "output_dtype", "saturate", "precision")
    if node.op_type == "DequantizeLinear":
        names = names[:3]
    args = {k: node.attrs[k] for k in names if k in node.attrs}
    return [op(node.op_type, [x for x in node.inputs if x], node.outputs, node, **args)]


RESIZE_ATTRS = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                "exclude_outside", "extrapolation_value", "keep_aspect_ratio_policy",
                "antialias", "axes")


@imports("Resize")
def resize(node, cx):
    """caffe2lite's Resize, with roi / scales / sizes (inputs from opset 11) as arguments."""
    args = {k: node.attrs[k] for k in RESIZE_ATTRS if k in node.attrs}
    for k in ("cubic_coeff_a", "extrapolation_value"):
        if k in args:
            args[k] = float(args[k])
    first = 1 if cx.opset < 11 else 2  # opset 10: (X, scales); from 11: (X, roi, scales, sizes)
    names = ("scales", "sizes") if first == 2 else ("scales",)
    if first == 2:
        roi = cx.constant(node, 1, "roi")
        if roi is not None and np.size(roi):
            args["roi"] = [float(v) for v in np.ravel(roi)]
    for i, name in enumerate(names):
        value = cx.constant(node, first + i, name)
        if value is not None and np.size(value):
            args[name] = [float(v) if name == "scales" else int(v) for v in np.ravel(value)]
    if "axes" not in args and ("scales" in args or "sizes" in args):
        given = args.get("sizes") or args.get("scales")
        rank = cx.rank(node, node.inputs[0])
        if len(given) != rank:
            raise node.unsupported(f"{len(given)} sizes / scales for rank {rank}")
    return [op("Resize", node.inputs[:1], node.outputs, node, **args)]


@imports("Upsample")
def upsample(node, cx):
    """Opsets 7-9: Resize with asymmetric coordinates (nearest: rounding down)."""
    scales = node.attrs.get("scales")
    if scales is None:
        scales = np.ravel(cx.constant(node, 1, "scales")).tolist()
    mode = node.attrs.get("mode", "nearest")
    return [op("Resize", node.inputs[:1], node.outputs, node, mode=mode,
               coordinate_transformation_mode="asymmetric", nearest_mode="floor",
               scales=[float(s) for s in scales])]


@imports("OneHot")
def one_hot(node, cx):
    """Caffe2's OneHot writes float rows and refuses out-of-range indices; ONNX's puts the
    depth axis anywhere, counts negative indices from the end, leaves out-of-range ones
    all 'off' and takes the (off, on) values' type.  So: EQ of the indices (made
    non-negative) against 0..depth-1 laid along the new axis, then Where(on, off)."""
    indices, _, values = node.inputs
    y = node.outputs[0]
    depth = int(np.ravel(cx.constant(node, 1, "depth"))[0])
    rank = cx.rank(node, indices) + 1
    axis = node.attrs.get("axis", -1) % rank
    t = cx.temps(node)
    positions = np.arange(depth, dtype=np.int64).reshape(
        [depth if d == axis else 1 for d in range(rank)])
    zero = cx.temp_const(node, "zero", np.asarray(0, np.int64))
    ops = [op("Cast", [indices], [t("as_int64")], to=caffe2_type(np.int64)),
           op("LT", [t("as_int64"), zero], [t("negative")]),
           op("Add", [t("as_int64"), cx.temp_const(node, "depth", np.asarray(depth, np.int64))],
              [t("from_end")]),
           op("Where", [t("negative"), t("from_end"), t("as_int64")], [t("index")]),
           op("ExpandDims", [t("index")], [t("index_on_axis")], dims=[axis]),
           op("EQ", [t("index_on_axis"), cx.temp_const(node, "positions", positions)],
              [t("hot")]),
           op("Gather", [values, cx.temp_const(node, "off_at", np.asarray(0, np.int64))],
              [t("off")]),
           op("Gather", [values, cx.temp_const(node, "on_at", np.asarray(1, np.int64))],
              [t("on")])]
    # what the broadcast before Where needs to know of the blobs made here
    cx.shapes[t("on")] = cx.shapes[t("off")] = ((), cx.elem_type(node, values))
    cx.shapes[t("hot")] = (cx.shape(y), TensorProto.BOOL)
    where = replace(node, op_type="Where", inputs=[t("hot"), t("on"), t("off")], outputs=[y])
    expand, inputs = broadcast_inputs(where, cx, where.inputs, result=y)
    return ops + expand + [op("Where", inputs, [y], node)]


@imports("Compress")
def compress(node, cx):
    """Caffe2's BooleanMask keeps rows (along axis 0) where a mask of the rows' count is
    true; ONNX's condition may be shorter than the axis (the rest is dropped) and picks
    along any axis, or over X flattened when none is given."""
    x, condition = node.inputs
    y = node.outputs[0]
    t = cx.temps(node)
    length = cx.static_shape(node, condition)[0]
    shape = cx.static_shape(node, x)
    axis = node.attrs.get("axis")
    ops = []
    if axis is None:
        ops.append(op("Reshape", [x], [t("flat"), t("old")], shape=[-1]))
        x, axis, rank, dim = t("flat"), 0, 1, int(np.prod(shape))
    else:
        rank = len(shape)
        axis %= rank
        dim = shape[axis]
    if length > dim:
        raise node.unsupported(f"a condition of {length} entries for a dim of {dim}")
    perm = [axis] + [d for d in range(rank) if d != axis]
    if axis:
        ops.append(op("Transpose", [x], [t("axis_first")], axes=perm))
        x = t("axis_first")
    if length < dim:
        ops.append(op("Gather", [x, cx.temp_const(node, "head", np.arange(length))],
                      [t("head_rows")], axis=0, wrap_indices=0))
        x = t("head_rows")
    ops.append(op("BooleanMask", [x, condition], [t("kept") if axis else y], node))
    if axis:
        ops.append(op("Transpose", [t("kept")], [y], axes=[int(i) for i in np.argsort(perm)]))
    return ops


@imports("ReverseSequence")
def reverse_sequence(node, cx):
    """Caffe2's ReversePackedSegs reverses the first lengths[n] steps of each sequence of
    a (time, batch, block) tensor: the ONNX input is moved to time-major (a Transpose
    when batch comes first) and viewed as 3-D around it."""
    x, lengths = node.inputs
    y = node.outputs[0]
    shape = list(cx.static_shape(node, x))
    batch_first = node.attrs.get("batch_axis", 1) == 0
    t = cx.temps(node)
    perm = [1, 0] + list(range(2, len(shape)))
    ops = []
    if batch_first:
        ops.append(op("Transpose", [x], [t("time_major")], axes=perm))
        x = t("time_major")
        shape[0], shape[1] = shape[1], shape[0]
    ops += [op("Reshape", [x], [t("packed"), t("old0")], shape=shape[:2] + [-1]),
            op("ReversePackedSegs", [t("packed"), lengths], [t("reversed")], node),
            op("Reshape", [t("reversed")], [t("unpacked") if batch_first else y, t("old1")],
               shape=shape)]
    if batch_first:
        ops.append(op("Transpose", [t("unpacked")], [y], axes=perm))
    return ops
