"""BooleanMask, BooleanMaskGradient, BooleanMaskLengths and SequenceMask (Caffe2's
boolean_mask_ops.cc).

* BooleanMask(data, mask): the rows of data where the 1-D bool mask is true
  (data[mask]), and optionally their int64 positions.  Gradient: BooleanMaskGradient
  scatters dY back to those rows (zeros elsewhere).
* BooleanMaskLengths(lengths, mask): per segment, how many of its mask entries are
  true -- the lengths after BooleanMask.
* SequenceMask(input[, lengths or centers]): input viewed as a matrix (rows: the dims
  before ``axis``, columns: the dims from ``axis`` on), entry (i, j) replaced by
  ``fill_val`` (0 in ``grad`` mode) where the mode says so: "sequence" j >= lengths[i],
  "window" |j - centers[i]| > radius, "upper" j > i, "lower" j < i, "upperdiag"
  j >= i, "lowerdiag" j <= i.  With ``batch`` the rows are the dims strictly between
  batch and axis, the same mask for every batch entry; with ``repeat_from_axis``
  the dims from there on repeat one column's decision.  Its gradient is SequenceMask
  of dY in grad mode.
"""

import numpy as np

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._segments import INDEX_DTYPES, check_lengths, segment_sum
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, grad_name, gradient_maker,
                                make_operator, register_kernel, register_schema, same_as)


def boolean_mask_gradient_maker(op_def, g_output):
    d_data = grad_name(op_def.input[0])
    return [make_operator("BooleanMaskGradient", [op_def.input[1], g_output[0]], [d_data])], \
        [d_data, None]


@gradient_maker(copy_arguments=False)
def sequence_mask_gradient_maker(op_def, g_output):
    """The forward op's arguments plus grad=1 (Caffe2 set CopyArguments false and
    copied them itself)."""
    args = {a.name: a for a in op_def.arg}
    d_input = grad_name(op_def.input[0])
    grad = make_operator("SequenceMask", [g_output[0]] + list(op_def.input[1:2]), [d_input])
    grad.arg.extend(a for name, a in args.items() if name != "grad")
    grad.arg.add(name="grad", i=1)
    return [grad], [d_input] + [None] * (len(op_def.input) - 1)


register_schema(OpSchema(
    "BooleanMask", num_inputs=2, num_outputs=(1, 2),
    inputs=[("data", "tensor of rank >= 1"), ("mask", "bool vector of len(data)")],
    outputs=[("masked_data", "data[mask]"),
             ("masked_indices", "optional int64: the kept positions")],
    doc="Keeps the rows of data where mask is true.",
    gradient=boolean_mask_gradient_maker))

register_schema(OpSchema(
    "BooleanMaskGradient", num_inputs=2, num_outputs=1,
    inputs=[("mask", "the forward op's mask"), ("dY", "gradient of masked_data")],
    outputs=[("dX", "dY at the kept rows, zeros elsewhere")],
    doc="The gradient of BooleanMask."))

register_schema(OpSchema(
    "BooleanMaskLengths", num_inputs=2, num_outputs=1,
    inputs=[("lengths", "int32/int64 segment lengths"),
            ("mask", "bool vector of sum(lengths) entries")],
    outputs=[("masked_lengths", "the true entries of mask per segment")],
    doc="The segment lengths of a segmented tensor after BooleanMask with mask.",
    gradient=NO_GRADIENT))

SEQUENCE_MODES = ("sequence", "window", "upper", "lower", "upperdiag", "lowerdiag")

register_schema(OpSchema(
    "SequenceMask", num_inputs=(1, 2), num_outputs=1, infer_shapes=same_as(0),
    inputs=[("input", "float tensor to mask"),
            ("sequence_lengths", "int32 lengths (mode sequence) or centers (mode window)")],
    outputs=[("masked_tensor", "input with the masked entries set to fill_val")],
    args=[Arg("mode", "string", None, f"one of {', '.join(SEQUENCE_MODES)}", required=True),
          Arg("axis", "int", 1, "first dim of the columns"),
          Arg("radius", "int", 10, "half-width of the window (mode window)"),
          Arg("grad", "bool", False, "gradient mode: fill with 0"),
          Arg("fill_val", "float", float("-inf"), "the value of masked entries"),
          Arg("batch", "int", -1, "dims up to this one are a batch sharing one mask"),
          Arg("repeat_from_axis", "int", None, "dims from here repeat one column's mask")],
    doc="Masks a tensor for attention over sequences (by lengths, windows or triangles).",
    gradient=sequence_mask_gradient_maker))


