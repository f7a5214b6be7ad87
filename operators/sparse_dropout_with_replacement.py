"""SparseDropoutWithReplacement: whole examples of a sparse feature dropped at random.

X holds int64 ids, LENGTHS (int32) how many belong to each example.  Each example is
kept with probability ``1 - ratio``; a dropped one (even an empty one) becomes the
single id ``replacement_value``, its length 1.  The draws come from the op's generator
(``DeviceOption.random_seed`` repeats them)."""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "SparseDropoutWithReplacement", num_inputs=2, num_outputs=2,
    args=[Arg("ratio", "float", 0.0, "probability of dropping an example"),
          Arg("replacement_value", "int", 0, "the id a dropped example becomes")],
    inputs=[("X", "int64 ids"), ("Lengths", "int32 ids per example")],
    outputs=[("Y", "int64 ids"), ("OutputLengths", "int32 ids per example")],
    doc="Replaces whole examples of a sparse feature, with probability ratio, by one id.",
    gradient=NO_GRADIENT))


@register_kernel("SparseDropoutWithReplacement")
def sparse_dropout_with_replacement(ctx, x, lengths):
    if getattr(x, "ndim", 0) != 1 or x.dtype != np.int64:
        ctx.fail(f"{ctx.input_label(0)} should be a 1-D int64 tensor")
    if getattr(lengths, "ndim", 0) != 1 or lengths.dtype != np.int32:
        ctx.fail(f"{ctx.input_label(1)} should be a 1-D int32 tensor")
    if np.any(lengths < 0) or int(lengths.sum()) != x.size:
        ctx.fail("Inconsistent input data. Number of elements should match total length.")
    ratio = ctx.args["ratio"]
    keep = ctx.rng.random(lengths.size) >= ratio if ratio > 0 else \
        np.ones(lengths.size, bool)
    out_lengths = np.where(keep, lengths, 1).astype(np.int32)
    kept_ids = x[np.repeat(keep, lengths)]
    # Each dropped example's replacement goes where its ids were: before the kept ids of
    # the examples after it.
    position = np.cumsum(out_lengths) - out_lengths
    y = np.empty(int(out_lengths.sum()), np.int64)
    slots = np.zeros(y.size, bool)
    slots[position[~keep]] = True
    y[slots] = ctx.args["replacement_value"]
    y[~slots] = kept_ids
    return y, out_lengths
