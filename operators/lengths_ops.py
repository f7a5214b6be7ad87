"""Ops on a lengths vector and its segment-id form (Caffe2's utility_ops.cc and
lengths ops).

A lengths vector splits a tensor's first dimension into consecutive segments
(segment i has lengths[i] rows); segment ids name each row's segment instead.

    LengthsToRanges([1, 3, 0, 2])   -> [[0, 1], [1, 3], [4, 0], [4, 2]]
    LengthsRangeFill([4, 3, 1])     -> [0, 1, 2, 3, 0, 1, 2, 0]
    LengthsGather(items, [0, 2, 3, 1, 4], [0, 2, 4]) -> segments 0, 2 and 4 of items
    LengthsToSegmentIds([1, 3, 0, 2]) -> [0, 1, 1, 1, 3, 3]
    LengthsToOffsets([1, 3, 0, 2])  -> [0, 1, 4, 4] (+ [6] with include_last_offset)
    SegmentIdsToLengths([0, 1, 1, 3]) -> [1, 2, 0, 1]
    SegmentIdsToRanges([0, 1, 1, 3])  -> [[0, 1], [1, 2], [3, 0], [3, 1]]
    LengthsToWeights([2, 1], power=1) -> [0.5, 0.5, 1]
"""

import numpy as np

from caffe2lite.operators import _segments as segments
from caffe2lite.operators._segments import (INDEX_DTYPES, offsets_of, position_in_segment,
                                            repeat_segments)
from caffe2lite.operators._train_common import check_index_vector, host_int
from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
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


def _lengths_to_ranges_shapes(ctx, lengths):
    """Caffe2's TensorInferenceFunction: lengths' dims + [2], lengths' type."""
    return (None if lengths is None else TensorSpec(lengths.shape + (2,), lengths.dtype),)


