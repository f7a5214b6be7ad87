"""AddPadding, RemovePadding, GatherPadding and PadEmptySamples (Caffe2's sequence_ops.cc).

A tensor's first dim is split into ranges by int32 ``lengths`` (no lengths: one range
over everything).  ``padding_width`` (default 1) rows go before each range and
``end_padding_width`` (default: padding_width) after it:

* AddPadding(data[, lengths[, start_padding[, end_padding]]]) inserts them, copies of
  start_padding / end_padding (default: end = start; none given: zeros); output 1 is
  lengths + both widths.  Its gradient is RemovePadding of dY, plus GatherPadding for
  the paddings.
* RemovePadding(data[, lengths]) drops them again (lengths - both widths); its gradient
  is AddPadding of dY with zero padding.
* GatherPadding(data, lengths) sums the start rows of all ranges into output 0 and the
  end rows into output 1 (or also into output 0 when there is no output 1).
* PadEmptySamples(lengths, features...) gives every empty sample one zero row in each
  feature tensor, and length 1.

Rows are moved with one fancy index per op, no loop over ranges.
"""

import numpy as np

from caffe2lite.operators._segments import offsets_of, repeat_segments
from caffe2lite.operators.lengths_ops import INT32_MAX, check_lengths
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, check_allocation,
                                grad_name, make_operator, register_kernel, register_schema)

PADDING_KINDS = "biuf"  # Caffe2: float, double, int, int64_t, bool


def _lengths_inputs(op_def):
    """[lengths-out] when the op takes lengths (Caffe2 then requires output 1)."""
    if len(op_def.input) > 1:
        if len(op_def.output) < 2:
            raise ValueError(f"{op_def.type} with a lengths input needs its lengths output "
                             f"for the gradient")
        return [op_def.output[1]]
    return []


def add_padding_gradient_maker(op_def, g_output):
    g_inputs = [g_output[0]] + _lengths_inputs(op_def)
    d_data = grad_name(op_def.input[0])
    ops = [make_operator("RemovePadding", g_inputs, [d_data])]
    d_pads = [grad_name(name) for name in op_def.input[2:4]]
    if d_pads:
        ops.append(make_operator("GatherPadding", g_inputs, d_pads))
    return ops, [d_data, None] + d_pads


def remove_padding_gradient_maker(op_def, g_output):
    g_inputs = [g_output[0]] + _lengths_inputs(op_def)
    d_data = grad_name(op_def.input[0])
    return [make_operator("AddPadding", g_inputs, [d_data])], \
        [d_data] + [None] * (len(op_def.input) - 1)


def widths(ctx):
    """(start, end) padding widths (Caffe2: end < 0 means 'same as start')."""
    start, end = ctx.args["padding_width"], ctx.args["end_padding_width"]
    end = start if end < 0 else end
    if not (0 <= start <= INT32_MAX and end <= INT32_MAX):
        ctx.fail(f"padding widths must lie in [0, {INT32_MAX}], got padding_width = "
                 f"{start}, end_padding_width = {ctx.args['end_padding_width']}")
    return start, end


def _add_padding_shapes(ctx, data, lengths=None, *pads):
    if data is None or data.ndim < 1 or (len(ctx.op_def.input) > 1 and lengths is None):
        return (None,) * len(ctx.op_def.output)
    start, end = widths(ctx)
    ranges = lengths.shape[0] if lengths is not None else 1
    out = [TensorSpec((data.shape[0] + (start + end) * ranges,) + data.shape[1:], data.dtype)]
    if len(ctx.op_def.output) > 1:
        out.append(TensorSpec((ranges,), np.int32))
    return tuple(out)


_WIDTH_ARGS = [Arg("padding_width", "int", 1, "rows of padding before each range"),
               Arg("end_padding_width", "int", -1,
                   "rows of padding after each range (default: padding_width)")]
