"""ONNX -> Caffe2: Pad and CenterCropPad.

Caffe2's own padding op is PadImage: the H and W of an NCHW image, by
non-negative amounts, in constant, reflect or edge mode; a Pad that is exactly
that maps onto it.  Every other Pad (any rank and axes, negative pads that
crop, wrap mode) and CenterCropPad are a Gather along each padded axis with an
index vector worked out here from the static input dim -- negative amounts
crop first, then for position p of the output, input p - head, clamped (edge,
and constant), reflected (reflect) or wrapped (wrap) into range -- and, in
constant mode, a Where writing the value where the index fell outside.
"""

from __future__ import annotations

import functools

import numpy as np

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx._import_widen import TAKES, dtype_of, widened

MODES = ("constant", "reflect", "edge", "wrap")


@imports("Pad")
def pad(node, cx):
    pads, value = _pads_and_value(node, cx)
    mode = node.attrs.get("mode", "constant")
    if mode not in MODES:
        raise node.unsupported(f"mode '{mode}' has no Caffe2 mapping")
    rank = len(pads) // 2
    if (rank == 4 and not any(pads[i] for i in (0, 1, 4, 5)) and min(pads) >= 0
            and mode != "wrap"):
        def pad_image(node, cx):
            return [op("PadImage", node.inputs[:1], node.outputs, node, pad_t=pads[2],
                       pad_l=pads[3], pad_b=pads[6], pad_r=pads[7], mode=mode, value=value)]
        return widened(node, cx, pad_image, TAKES["PadImage"], only=(0,))
    return gathered_pad(node, cx, pads[:rank], pads[rank:], mode, value)


def _pads_and_value(node, cx):
    """[heads..., tails...] over every dim, and the constant value (a Python number)."""
    if cx.opset < 11:
        return list(node.attrs["pads"]), node.attrs.get("value", 0.0)
    pads = [int(p) for p in np.ravel(cx.constant(node, 1, "pads"))]
    given = cx.constant(node, 2, "constant_value")
    value = np.ravel(given)[0].item() if given is not None and np.size(given) else 0
    axes = cx.constant(node, 3, "axes")
    if axes is not None:
        rank = cx.rank(node, node.inputs[0])
        full = [0] * (2 * rank)
        for i, a in enumerate(np.ravel(axes)):
            full[int(a) % rank], full[rank + int(a) % rank] = pads[i], pads[len(pads) // 2 + i]
        pads = full
    return pads, value


def source_index(size, head, tail, mode):
    """For each output position along one axis: the input index it reads, and whether it
    is inside the input (constant mode writes the value where it is not)."""
    wanted = np.arange(-head, size + tail, dtype=np.int64)
    inside = (wanted >= 0) & (wanted < size)
    if mode == "wrap":
        return wanted % size, np.ones_like(inside)
    if mode == "reflect":
        period = 2 * (size - 1)
        folded = wanted % period if period else np.zeros_like(wanted)
        return np.where(folded >= size, period - folded, folded), np.ones_like(inside)
    return np.clip(wanted, 0, size - 1), inside if mode == "constant" else np.ones_like(inside)


def gathered_pad(node, cx, heads, tails, mode, value):
    """Pad (or crop, for negative amounts) by one Gather per changed axis."""
    x, y = node.inputs[0], node.outputs[0]
    shape = cx.shape(x)
    changed = [a for a, (h, t) in enumerate(zip(heads, tails)) if h or t]
    if not changed:
        return [op("Copy", [x], [y], node)]
    if shape is None or any(shape[a] is None for a in changed):
        raise node.unsupported(f"the padded dims of '{x}' must be static, got {shape}")
    masks, ops = [], []
    for k, axis in enumerate(changed):
        # negative amounts crop first; the rest pads what is left
        cut_head, cut_tail = max(-heads[axis], 0), max(-tails[axis], 0)
        kept = shape[axis] - cut_head - cut_tail
        if kept < 0 or (kept == 0 and max(heads[axis], tails[axis]) > 0):
            raise node.unsupported(f"pads {heads + tails} leave nothing of dim {axis} "
                                   f"({shape[axis]}) to pad from")
        index, inside = source_index(kept, max(heads[axis], 0), max(tails[axis], 0), mode)
        index = index + cut_head
        out = y if k == len(changed) - 1 and mode != "constant" else cx.temp(node, f"pad{axis}")
        ops.append(op("Gather", [x, cx.temp_const(node, f"index{axis}", index)], [out], node,
                      axis=axis, wrap_indices=0))
        x = out
        view = [1] * len(shape)
        view[axis] = len(inside)
        masks.append(inside.reshape(view))
    if mode != "constant":
        return ops
    mask = functools.reduce(np.logical_and, masks)
    if mask.all():  # only cropped
        return ops[:-1] + [op("Gather", ops[-1].input, [y], node, axis=changed[-1],
                              wrap_indices=0)]
    dtype = dtype_of(node, cx, node.inputs[0])
    if dtype is None:
        raise node.unsupported(f"the element type of '{node.inputs[0]}' is unknown")
    where = type(node)("Where", [cx.temp_const(node, "inside", mask), x,
                                 cx.temp_const(node, "value", np.asarray(value, dtype))],
                       [y], {}, node.name, node.where)
    where_ops, inputs = broadcast_inputs(where, cx, where.inputs, result=y)
    return ops + where_ops + [op("Where", inputs, [y], node)]


@imports("CenterCropPad")
def center_crop_pad(node, cx):
    """Each of ``axes`` cropped around its centre (the extra element on the right) or
    zero-padded around it (the extra on the right) to the size in ``shape``."""
    x = node.inputs[0]
    rank = cx.rank(node, x)
    sizes = [int(s) for s in np.ravel(cx.constant(node, 1, "shape"))]
    axes = [a % rank for a in node.attrs.get("axes", range(rank))]
    shape = cx.shape(x)
    heads, tails = [0] * rank, [0] * rank
    for axis, size in zip(axes, sizes):
        if shape[axis] is None:
            raise node.unsupported(f"dim {axis} of '{x}' must be static")
        diff = size - shape[axis]
        if diff >= 0:  # pad: ONNX's reference puts the odd element on the right
            heads[axis], tails[axis] = diff // 2, diff - diff // 2
        else:  # crop: start at (dim - size) // 2
            start = (-diff) // 2
            heads[axis], tails[axis] = -start, -(-diff - start)
    return gathered_pad(node, cx, heads, tails, "constant", 0)