register_schema(OpSchema(
    "LengthsToRanges", num_inputs=1, num_outputs=1, infer_shapes=_lengths_to_ranges_shapes,
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


def check_index_lengths(ctx, i, lengths):
    """A 1-D int32/int64 lengths input with no negative entry (the ops that took either)."""
    segments.check_lengths(ctx, lengths, i)
    return lengths


def _segment_count(ctx, ids, data):
    """Checked int64 segment ids (sorted, >= 0) and the number of segments: the last id
    + 1, or the first dim of the optional second input (which must not be smaller)."""
    if np.dtype(ids.dtype) not in INDEX_DTYPES or ids.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be an int32/int64 vector of segment ids, got "
                 f"{ids.dtype} of shape {tuple(ids.shape)}")
    ids = ids.astype(np.int64)
    if ids.size and host_int(ids[0]) < 0:
        ctx.fail(f"{ctx.input_label(0)}: segment ids must be >= 0, got {host_int(ids[0])}")
    if ids.size > 1 and not bool((ids[1:] >= ids[:-1]).all()):
        pos = host_int(ctx.xp.argmax(ids[1:] < ids[:-1]))
        ctx.fail(f"Segment ids must be sorted: {host_int(ids[pos])} vs "
                 f"{host_int(ids[pos + 1])} at position {pos + 1}")
    count = host_int(ids[-1]) + 1 if ids.size else 0
    if data is not None:
        if getattr(data, "ndim", 0) < 1:
            ctx.fail(f"{ctx.input_label(1)} must have rank >= 1 (its first dim is the "
                     f"number of segments)")
        if count > data.shape[0]:
            ctx.fail(f"The number of segments inferred ({count}) should *NOT* be larger "
                     f"than the size of {ctx.input_label(1)} ({data.shape[0]})")
        count = data.shape[0]
    return ids, count


register_schema(OpSchema(
    "LengthsToSegmentIds", num_inputs=1, num_outputs=1,
    inputs=[("lengths", "int32/int64 segment lengths")],
    outputs=[("segment_ids", "int32 vector of sum(lengths): each row's segment")],
    doc="Segment i repeated lengths[i] times (the inverse of SegmentIdsToLengths).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "LengthsToOffsets", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, lengths: (None if lengths is None else TensorSpec(
        (lengths.shape[0] + (1 if ctx.args["include_last_offset"] else 0),)
        + lengths.shape[1:], lengths.dtype),),
    inputs=[("lengths", "int32/int64 segment lengths")],
    outputs=[("offsets", "start offset of each segment, lengths' type")],
    args=[Arg("include_last_offset", "bool", False, "also output the total length")],
    doc="Exclusive prefix sums of lengths.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SegmentIdsToLengths", num_inputs=(1, 2), num_outputs=1,
    inputs=[("segment_ids", "sorted int32/int64 segment ids"),
            ("data", "optional: its first dim is the number of segments")],
    outputs=[("lengths", "int32 length of every segment (0 for absent ids)")],
    doc="Counts the rows of each segment.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SegmentIdsToRanges", num_inputs=(1, 2), num_outputs=1,
    inputs=[("segment_ids", "sorted int32/int64 segment ids"),
            ("data", "optional: its first dim is the number of segments")],
    outputs=[("ranges", "int32 (segments, 2): (start, length) of every segment")],
    doc="The (start, length) range of each segment.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "LengthsToWeights", num_inputs=1, num_outputs=1,
    inputs=[("lengths", "int32/int64 segment lengths")],
    outputs=[("weights", "float, one per row: 1 / lengths[segment] ** power")],
    args=[Arg("power", "float", 0.5, "n of 1 / pow(length, n)")],
    doc="Per-row weights that normalise each segment by its length.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("LengthsToSegmentIds", devices=("CPU", "CUDA"))
def lengths_to_segment_ids(ctx, lengths):
    segment, _ = position_in_segment(ctx.xp, check_index_lengths(ctx, 0, lengths))
    return (segment.astype(np.int32),)


@register_kernel("LengthsToOffsets", devices=("CPU", "CUDA"))
def lengths_to_offsets(ctx, lengths):
    lengths = check_index_lengths(ctx, 0, lengths)
    starts, ends = offsets_of(ctx.xp, lengths)
    if ctx.args["include_last_offset"]:
        total = ends[-1:] if lengths.size else ctx.xp.zeros(1, np.int64)
        starts = ctx.xp.concatenate([starts, total])
    return (starts.astype(lengths.dtype),)


@register_kernel("SegmentIdsToLengths", devices=("CPU", "CUDA"))
def segment_ids_to_lengths(ctx, ids, data=None):
    ids, count = _segment_count(ctx, ids, data)
    return (ctx.xp.bincount(ids, minlength=count).astype(np.int32),)


@register_kernel("SegmentIdsToRanges", devices=("CPU", "CUDA"))
def segment_ids_to_ranges(ctx, ids, data=None):
    xp = ctx.xp
    ids, count = _segment_count(ctx, ids, data)
    lengths = xp.bincount(ids, minlength=count)
    # where segment k starts: the first row with an id >= k (Caffe2 left segments past
    # the last id at 0)
    starts = xp.searchsorted(ids, xp.arange(count), side="left")
    if ids.size:
        starts = xp.where(xp.arange(count) > ids[-1], 0, starts)
    return (xp.stack([starts, lengths], axis=1).astype(np.int32).reshape(count, 2),)


@register_kernel("LengthsToWeights", devices=("CPU", "CUDA"))
def lengths_to_weights(ctx, lengths):
    lengths = check_index_lengths(ctx, 0, lengths)
    # an empty segment has no rows to weigh: max(length, 1) spares a division by 0
    weights = 1.0 / ctx.xp.power(ctx.xp.maximum(lengths, 1).astype(np.float64),
                                 ctx.args["power"])
    return (repeat_segments(ctx.xp, weights.astype(np.float32), lengths),)