_LENGTHS = ("lengths", "int32 vector: rows per range (default: one range over all rows)")
_LENGTHS_OUT = ("lengths_out", "optional int32: the ranges' new lengths")

register_schema(OpSchema(
    "AddPadding", num_inputs=(1, 4), num_outputs=(1, 2), infer_shapes=_add_padding_shapes,
    inputs=[("data_in", "tensor (N, D1, ..., Dn)"), _LENGTHS,
            ("start_padding", "optional (D1, ..., Dn) padding before each range"),
            ("end_padding", "optional (D1, ..., Dn) padding after (default: start_padding)")],
    outputs=[("data_out", "(N + (start + end) * ranges, D1, ..., Dn)"), _LENGTHS_OUT],
    args=_WIDTH_ARGS, doc="Pads the start and end of every range of data's first dim.",
    gradient=add_padding_gradient_maker))

register_schema(OpSchema(
    "RemovePadding", num_inputs=(1, 2), num_outputs=(1, 2),
    inputs=[("data_in", "padded tensor"), _LENGTHS],
    outputs=[("data_out", "data without the padding rows"), _LENGTHS_OUT],
    args=_WIDTH_ARGS, doc="Removes the padding AddPadding added to every range.",
    gradient=remove_padding_gradient_maker))

register_schema(OpSchema(
    "GatherPadding", num_inputs=2, num_outputs=(1, 2),
    inputs=[("data_in", "padded tensor (N, D1, ..., Dn)"), _LENGTHS],
    outputs=[("padding_sum", "(D1, ..., Dn): the sum of all start paddings (and end "
                             "paddings, without output 1)"),
             ("end_padding_sum", "optional (D1, ..., Dn): the sum of all end paddings")],
    args=_WIDTH_ARGS, doc="Sums the padding rows of every range (AddPadding's gradient "
                          "for its paddings)."))

