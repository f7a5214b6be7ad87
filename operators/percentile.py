"""Percentile: each value's percentile from a sampled value -> percentile map per column
(Caffe2's percentile_op.cc).

original_values is (N, D); value_to_pct is (sum(lengths), 2) rows of (sampled value,
its percentile), column j's samples being rows lengths[:j].sum() onwards, sorted by
value.  For x in column j, with k = the first sample >= x (std::lower_bound):
  past every sample -> 1.0;  equal to sample k -> its percentile;
  before every sample -> 0.0;  else linear interpolation between samples k-1 and k.
"""

import numpy as np

from caffe2lite.operators._segments import segmented_search
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema, same_as

register_schema(OpSchema(
    "Percentile", num_inputs=3, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("original_values", "float (N, D): the raw values"),
            ("value_to_pct", "float (sum(lengths), 2): sorted (value, percentile) samples"),
            ("lengths", "int32 vector of D: the number of samples of each column")],
    outputs=[("percentile_values", "float (N, D): each value's percentile")],
    doc="Looks each value up among its column's samples; interpolates linearly between "
        "samples, 0 below all and 1 above all.",
    gradient=NO_GRADIENT))


@register_kernel("Percentile", devices=("CPU", "CUDA"))
def percentile(ctx, x, value_to_pct, lengths):
    xp = ctx.xp
    if x.dtype != np.float32 or x.ndim != 2:
        ctx.fail(f"{ctx.input_label(0)} must be a 2-D float tensor, got {x.dtype} of shape "
                 f"{tuple(x.shape)}")
    if value_to_pct.dtype != np.float32 or value_to_pct.ndim != 2 \
            or value_to_pct.shape[1] != 2:
        ctx.fail(f"{ctx.input_label(1)} must be float (samples, 2), got {value_to_pct.dtype} "
                 f"of shape {tuple(value_to_pct.shape)}")
    lengths = check_lengths(ctx, 2, lengths)
    if lengths.size != x.shape[1] or int(lengths.sum(dtype=np.int64)) != value_to_pct.shape[0]:
        ctx.fail(f"{ctx.input_label(2)} must have one entry per column of "
                 f"{ctx.input_label(0)} ({x.shape[1]}) summing to the number of samples "
                 f"({value_to_pct.shape[0]}); got {lengths.tolist()}")
    samples, pcts = value_to_pct[:, 0], value_to_pct[:, 1]
    n, d = x.shape
    starts = xp.cumsum(lengths, dtype=np.int64) - lengths
    column = xp.tile(xp.arange(d), n)
    flat = x.reshape(-1)
    k = segmented_search(xp, samples, lengths, flat, column)
    start, end = starts[column], starts[column] + lengths[column]
    at = xp.minimum(k, max(samples.shape[0] - 1, 0))           # safe to gather
    before = xp.maximum(at - 1, 0)
    if samples.shape[0]:
        span = samples[at] - samples[before]
        span = xp.where(span == 0, 1, span)                        # unused where 0
        inside = pcts[before] + (flat - samples[before]) / span * (pcts[at] - pcts[before])
        out = xp.where(k == start, 0.0, inside)
        out = xp.where(flat == samples[at], pcts[at], out)
    else:
        out = xp.zeros_like(flat)
    out = xp.where(k == end, 1.0, out)
    return (out.astype(np.float32).reshape(n, d),)
