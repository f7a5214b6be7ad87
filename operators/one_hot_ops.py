"""OneHot, SegmentOneHot, BatchOneHot and BatchBucketOneHot (Caffe2's one_hot_ops.cc).

* ``OneHot(indices, index_size)``: float (len(indices), index_size), row i is 1.0 at
  indices[i].  indices int64, index_size an int64 scalar.
* ``SegmentOneHot(lengths, indices, index_size)``: row i is 1.0 at every index of
  segment i (lengths int32, indices int64).
* ``BatchOneHot(data, lengths, values)``: data (N, D); column j expands to
  lengths[j] columns, output column p = (data[:, j] == values[p]), in data's dtype.
* ``BatchBucketOneHot(data, lengths, boundaries)``: column j is bucketised by its
  lengths[j] sorted boundaries into lengths[j] + 1 buckets, right-inclusive
  ((-inf, b1], (b1, b2], ..., (bk, inf)), and one-hot encoded (float).  A value equal
  to a repeated boundary lands in the middle bucket of the repeats (Caffe2 took
  (lower_bound + upper_bound) / 2).

None has a gradient.  All are vectorised (bucket searches: operators/_segments.segmented_search).
"""

import numpy as np

from caffe2lite.operators._axes import int_from_tensor
from caffe2lite.operators._segments import segmented_search
from caffe2lite.operators._train_common import host_int
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (NO_GRADIENT, OpCost, OpSchema, TensorSpec, check_allocation,
                                register_kernel, register_schema)


def _batch_shape(width_of):
    def infer(ctx, data, lengths, table):
        if data is None or lengths is None or table is None or data.ndim < 1:
            return (None,)
        return (TensorSpec((data.shape[0], width_of(lengths, table)),
                           data.dtype if ctx.op_def.type == "BatchOneHot" else np.float32),)
    return infer


def _batch_one_hot_cost(ctx, data, lengths, values):
    """Caffe2's CostInferenceForBatchOneHot: no flops, reads all three inputs, writes
    the (N, len(values)) output."""
    (out,) = _batch_shape(lambda lengths, table: table.size)(ctx, data, lengths, values)
    read = sum(s.size * s.dtype.itemsize for s in (data, lengths, values))
    return OpCost(0, out.size * out.dtype.itemsize, read)


register_schema(OpSchema(
    "OneHot", num_inputs=2, num_outputs=1,
    inputs=[("indices", "int64 vector: the active index of each example"),
            ("index_size_tensor", "int64 scalar: the size of the index (on the CPU)")],
    outputs=[("one_hots", "float (len(indices), index_size)")],
    doc="one_hots[i, indices[i]] = 1.0, zeros elsewhere.", gradient=NO_GRADIENT))

register_schema(OpSchema(
    "SegmentOneHot", num_inputs=3, num_outputs=1,
    inputs=[("lengths", "int32 vector: segment sizes"),
            ("indices", "int64 vector of sum(lengths) active indices"),
            ("index_size_tensor", "int64 scalar: the size of the index")],
    outputs=[("one_hots", "float (len(lengths), index_size)")],
    doc="Row i is 1.0 at each index of segment i, 0.0 elsewhere.", gradient=NO_GRADIENT))

register_schema(OpSchema(
    "BatchOneHot", num_inputs=3, num_outputs=1,
    infer_shapes=_batch_shape(lambda lengths, values: values.size), cost=_batch_one_hot_cost,
    inputs=[("data", "int32/int64/float/double matrix (N, D)"),
            ("lengths", "int32 vector of D: columns each data column expands to"),
            ("values", "sum(lengths) dictionary values, data's dtype")],
    outputs=[("output", "(N, sum(lengths)) one-hot encoding, data's dtype")],
    doc="Output column p (of data column j) is data[:, j] == values[p], as 0/1.",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "BatchBucketOneHot", num_inputs=3, num_outputs=1,
    infer_shapes=_batch_shape(lambda lengths, boundaries: lengths.size + boundaries.size),
    inputs=[("data", "float matrix (N, D)"),
            ("lengths", "int32 vector of D positive boundary counts"),
            ("boundaries", "float: sum(lengths) boundaries, sorted within each column")],
    outputs=[("output", "float (N, sum(lengths) + D)")],
    doc="Bucketises column j by its boundaries into lengths[j] + 1 right-inclusive "
        "buckets and one-hot encodes the bucket.",
    gradient=NO_GRADIENT))


def _index_size(ctx, i, value):
    size = int_from_tensor(ctx, i, value)
    if size < 0:
        ctx.fail(f"{ctx.input_label(i)} must be >= 0, got {size}")
    return size


def _check_indices(ctx, i, indices, size):
    if indices.dtype != np.int64 or indices.ndim != 1:
        ctx.fail(f"{ctx.input_label(i)} must be an int64 vector, got {indices.dtype} of shape "
                 f"{tuple(indices.shape)}")
    if indices.size and (host_int(indices.min()) < 0 or host_int(indices.max()) >= size):
        ctx.fail(f"{ctx.input_label(i)} holds an index outside [0, {size})")