register_schema(OpSchema(
    "PadEmptySamples", num_inputs=(1, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out,
    inputs=[("lengths", "int32 vector: rows of each sample")],
    outputs=[("out_lengths", "lengths with every 0 replaced by 1")],
    doc="Gives every empty sample one zero row in each feature input (inputs 1...), "
        "outputs 1... being the padded features.", gradient=NO_GRADIENT))


def _ranges(ctx, data, lengths_input, i=1):
    """Checked (rows, lengths) of the ranges: the lengths input, or one range of all rows."""
    if data.ndim < 1 or data.dtype.kind not in PADDING_KINDS:
        ctx.fail(f"{ctx.input_label(0)} must be a numeric or bool tensor of rank >= 1, got "
                 f"{data.dtype} of shape {tuple(data.shape)}")
    if lengths_input is None:
        return ctx.xp.asarray([data.shape[0]], dtype=np.int64)
    lengths = check_lengths(ctx, i, lengths_input).astype(np.int64)
    total = int(lengths.sum(dtype=np.int64))
    if total != data.shape[0]:
        ctx.fail(f"{ctx.input_label(i)} sums to {total}, but {ctx.input_label(0)} has "
                 f"{data.shape[0]} rows")
    return lengths


def _padded_layout(xp, lengths, start, end):
    """Row positions, in the padded layout, of (payload rows, start pads, end pads)."""
    m = lengths.shape[0]
    rank = xp.arange(m, dtype=np.int64)
    padded_starts = offsets_of(xp, lengths)[0] + rank * (start + end)
    payload = repeat_segments(xp, padded_starts + start, lengths) + \
        _position(xp, lengths)
    start_rows = (padded_starts[:, None] + xp.arange(start)).reshape(-1)
    end_rows = (padded_starts[:, None] + start + lengths[:, None]
                + xp.arange(end)).reshape(-1)
    return payload, start_rows, end_rows


def _position(xp, lengths):
    """Each row's position inside its range."""
    starts, ends = offsets_of(xp, lengths)
    total = int(ends[-1]) if lengths.shape[0] else 0
    return xp.arange(total, dtype=np.int64) - repeat_segments(xp, starts, lengths)


@register_kernel("AddPadding", devices=("CPU", "CUDA"))
def add_padding(ctx, data, lengths=None, *pads):
    xp = ctx.xp
    lengths = _ranges(ctx, data, lengths)
    start, end = widths(ctx)
    block = data.shape[1:]
    for i, pad in enumerate(pads, 2):
        if pad.dtype != data.dtype or pad.size != int(np.prod(block, dtype=np.int64)):
            ctx.fail(f"{ctx.input_label(i)} ({pad.dtype}, {pad.size} values) must hold one "
                     f"{data.dtype} row of {ctx.input_label(0)} ({tuple(block)})")
    grown = data.shape[0] + (start + end) * lengths.shape[0]
    check_allocation(ctx, (grown,) + block, data.itemsize, "argument 'padding_width'")
    out = xp.zeros((grown,) + block, data.dtype)
    payload, start_rows, end_rows = _padded_layout(xp, lengths, start, end)
    out[payload] = data
    if pads:
        out[start_rows] = pads[0].reshape(block)
        out[end_rows] = pads[-1].reshape(block)
    result = [out]
    if len(ctx.op_def.output) > 1:
        result.append((lengths + (start + end)).astype(np.int32))
    return tuple(result)


@register_kernel("RemovePadding", devices=("CPU", "CUDA"))
def remove_padding(ctx, data, lengths=None):
    lengths = _ranges(ctx, data, lengths)
    start, end = widths(ctx)
    inner = lengths - (start + end)
    if inner.size and int(inner.min()) < 0:
        ctx.fail(f"a range of {int(lengths.min())} rows is shorter than the padding "
                 f"({start} + {end})")
    payload, _, _ = _padded_layout(ctx.xp, inner, start, end)
    result = [data[payload]]
    if len(ctx.op_def.output) > 1:
        result.append(inner.astype(np.int32))
    return tuple(result)


@register_kernel("GatherPadding", devices=("CPU", "CUDA"))
def gather_padding(ctx, data, lengths):
    xp = ctx.xp
    lengths = _ranges(ctx, data, lengths)
    if data.dtype == np.bool_:
        ctx.fail(f"{ctx.input_label(0)} is bool: GatherPadding adds rows, which booleans "
                 f"do not define")
    start, end = widths(ctx)
    inner = lengths - (start + end)
    if inner.size and int(inner.min()) < 0:
        ctx.fail(f"a range of {int(lengths.min())} rows is shorter than the padding "
                 f"({start} + {end})")
    _, start_rows, end_rows = _padded_layout(xp, inner, start, end)
    start_sum = data[start_rows].sum(axis=0, dtype=data.dtype)
    end_sum = data[end_rows].sum(axis=0, dtype=data.dtype)
    if len(ctx.op_def.output) > 1:
        return start_sum, end_sum
    return (start_sum + end_sum,)


@register_kernel("PadEmptySamples", devices=("CPU",))
def pad_empty_samples(ctx, lengths, *features):
    lengths = check_lengths(ctx, 0, lengths)
    total = int(lengths.sum(dtype=np.int64))
    padded = np.maximum(lengths, 1).astype(np.int32)
    rows_out = int(padded.sum(dtype=np.int64))
    # where each sample's rows start in the output; an empty sample's zero row stays zero
    out_rows = repeat_segments(np, offsets_of(np, padded)[0], lengths) + _position(np, lengths)
    outputs = [padded]
    for i, feature in enumerate(features, 1):
        if feature.ndim < 1 or feature.shape[0] != total:
            ctx.fail(f"{ctx.input_label(i)} must have sum(lengths) = {total} rows, got shape "
                     f"{tuple(feature.shape)}")
        out = np.zeros((rows_out,) + feature.shape[1:], feature.dtype)
        if feature.dtype.kind == "O":
            out[...] = b""
        out[out_rows] = feature
        outputs.append(out)
    return tuple(outputs)
