"""Histogram and SelfBinningHistogram: counts of the values of all inputs in bins
(Caffe2's histogram_op.h and self_binning_histogram_op.h).

* Histogram(X1, X2, ..., bin_edges=[...]): int64 counts of len(bin_edges) - 1 bins;
  bin k holds edges[k] <= x < edges[k + 1] (std::upper_bound); values outside all bins
  are not counted.  Edges: at least 2, strictly increasing.
* SelfBinningHistogram(X1, ..., num_bins, bin_spacing, logspace_start): the edges are
  chosen from the data -- num_bins + 1 of them from min to min + 1.0001 * (max - min),
  linearly or geometrically spaced ("logarithmic": min and max first raised to at least
  logspace_start; with ``abs`` the absolute values are binned) -- and output 0 holds them (in X's dtype), output 1 the int64 counts
  (the last count is always 0; values below the first edge count in bin 0).  When all
  values are equal the last edge becomes the scaled max and bin 0 holds everything.
All inputs share one float dtype.  Vectorised: one searchsorted and one bincount.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, once_per_op,
                                register_kernel, register_schema)

RANGE_SCALING = 1.0001  # Caffe2's: the top edge sits just above the max

register_schema(OpSchema(
    "Histogram", num_inputs=(1, None), num_outputs=1,
    infer_shapes=lambda ctx, *xs: (TensorSpec((max(len(ctx.args["bin_edges"]) - 1, 0),),
                                              np.int64),),
    inputs=[("X", "float/double tensors (one or more, one dtype)")],
    outputs=[("histogram", "int64 counts per bin")],
    args=[Arg("bin_edges", "floats", [], "strictly increasing bin edges (at least 2)")],
    doc="Counts the values of all inputs in bins [edge_k, edge_k+1).", gradient=NO_GRADIENT))

register_schema(OpSchema(
    "SelfBinningHistogram", num_inputs=(1, None), num_outputs=2,
    inputs=[("X", "float/double tensors (one or more, one dtype)")],
    outputs=[("histogram_values", "num_bins + 1 bin edges, X's dtype"),
             ("histogram_counts", "int64 counts per edge (the last is 0)")],
    args=[Arg("num_bins", "int", 0, "number of bins (>= 1)"),
          Arg("bin_spacing", "string", "linear", "'linear' or 'logarithmic'"),
          Arg("logspace_start", "float", 1e-24, "smallest edge with logarithmic spacing "
                                                "(> 0)"),
          Arg("abs", "bool", False, "bin the absolute values")],
    doc="A histogram whose bins span the data's own range.", gradient=NO_GRADIENT))


def _values(ctx, inputs):
    """All inputs flattened into one vector of their common float dtype."""
    first = inputs[0].dtype
    if first not in (np.float32, np.float64):
        ctx.fail(f"{ctx.input_label(0)} must be float or double, got {first}")
    for i, x in enumerate(inputs[1:], 1):
        if x.dtype != first:
            ctx.fail(f"All inputs must have the same type; expected {first} but got "
                     f"{x.dtype} for {ctx.input_label(i)}")
    return ctx.xp.concatenate([x.reshape(-1) for x in inputs])


@once_per_op
def _bin_edges(ctx):
    edges = np.asarray(ctx.args["bin_edges"], np.float32)
    if edges.size < 2:
        ctx.fail("Number of bin edges must be greater than or equal to 2.")
    if not bool((edges[1:] > edges[:-1]).all()):
        ctx.fail("bin_edges must be a strictly increasing sequence of values.")
    return edges


def _count(xp, edges, values):
    """Counts per bin [edges[k], edges[k+1]) -- std::upper_bound, then index - 1."""
    position = xp.searchsorted(edges, values, side="right")
    inside = (position > 0) & (position < edges.shape[0])
    return xp.bincount(position[inside] - 1, minlength=edges.shape[0] - 1).astype(np.int64)


@register_kernel("Histogram", devices=("CPU", "CUDA"))
def histogram(ctx, *inputs):
    edges = _bin_edges(ctx)
    values = _values(ctx, inputs)
    return (_count(ctx.xp, ctx.xp.asarray(edges, values.dtype), values),)


@once_per_op
def _self_binning_args(ctx):
    num_bins, spacing = ctx.args["num_bins"], ctx.args["bin_spacing"]
    if num_bins < 1:
        ctx.fail("Number of bins must be greater than or equal to 1.")
    if spacing not in ("linear", "logarithmic"):
        ctx.fail(f"bin_spacing must be 'linear' or 'logarithmic', got '{spacing}'")
    if not ctx.args["logspace_start"] > 0:
        ctx.fail("logspace_start must be > 0: logarithmic spacing multiplies from it")
    return num_bins, spacing


@register_kernel("SelfBinningHistogram", devices=("CPU", "CUDA"))
def self_binning_histogram(ctx, *inputs):
    xp = ctx.xp
    num_bins, spacing = _self_binning_args(ctx)
    values = _values(ctx, inputs)
    if ctx.args["abs"]:
        values = xp.abs(values)
    t = values.dtype.type
    if values.size == 0:
        return xp.zeros(num_bins + 1, values.dtype), xp.zeros(num_bins + 1, np.int64)
    low, high = values.min(), values.max()
    ratio = xp.arange(num_bins + 1, dtype=values.dtype) / t(num_bins)
    if spacing == "linear":
        scaled_max = low + (high - low) * t(RANGE_SCALING)
        edges = low + ratio * (scaled_max - low)
    else:
        start = t(ctx.args["logspace_start"])
        low, high = max(low, start), max(high, start)
        scaled_max = low + (high - low) * t(RANGE_SCALING)
        edges = low * xp.exp((xp.log(scaled_max) - xp.log(low)) * ratio)
    edges = edges.astype(values.dtype)
    if edges[-1] <= high:  # min == max (or underflow): no top edge above the max
        edges[-1] = scaled_max
        counts = xp.zeros(num_bins + 1, np.int64)
        counts[0] = values.size
        return edges, counts
    counts = xp.zeros(num_bins + 1, np.int64)
    counts[:num_bins] = _count(xp, edges, values)
    counts[0] += int((values < edges[0]).sum())  # below the first edge (logarithmic)
    return edges, counts
