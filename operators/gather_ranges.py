"""GatherRanges and GatherRangesToDense: gather (start, length) ranges of a 1-D DATA tensor.

RANGES has shape (N examples, M features, 2); each innermost pair is
(start, length) into DATA.

* GatherRanges concatenates every range in order and returns, per example,
  the total length gathered (int32).
* GatherRangesToDense returns one (N, lengths[j]) tensor per feature j; an
  empty range, or one whose length differs from lengths[j], gives a row of
  zeros.  Caffe2 counted empty and mismatched ranges over the operator's
  lifetime and failed once their share exceeded max_empty_ratio /
  max_mismatched_ratio (after at least min_observation examples); this does
  the same, per created operator.  With a KEY input each range is reordered by
  its keys (a stable sort; Caffe2's std::sort left ties unspecified).
"""

import weakref

import numpy as np

from caffe2lite.operators._segments import position_in_segment
from caffe2lite.operators._train_common import INDEX_DTYPES, host_int, stable_argsort
from caffe2lite.operators.lengths_ops import MAX_OUTPUT_SIZE
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _gather_ranges_shapes(ctx, data, ranges):
    """Caffe2's TensorInferenceFunction (NeedsAllInputShapes): OUTPUT as long as all of
    DATA -- the most the ranges can gather, exact when they cover DATA once, as in the
    nets it was written for -- and one int32 length per example."""
    if data is None or ranges is None or ranges.ndim < 1:
        return (None, None)
    return TensorSpec((data.size,), data.dtype), TensorSpec((ranges.shape[0],), np.int32)


register_schema(OpSchema(
    "GatherRanges", num_inputs=2, num_outputs=2, infer_shapes=_gather_ranges_shapes,
    inputs=[("DATA", "tensor of rank 1"),
            ("RANGES", "int32/int64 (N, M, 2): (start, length) per example and feature")],
    outputs=[("OUTPUT", "1-D: every range of DATA, concatenated in order"),
             ("LENGTHS", "int32 (N,): total gathered length per example")],
    args=[MAX_OUTPUT_SIZE],
    doc="OUTPUT = concatenate(DATA[s:s+l] for (s, l) in RANGES.reshape(-1, 2)); "
        "LENGTHS = RANGES[..., 1].sum(axis=1).",
    gradient=None))  # Caffe2 registered SHOULD_NOT_DO_GRADIENT under a misspelt name

register_schema(OpSchema(
    "GatherRangesToDense", num_inputs=(2, 3), num_outputs=(1, None),
    inputs=[("DATA", "tensor of rank 1"),
            ("RANGES", "int32/int64 (N, M, 2): (start, length); M = number of outputs"),
            ("KEY", "(optional) int64, like DATA: each range is sorted by it")],
    outputs=[("OUTPUT", "one (N, lengths[j]) tensor per feature j")],
    args=[Arg("lengths", "ints", None, "expected length of each feature's ranges (> 0)",
              required=True),
          Arg("min_observation", "int", 10000, "examples seen before the ratios are judged"),
          Arg("max_mismatched_ratio", "float", 0.01, "fail when more ranges mismatch lengths"),
          Arg("max_empty_ratio", "float", 1.0, "fail when more ranges are empty (1 = never)")],
    doc="Gathers each feature's ranges into a dense (N, lengths[j]) tensor; empty or "
        "mismatched ranges become zero rows.",
    gradient=NO_GRADIENT))


def _check_ranges(ctx, data, ranges):
    if data.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} has to be 1-D, got shape {tuple(data.shape)}")
    if np.dtype(ranges.dtype) not in INDEX_DTYPES:
        ctx.fail(f"{ctx.input_label(1)} must be int32 or int64, got {ranges.dtype}")
    if not (ranges.ndim == 3 and ranges.shape[2] == 2):
        ctx.fail(f"{ctx.input_label(1)} must have shape (N, M, 2), got {tuple(ranges.shape)}")
    starts, lengths = ranges[..., 0], ranges[..., 1]
    used = lengths != 0
    bad = (lengths < 0) | (used & ((starts < 0) | (starts + lengths > data.size)))
    if bool(bad.any()):
        n, m = np.unravel_index(host_int(ctx.xp.argmax(bad.reshape(-1))), bad.shape)
        ctx.fail(f"{ctx.input_label(1)}: range ({host_int(starts[n, m])}, "
                 f"{host_int(lengths[n, m])}) of example {n}, feature {m} is not "
                 f"inside DATA (size {data.size})")
    return starts, lengths