@register_kernel("OneHot", devices=("CPU", "CUDA"))
def one_hot(ctx, indices, size_tensor):
    size = _index_size(ctx, 1, size_tensor)
    _check_indices(ctx, 0, indices, size)
    check_allocation(ctx, (indices.size, size), 4, ctx.input_label(1))
    xp = ctx.xp
    out = xp.zeros((indices.size, size), np.float32)
    out[xp.arange(indices.size), indices] = 1.0
    return (out,)


@register_kernel("SegmentOneHot", devices=("CPU",))
def segment_one_hot(ctx, lengths, indices, size_tensor):
    lengths = check_lengths(ctx, 0, lengths)
    size = _index_size(ctx, 2, size_tensor)
    _check_indices(ctx, 1, indices, size)
    total = int(lengths.sum(dtype=np.int64))
    if total != indices.size:
        ctx.fail(f"{ctx.input_label(0)} sums to {total}, but {ctx.input_label(1)} has "
                 f"{indices.size} entries")
    check_allocation(ctx, (lengths.size, size), 4, ctx.input_label(2))
    out = np.zeros((lengths.size, size), np.float32)
    out[np.repeat(np.arange(lengths.size), lengths), indices] = 1.0
    return (out,)


def _batch_inputs(ctx, data, lengths, kinds):
    """(N, D-column matrix of data, lengths, column of each expanded position)."""
    if data.ndim < 1 or data.dtype.kind not in kinds or data.dtype.itemsize < 4:
        ctx.fail(f"{ctx.input_label(0)} must be a {'float' if kinds == 'f' else 'numeric'} "
                 f"tensor of rank >= 1 (32 or 64 bit), got {data.dtype} of shape "
                 f"{tuple(data.shape)}")
    matrix = data.reshape(data.shape[0], int(np.prod(data.shape[1:], dtype=np.int64)))
    lengths = check_lengths(ctx, 1, lengths)
    if lengths.size != matrix.shape[1]:
        ctx.fail(f"{ctx.input_label(1)} has {lengths.size} entries, but "
                 f"{ctx.input_label(0)} has {matrix.shape[1]} columns")
    xp = ctx.xp
    column = xp.repeat(xp.arange(lengths.size), lengths.tolist() if xp is not np else lengths)
    return matrix, lengths, column


@register_kernel("BatchOneHot", devices=("CPU", "CUDA"))
def batch_one_hot(ctx, data, lengths, values):
    matrix, lengths, column = _batch_inputs(ctx, data, lengths, "iuf")
    if values.dtype != data.dtype or values.size != column.size:
        ctx.fail(f"{ctx.input_label(2)} must hold sum(lengths) = {column.size} values of "
                 f"{ctx.input_label(0)}'s dtype {data.dtype}, got {values.size} of "
                 f"{values.dtype}")
    check_allocation(ctx, (matrix.shape[0], column.size), data.itemsize, ctx.input_label(1))
    return ((matrix[:, column] == values.reshape(1, -1)).astype(data.dtype),)


@register_kernel("BatchBucketOneHot", devices=("CPU", "CUDA"))
def batch_bucket_one_hot(ctx, data, lengths, boundaries):
    xp = ctx.xp
    matrix, lengths, column = _batch_inputs(ctx, data, lengths, "f")
    if lengths.size and host_int(lengths.min()) <= 0:
        ctx.fail(f"{ctx.input_label(1)} must be positive: every column needs a boundary")
    if boundaries.dtype.kind != "f" or boundaries.size != column.size:
        ctx.fail(f"{ctx.input_label(2)} must hold sum(lengths) = {column.size} float "
                 f"boundaries, got {boundaries.size} of {boundaries.dtype}")
    n, d = matrix.shape
    width = column.size + d
    check_allocation(ctx, (n, width), 4, ctx.input_label(1))
    out = xp.zeros((n, width), np.float32)
    if n == 0 or d == 0:
        return (out,)
    feature = xp.tile(xp.arange(d), n)
    flat = matrix.reshape(-1)
    below = segmented_search(xp, boundaries, lengths, flat, feature, "left")   # lower_bound
    upto = segmented_search(xp, boundaries, lengths, flat, feature, "right")   # upper_bound
    # global boundary index -> bucket within the column: minus the column's first edge;
    # the column's cells start at (its first edge + its number)
    starts = xp.cumsum(lengths, dtype=np.int64) - lengths
    cell = (below + upto) // 2 - starts[feature] + (starts + xp.arange(d))[feature]
    out[xp.repeat(xp.arange(n), d), cell] = 1.0
    return (out,)
    starts = xp.cumsum(lengths, dtype=np.int64) - lengths
    values = matrix[:, column]                       # each value against each boundary of its column
    edges = boundaries.reshape(1, -1).astype(matrix.dtype)
    below = xp.add.reduceat((edges < values).astype(np.int64), starts, axis=1)   # lower_bound
    upto = xp.add.reduceat((edges <= values).astype(np.int64), starts, axis=1)   # upper_bound
    bucket = (below + upto) // 2
    first_cell = starts + xp.arange(d)               # column j's buckets start here
    out[xp.arange(n)[:, None], first_cell[None, :] + bucket] = 1.0
    return (out,)
