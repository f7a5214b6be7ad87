"""LengthsPad: segments padded to one length (Caffe2's lengths_pad_op.h).

Segment i (LENGTHS[i] consecutive rows of DATA) is copied to rows
[i * target_length, i * target_length + LENGTHS[i]) of a (len(LENGTHS) *
target_length, ...) output; the other rows hold ``padding_value``.  Every length
must be at most ``target_length``.  No gradient (Caffe2 declared none).
"""

import numpy as np

from caffe2lite.operators._segments import position_in_segment
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, check_allocation,
                                register_kernel, register_schema)


def _padded_shape(ctx, data, lengths):
    """Caffe2's inference: (len(LENGTHS) * target_length, *DATA.shape[1:])."""
    target = ctx.args["target_length"]
    if data is None or lengths is None or target < 1 or data.ndim < 1 or lengths.ndim != 1:
        return (None,)
    return (TensorSpec((lengths.shape[0] * target,) + data.shape[1:], data.dtype),)


register_schema(OpSchema(
    "LengthsPad", num_inputs=2, num_outputs=1, infer_shapes=_padded_shape,
    inputs=[("DATA", "tensor of rank >= 1 (float, double, int32 or int64)"),
            ("LENGTHS", "int32 segment lengths, each <= target_length")],
    outputs=[("OUTPUT", "(len(LENGTHS) * target_length, ...): the padded segments")],
    args=[Arg("padding_value", "float", -1.0, "the value of padding rows"),
          Arg("target_length", "int", -1, "the length of every padded segment (>= 1)")],
    doc="Pads every segment to target_length rows with padding_value.",
    gradient=NO_GRADIENT))


@register_kernel("LengthsPad", devices=("CPU", "CUDA"))
def lengths_pad(ctx, data, lengths):
    xp = ctx.xp
    target = ctx.args["target_length"]
    if target < 1:
        ctx.fail(f"target_length argument must be >= 1, got {target}")
    if data.ndim < 1 or data.dtype not in (np.float32, np.float64, np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(0)} must be a float, double, int32 or int64 tensor of "
                 f"rank >= 1, got {data.dtype} of shape {tuple(data.shape)}")
    lengths = check_lengths(ctx, 1, lengths)
    if int(lengths.sum(dtype=np.int64)) != data.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} sums to {int(lengths.sum())}, but "
                 f"{ctx.input_label(0)} has {data.shape[0]} rows")
    if lengths.size and int(lengths.max()) > target:
        pos = int(xp.argmax(lengths > target))
        ctx.fail(f"Length at index = {pos} is larger than target length ({int(lengths[pos])} "
                 f"> {target})")
    shape = (lengths.size * target,) + data.shape[1:]
    check_allocation(ctx, shape, data.itemsize, "argument 'target_length'")
    out = xp.full(shape, ctx.args["padding_value"], dtype=data.dtype)
    segment, position = position_in_segment(xp, lengths)
    out[segment * target + position] = data
    return (out,)