@register_kernel("GatherRanges", devices=("CPU", "CUDA"))
def gather_ranges(ctx, data, ranges):
    starts, lengths = _check_ranges(ctx, data, ranges)
    if ranges.shape[1] <= 0:
        ctx.fail(f"{ctx.input_label(1)}: there has to be at least one range")
    flat_starts, flat_lengths = starts.reshape(-1), lengths.reshape(-1)
    segment, position = position_in_segment(ctx.xp, flat_lengths)
    output = data[flat_starts[segment].astype(np.int64) + position]
    return output, lengths.sum(axis=1, dtype=np.int64).astype(np.int32)


# Lifetime counters of each created GatherRangesToDense (Caffe2 kept them in the op).
_counters = weakref.WeakKeyDictionary()


@register_kernel("GatherRangesToDense", devices=("CPU", "CUDA"))
def gather_ranges_to_dense(ctx, data, ranges, key=None):
    xp, args = ctx.xp, ctx.args
    widths = args["lengths"]
    n_out = len(ctx.op_def.output)
    if not (len(widths) > 0 and min(widths) > 0):
        ctx.fail(f"argument 'lengths' must be non-empty and positive, got {widths}")
    if args["min_observation"] <= 0:
        ctx.fail(f"argument 'min_observation' must be > 0, got "
                 f"{args['min_observation']}")
    starts, lengths = _check_ranges(ctx, data, ranges)
    if not (ranges.shape[1] == len(widths) == n_out):
        ctx.fail(f"{ctx.input_label(1)} has {ranges.shape[1]} features per example; argument "
                 f"'lengths' has {len(widths)} and the op {n_out} outputs: all must be equal")
    if key is not None:
        if not (key.ndim == 1 and key.dtype == np.int64):
            ctx.fail(f"{ctx.input_label(2)} has to be a 1-D int64 tensor, got {key.dtype} of shape "
                     f"{tuple(key.shape)}")
        if key.size < data.size:
            ctx.fail(f"{ctx.input_label(2)} has {key.size} keys, DATA "
                     f"{data.size} values: one key per value is needed")
    batch = ranges.shape[0]
    width = xp.asarray(widths, dtype=lengths.dtype)
    empty, mismatched = lengths == 0, (lengths != 0) & (lengths != width)
    counts = _counters.setdefault(ctx, {"total": 0, "empty": np.zeros(n_out, np.int64),
                                        "mismatched": np.zeros(n_out, np.int64)})
    total = counts["total"] + batch
    n_empty = counts["empty"] + np.asarray(ctx.device.to_host(empty.sum(axis=0)))
    n_mismatched = counts["mismatched"] + np.asarray(ctx.device.to_host(mismatched.sum(axis=0)))
    seen = max(total, args["min_observation"])
    for j in range(n_out):
        for ratio, name, count in ((args["max_mismatched_ratio"], "mismatch", n_mismatched),
                                   (args["max_empty_ratio"], "empty", n_empty)):
            if ratio < 1.0 and seen * ratio < count[j]:
                ctx.fail(f"ratio of range length {name} for feature at index {j} "
                         f"is {count[j] / total:g} ({count[j]}/{total}), which "
                         f"exceeds {ratio:g}")
    counts.update(total=total, empty=n_empty, mismatched=n_mismatched)
    outputs = []
    for j, w in enumerate(widths):
        out = xp.zeros((batch, w), dtype=data.dtype)
        rows = xp.flatnonzero(lengths[:, j] == w)
        src = starts[rows, j].astype(np.int64)[:, None] + xp.arange(w)
        if key is not None and rows.size:
            src = xp.take_along_axis(src, stable_argsort(xp, key[src], axis=1), axis=1)
        out[rows] = data[src]
        outputs.append(out)
    return tuple(outputs)
