"""Partition, LengthsPartition and GatherByKey: rows split by key modulo the number of
partitions, and joined back (Caffe2's partition_ops.h).

* Partition(KEYS, X1, ...): partition p of each input holds the rows r (of KEYS
  flattened, of Xi reshaped to KEYS.shape + rest) with KEYS[r] mod P == p (a
  non-negative modulo), in order; outputs are partition-major: (KEYS_p0, X1_p0, ...,
  KEYS_p1, X1_p1, ...), P = outputs / inputs.  With ``pack_first_input`` the keys are
  stored as key // P.
* LengthsPartition(LENGTHS, KEYS, X1, ...): the same for a 1-D KEYS, plus, per
  partition, int32 LENGTHS_p counting each segment's rows in that partition.
* GatherByKey(KEYS, X_p0, X_p1, ...): the inverse of Partition for one input.
Vectorised: one stable argsort of the partition numbers per op.
"""

import numpy as np

from caffe2lite.operators._segments import INDEX_DTYPES, segment_sum
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

_PACK = Arg("pack_first_input", "bool", False, "store the keys as key // partitions")

register_schema(OpSchema(
    "Partition", num_inputs=(1, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_out % n_in == 0,
    inputs=[("input", "int32/int64 keys"), ("X", "more tensors, shaped KEYS.shape + rest")],
    outputs=[("partitions", "per partition, every input's rows with key mod P == p")],
    args=[_PACK], doc="Splits the inputs' rows by key modulo the number of partitions.",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "LengthsPartition", num_inputs=(2, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_out % n_in == 0,
    inputs=[("lengths", "int32 segment lengths"), ("input", "1-D int32/int64 keys"),
            ("X", "more tensors with one row per key")],
    outputs=[("partitions", "per partition: its lengths, then every input's rows")],
    args=[_PACK], doc="Partition of segmented data, with each partition's lengths.",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "GatherByKey", num_inputs=(2, None), num_outputs=1,
    inputs=[("keys", "1-D int32/int64 keys"), ("sharded_values", "one per partition")],
    outputs=[("values", "the partitions' rows put back in the order of keys")],
    doc="The inverse of Partition for one input.", gradient=NO_GRADIENT))


def _keys(ctx, i, keys):
    if np.dtype(keys.dtype) not in INDEX_DTYPES:
        ctx.fail(f"{ctx.input_label(i)} must hold int32/int64 keys, got {keys.dtype}")
    return keys


def _shards(ctx, keys, parts):
    """(partition of each key, stable order grouping them, rows per partition)."""
    xp = ctx.xp
    shard = (keys.reshape(-1).astype(np.int64) % parts)
    order = xp.argsort(shard, kind="stable") if xp is np else xp.argsort(shard)
    return shard, order, xp.bincount(shard, minlength=parts)


def _split(ctx, keys, others, first_input, parts):
    """[[input rows of partition p] for each input] for p in range(parts)."""
    shard, order, counts = _shards(ctx, keys, parts)
    bounds = np.cumsum(np.asarray(counts.tolist() if ctx.xp is not np else counts))[:-1]
    columns = []
    for offset, x in enumerate((keys,) + tuple(others)):
        i = first_input + offset
        if x.shape[:keys.ndim] != keys.shape:
            ctx.fail(f"Prefix of extra input's shape must match main input's shape: "
                     f"{ctx.input_label(i)} {tuple(x.shape)} vs keys {tuple(keys.shape)}")
        rows = x.reshape((keys.size,) + x.shape[keys.ndim:])
        if offset == 0 and ctx.args["pack_first_input"]:
            rows = rows // parts
        columns.append(ctx.xp.split(rows[order], bounds))
    return [list(col) for col in zip(*columns)], shard


@register_kernel("Partition", devices=("CPU",))
def partition(ctx, keys, *others):
    parts = len(ctx.op_def.output) // len(ctx.op_def.input)
    _keys(ctx, 0, keys)
    by_partition, _ = _split(ctx, keys, others, 0, parts)
    return tuple(x for group in by_partition for x in group)


@register_kernel("LengthsPartition", devices=("CPU",))
def lengths_partition(ctx, lengths, keys, *others):
    parts = len(ctx.op_def.output) // len(ctx.op_def.input)
    lengths = check_lengths(ctx, 0, lengths)
    _keys(ctx, 1, keys)
    if keys.ndim != 1:
        ctx.fail(f"Only 1-D tensors supported as a partitioning tensor for sharding, got "
                 f"{ctx.input_label(1)} of shape {tuple(keys.shape)}")
    if int(lengths.sum(dtype=np.int64)) != keys.size:
        ctx.fail(f"Total length is not matching to the number of elements: "
                 f"{ctx.input_label(0)} sums to {int(lengths.sum())}, {keys.size} keys")
    by_partition, shard = _split(ctx, keys, others, 1, parts)
    # per segment, how many of its rows fall in each partition
    one_hot = (shard[:, None] == np.arange(parts)[None, :]).astype(np.int64)
    per_segment = segment_sum(np, one_hot, lengths.astype(np.int64)).astype(np.int32)
    return tuple(x for p, group in enumerate(by_partition)
                 for x in [per_segment[:, p].copy()] + group)


@register_kernel("GatherByKey", devices=("CPU",))
def gather_by_key(ctx, keys, *sharded):
    _keys(ctx, 0, keys)
    if keys.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be 1-D, got shape {tuple(keys.shape)}")
    parts = len(sharded)
    _, order, counts = _shards(ctx, keys, parts)
    for p, x in enumerate(sharded):
        if x.ndim < 1 or x.shape[0] != int(counts[p]) or x.dtype != sharded[0].dtype \
                or x.shape[1:] != sharded[0].shape[1:]:
            ctx.fail(f"{ctx.input_label(p + 1)} {x.dtype} {tuple(x.shape)} must hold the "
                     f"{int(counts[p])} rows of partition {p}, shaped like the others")
    joined = np.concatenate(sharded)
    out = np.empty_like(joined)
    out[order] = joined
    return (out,)