def _check_mask(ctx, i, mask, n):
    if mask.dtype != np.bool_ or mask.ndim != 1 or mask.shape[0] != n:
        ctx.fail(f"{ctx.input_label(i)} must be a bool vector of {n} entries, got "
                 f"{mask.dtype} of shape {tuple(mask.shape)}")


@register_kernel("BooleanMask", devices=("CPU", "CUDA"))
def boolean_mask(ctx, data, mask):
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    _check_mask(ctx, 1, mask, data.shape[0])
    out = [data[mask]]
    if len(ctx.op_def.output) > 1:
        out.append(ctx.xp.flatnonzero(mask).astype(np.int64))
    return tuple(out)


@register_kernel("BooleanMaskGradient", devices=("CPU", "CUDA"))
def boolean_mask_gradient(ctx, mask, dy):
    if mask.dtype != np.bool_ or mask.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be a bool vector, got {mask.dtype} of shape "
                 f"{tuple(mask.shape)}")
    kept = int(mask.sum())
    if dy.ndim < 1 or dy.shape[0] != kept or dy.dtype.kind not in "iuf":
        ctx.fail(f"{ctx.input_label(1)} must be numeric with {kept} rows (the true entries "
                 f"of the mask), got {dy.dtype} of shape {tuple(dy.shape)}")
    dx = ctx.xp.zeros((mask.shape[0],) + dy.shape[1:], dy.dtype)
    dx[mask] = dy
    return (dx,)


@register_kernel("BooleanMaskLengths", devices=("CPU", "CUDA"))
def boolean_mask_lengths(ctx, lengths, mask):
    _check_mask(ctx, 1, mask, check_lengths(ctx, lengths, 0))
    return (segment_sum(ctx.xp, mask.astype(np.int64), lengths).astype(lengths.dtype),)


def _mask_view(ctx, x):
    """(rows, columns, repeats) of the 3-D view whose (row, column) decide the mask, and
    how many times the whole view repeats in front (the batch)."""
    shape = x.shape
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    batch = ctx.args["batch"]
    size = lambda dims: int(np.prod(dims, dtype=np.int64))  # noqa: E731
    if batch >= 0:
        batch = canonical_axis(ctx, batch, x.ndim, "batch")
        if batch >= axis:
            ctx.fail(f"argument batch = {batch} must come before axis = {axis}")
        front, rows = size(shape[:batch + 1]), size(shape[batch + 1:axis])
    else:
        front, rows = 1, size(shape[:axis])
    columns, repeats = size(shape[axis:]), 1
    if ctx.args["repeat_from_axis"] is not None:
        repeat_from = canonical_axis(ctx, ctx.args["repeat_from_axis"], x.ndim,
                                     "repeat_from_axis")
        if repeat_from < axis:
            ctx.fail(f"repeat_from_axis = {repeat_from} must not come before axis = {axis}")
        repeats = size(shape[repeat_from:])
        columns = size(shape[axis:repeat_from])
    return front, rows, columns, repeats


@register_kernel("SequenceMask", devices=("CPU", "CUDA"))
def sequence_mask(ctx, x, per_row=None):
    xp = ctx.xp
    mode = ctx.args["mode"]
    if mode not in SEQUENCE_MODES:
        ctx.fail(f"Unsupported mode '{mode}' for SequenceMask (one of {SEQUENCE_MODES})")
    if x.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {x.dtype}")
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    front, rows, columns, repeats = _mask_view(ctx, x)
    i = xp.arange(rows)[:, None]
    j = xp.arange(columns)[None, :]
    if mode in ("sequence", "window"):
        if per_row is None:
            what = "lengths" if mode == "sequence" else "centers"
            ctx.fail(f"mode '{mode}' needs input 1 ({what})")
        if np.dtype(per_row.dtype) not in INDEX_DTYPES or per_row.size < rows:
            ctx.fail(f"{ctx.input_label(1)} must hold an int32 value per row ({rows}), got "
                     f"{per_row.dtype} of shape {tuple(per_row.shape)}")
        v = per_row.reshape(-1)[:rows].astype(np.int64)[:, None]
        radius = ctx.args["radius"]
        masked = j >= v if mode == "sequence" else (j > v + radius) | (j < v - radius)
    else:
        masked = {"upper": j > i, "lower": j < i, "upperdiag": j >= i,
                  "lowerdiag": j <= i}[mode]
    fill = x.dtype.type(0 if ctx.args["grad"] else ctx.args["fill_val"])
    view = x.reshape(front, rows, columns, repeats)
    return (xp.where(masked[None, :, :, None], fill, view).reshape(x.shape),)
