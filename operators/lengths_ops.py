"""LengthsToRanges, LengthsGather and LengthsRangeFill: ops on a lengths vector.

A lengths vector splits a tensor's first dimension into consecutive segments
(segment i has lengths[i] rows).  Caffe2 read lengths as int32 in all three.

    LengthsToRanges([1, 3, 0, 2])   -> [[0, 1], [1, 3], [4, 0], [4, 2]]
    LengthsRangeFill([4, 3, 1])     -> [0, 1, 2, 3, 0, 1, 2, 0]
    LengthsGather(items, [0, 2, 3, 1, 4], [0, 2, 4]) -> segments 0, 2 and 4 of items
"""

import numpy as np

from caffe2lite.operators._segments import offsets_of, position_in_segment
from caffe2lite.operators._train_common import check_index_vector, host_int
from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, Arg, OpSchema,
                                register_kernel, register_schema)

# Glow's Caffe2 importer tests put a static-size hint on some ops; Caffe2
# ignored it, so do we.
INT32_MAX = int(np.iinfo(np.int32).max)
MAX_OUTPUT_SIZE = Arg("maxOutputSize", "int", None, "Glow static-size hint; ignored")


def check_lengths(ctx, i, lengths):
    """A 1-D int32 lengths input with no negative entry."""
    if lengths.dtype != np.int32:
        ctx.fail(f"{ctx.input_label(i)} must be int32 lengths, got "
                 f"{lengths.dtype}")
    if lengths.ndim != 1:
        ctx.fail(f"{ctx.input_label(i)} must be a vector, got shape "
                 f"{tuple(lengths.shape)}")
    if not (lengths.size == 0 or host_int(lengths.min()) >= 0):
        ctx.fail(f"{ctx.input_label(i)} holds a negative length")
    return lengths


register_schema(OpSchema(
    "LengthsToRanges", num_inputs=1, num_outputs=1,
    inputs=[("lengths", "1-D int32 segment lengths")],
    outputs=[("ranges", "int32 (len(lengths), 2): (offset, length) per segment")],
    doc="Packs each segment's offset next to its length: ranges[i] = (sum(lengths[:i]), "
        "lengths[i]).",
    gradient=None))

register_schema(OpSchema(
    "LengthsGather", num_inputs=3, num_outputs=1,
    inputs=[("ITEMS", "tensor whose first dimension is sum(LENGTHS)"),
            ("LENGTHS", "1-D int32 segment lengths"),
            ("INDICES", "1-D int32/int64 segments to gather")],
    outputs=[("OUTPUT", "the rows of the chosen segments, concatenated")],
    doc="Concatenates segments INDICES of ITEMS (segments given by LENGTHS).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "LengthsRangeFill", num_inputs=1, num_outputs=1,
    inputs=[("lengths", "1-D int32 segment lengths")],
    outputs=[("range_sequence", "int32 of size sum(lengths): 0..lengths[i]-1 per segment")],
    args=[MAX_OUTPUT_SIZE],
    doc="Concatenates numpy.arange(l) for every l in lengths.",
    gradient=NO_GRADIENT))


@register_kernel("LengthsToRanges", devices=("CPU", "CUDA"))
def lengths_to_ranges(ctx, lengths):
    lengths = check_lengths(ctx, 0, lengths)
    starts, _ = offsets_of(ctx.xp, lengths)
    if lengths.size and host_int(starts[-1]) > INT32_MAX:  # Caffe2 wrapped around silently
        ctx.fail(f"{ctx.input_label(0)}: segment {lengths.size - 1} starts at offset "
                 f"{host_int(starts[-1])}, past the int32 range of the ranges output")
    return (ctx.xp.stack([starts.astype(np.int32), lengths], axis=1).reshape(-1, 2),)


@register_kernel("LengthsRangeFill", devices=("CPU", "CUDA"))
def lengths_range_fill(ctx, lengths):
    _, position = position_in_segment(ctx.xp, check_lengths(ctx, 0, lengths))
    return (position.astype(np.int32),)


@register_kernel("LengthsGather", devices=("CPU", "CUDA"))
def lengths_gather(ctx, items, lengths, indices):
    xp = ctx.xp
    if items.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} should be at least 1-D")
    lengths = check_lengths(ctx, 1, lengths)
    if indices.ndim != 1:
        ctx.fail(f"{ctx.input_label(2)} should be 1-D, got shape "
                 f"{tuple(indices.shape)}")
    idx = check_index_vector(ctx, 2, indices, lengths.size, 1)
    starts, ends = offsets_of(xp, lengths)
    total = host_int(ends[-1]) if lengths.size else 0
    if items.shape[0] != total:
        ctx.fail(f"{ctx.input_label(0)} has {items.shape[0]} rows but "
                 f"LENGTHS sum to {total} (they must match)")
    segment, position = position_in_segment(xp, lengths[idx])
    return (items[starts[idx][segment] + position],)
