"""BisectPercentile: each feature value mapped to its percentile by interpolating a table.

Column j of RAW_DATA (N, D) uses the j-th run (``lengths[j]`` entries) of the arguments
``percentile_raw`` (sorted values), ``percentile_mapping`` (their percentiles),
``percentile_lower`` and ``percentile_upper`` (the percentile just below and above each
value): below the first value gives 0, above the last 1, a value in the table its
mapping, and between two values k and k+1 the line from ``upper[k]`` at ``raw[k]`` to
``lower[k+1]`` at ``raw[k+1]``."""

import numpy as np

from caffe2lite.operators._sorted_segments import segmented_searchsorted
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, once_per_op, register_kernel,
                                register_schema, same_as)

register_schema(OpSchema(
    "BisectPercentile", num_inputs=1, num_outputs=1, infer_shapes=same_as(0),
    args=[Arg("percentile_raw", "floats", [], "sorted feature values, one run per column"),
          Arg("percentile_mapping", "floats", [], "the percentile of each value"),
          Arg("percentile_lower", "floats", [], "the percentile just below each value"),
          Arg("percentile_upper", "floats", [], "the percentile just above each value"),
          Arg("lengths", "ints", [], "entries per column")],
    inputs=[("raw_data", "(N, D) float32 features")],
    outputs=[("percentile", "(N, D) float32 percentiles")],
    doc="Maps feature values to percentiles by bisection and linear interpolation.",
    gradient=NO_GRADIENT))


@once_per_op
def _table(ctx):
    args = ctx.args
    lengths = np.asarray(args["lengths"], dtype=np.int64)
    columns = [np.asarray(args[name], dtype=np.float32) for name in
               ("percentile_raw", "percentile_mapping", "percentile_lower", "percentile_upper")]
    if any(c.size != columns[0].size for c in columns) or np.any(lengths <= 0) or \
            lengths.sum() != columns[0].size:
        ctx.fail("percentile_raw/_mapping/_lower/_upper must have one entry per table row "
                 "and lengths (each > 0) must add up to them")
    return (lengths, *columns)


@register_kernel("BisectPercentile")
def bisect_percentile(ctx, raw):
    lengths, table, mapping, lower, upper = _table(ctx)
    if getattr(raw, "ndim", 0) != 2 or raw.dtype != np.float32 or raw.shape[1] != lengths.size:
        ctx.fail(f"{ctx.input_label(0)} must be a float32 (N, {lengths.size}) tensor, got "
                 f"{getattr(raw, 'dtype', type(raw).__name__)} {getattr(raw, 'shape', '')}")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    column = np.broadcast_to(np.arange(lengths.size), raw.shape).ravel()
    values = raw.ravel()
    k = segmented_searchsorted(table, lengths, values, column)  # bisect_left in the column
    first, last = starts[column], starts[column] + lengths[column] - 1
    at = np.minimum(first + k, last)
    below = first + np.maximum(k, 1) - 1
    slope = (lower[at] - upper[below]) / np.where(table[at] == table[below], 1,
                                                    table[at] - table[below])
    out = np.where(table[at] == values, mapping[at], upper[below] + slope * (values - table[below]))
    out = np.where(values < table[first], 0.0, np.where(values > table[last], 1.0, out))
    return (out.reshape(raw.shape).astype(np.float32),)
