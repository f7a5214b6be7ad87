"""PackSegments and UnpackSegments: segments of rows <-> a padded (batch, time, ...) tensor
(Caffe2's pack_segments.cc), each the other's gradient.

PackSegments(lengths, data): segment i (lengths[i] consecutive rows of data) becomes
packed[i, :lengths[i]]; the rest of packed[i] is padding -- 0 (b"" for strings), or
-inf with ``pad_minf`` (float data).  packed is (len(lengths), max_length, ...) with
max_length = max(lengths), or the ``max_length`` argument (longer segments are cut).
With a second output (``return_presence_mask``) it also gives the bool mask of real
rows.  lengths must sum to data's row count.  UnpackSegments(lengths, packed) takes the
rows back out.
"""

import numpy as np

from caffe2lite.operators._segments import INDEX_DTYPES, position_in_segment
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, register_kernel, register_schema)


def _inverse_maker(inverse):
    def maker(op_def, g_output):
        d_data = grad_name(op_def.input[1])
        return [make_operator(inverse, [op_def.input[0], g_output[0]], [d_data])], \
            [None, d_data]

    maker.__name__ = f"gradient_maker_{inverse}"
    return maker


def _pack_shapes(ctx, lengths, data):
    if lengths is None or data is None or ctx.args["max_length"] < 0 or data.ndim < 1:
        return (None,) * len(ctx.op_def.output)
    cells = (lengths.shape[0], ctx.args["max_length"])
    out = [TensorSpec(cells + data.shape[1:], data.dtype)]
    if len(ctx.op_def.output) > 1:
        out.append(TensorSpec(cells, np.bool_))
    return tuple(out)


_MAX_LENGTH = Arg("max_length", "int", -1, "the time dim (default: the longest segment); "
                                           "longer segments are cut")
_LENGTHS = ("lengths", "int32/int64 vector: rows per segment")

register_schema(OpSchema(
    "PackSegments", num_inputs=2, num_outputs=(1, 2), infer_shapes=_pack_shapes,
    inputs=[_LENGTHS, ("tensor", "N-dim tensor with sum(lengths) rows")],
    outputs=[("packed_tensor", "(len(lengths), max_length, ...) with padding"),
             ("presence_mask", "optional bool (len(lengths), max_length): real rows")],
    args=[_MAX_LENGTH, Arg("pad_minf", "bool", False, "pad with -inf instead of 0"),
          Arg("return_presence_mask", "bool", False, "also output the presence mask")],
    doc="Maps an N-dim tensor to N+1 dims: one padded row block per segment.",
    gradient=_inverse_maker("UnpackSegments")))

register_schema(OpSchema(
    "UnpackSegments", num_inputs=2, num_outputs=1,
    inputs=[_LENGTHS, ("tensor", "(len(lengths), max_length, ...) packed tensor")],
    outputs=[("packed_tensor", "the real rows of every segment, concatenated")],
    args=[_MAX_LENGTH],
    doc="Maps an N+1-dim packed tensor back to N dims (PackSegments' inverse).",
    gradient=_inverse_maker("PackSegments")))


def _checked_lengths(ctx, lengths):
    if np.dtype(lengths.dtype) not in INDEX_DTYPES or lengths.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} should be a 1-D int32/int64 tensor, got "
                 f"{lengths.dtype} of shape {tuple(lengths.shape)}")
    if lengths.size and int(lengths.min()) < 0:
        ctx.fail(f"{ctx.input_label(0)} holds a negative length")
    return lengths.astype(np.int64)


def _slots(ctx, lengths, width):
    """(segment, position) of every row, and which rows fit within ``width`` steps."""
    segment, position = position_in_segment(ctx.xp, lengths)
    return segment, position, position < width


def _width(ctx, lengths):
    longest = int(lengths.max()) if lengths.size else 0
    return longest if ctx.args["max_length"] < 0 else ctx.args["max_length"]


@register_kernel("PackSegments", devices=("CPU", "CUDA"))
def pack_segments(ctx, lengths, data):
    xp = ctx.xp
    lengths = _checked_lengths(ctx, lengths)
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(1)} should be at least 1-D, got a scalar")
    total = int(lengths.sum())
    if total != data.shape[0]:
        ctx.fail(f"{ctx.input_label(0)} sums to {total}, but {ctx.input_label(1)} has "
                 f"{data.shape[0]} rows (they must match)")
    width = _width(ctx, lengths)
    block = data.shape[1:]
    check_allocation(ctx, (lengths.size, width) + block, data.itemsize,
                     ctx.input_label(0))
    if ctx.args["pad_minf"]:
        if data.dtype.kind != "f":
            ctx.fail(f"pad_minf needs a float {ctx.input_label(1)}, got {data.dtype}")
        pad = -np.inf
    else:
        pad = b"" if data.dtype.kind == "O" else 0
    packed = xp.full((lengths.size * width,) + block, pad, dtype=data.dtype)
    segment, position, fits = _slots(ctx, lengths, width)
    slot = segment * width + position
    packed[slot[fits]] = data[fits]
    outputs = [packed.reshape((lengths.size, width) + block)]
    if len(ctx.op_def.output) > 1:
        present = xp.zeros(lengths.size * width, np.bool_)
        present[slot[fits]] = True
        outputs.append(present.reshape(lengths.size, width))
    return tuple(outputs)


@register_kernel("UnpackSegments", devices=("CPU", "CUDA"))
def unpack_segments(ctx, lengths, packed):
    lengths = _checked_lengths(ctx, lengths)
    if packed.ndim < 2 or packed.shape[0] != lengths.size:
        ctx.fail(f"{ctx.input_label(1)} should be at least 2-D with one block per entry of "
                 f"{ctx.input_label(0)} ({lengths.size}), got shape {tuple(packed.shape)}")
    width = packed.shape[1]
    if ctx.args["max_length"] >= 0 and ctx.args["max_length"] != width:
        ctx.fail(f"argument max_length = {ctx.args['max_length']} must equal the packed "
                 f"time dim {width}")
    if ctx.args["max_length"] < 0 and lengths.size and int(lengths.max()) > width:
        ctx.fail(f"{ctx.input_label(0)} has a segment of {int(lengths.max())} rows, longer "
                 f"than the {width} packed steps")
    kept = ctx.xp.minimum(lengths, width)
    segment, position = position_in_segment(ctx.xp, kept)
    flat = packed.reshape((lengths.size * width,) + packed.shape[2:])
    return (flat[segment * width + position],)
