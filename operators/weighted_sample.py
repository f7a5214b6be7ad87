"""WeightedSample and WeightedMultiSampling: indices drawn in proportion to weights
(Caffe2's weighted_sample_op.cc and weighted_multi_sampling_op.cc).

WeightedSample(weights (N, K)[, values (N, K)]): for each row, index i is drawn with
probability weights[i] / sum(weights) -- a uniform r in [0, sum) and the first index
whose running sum reaches r (std::lower_bound; the last running sum is nudged up by
0.01, as Caffe2 did, so rounding cannot lose the top) -- as int32, plus values[row, i].
An empty batch or row width gives empty outputs.

WeightedMultiSampling(weights[, shape_tensor], num_samples): num_samples (or
shape_tensor's shape of) int32 indices drawn the same way from one weight vector;
empty weights give an empty output.  Both draw from the op's RNG (device_option's
random_seed).
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, check_allocation,
                                register_kernel, register_schema)

ROUNDING_SLACK = 0.01  # added to the top of the running sum, as Caffe2 did

register_schema(OpSchema(
    "WeightedSample", num_inputs=(1, 2), num_outputs=(1, 2),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out,
    inputs=[("sampling_weights", "float (N, K) non-negative weights"),
            ("sampling_values", "optional float (N, K) values to pick from")],
    outputs=[("sampled_indexes", "int32 (N,): the drawn index of each row"),
             ("sampled_values", "optional float (N,): values[row, index]")],
    doc="Draws one index per row in proportion to the row's weights.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "WeightedMultiSampling", num_inputs=(1, 2), num_outputs=1,
    inputs=[("sampling_weights", "float vector of non-negative weights"),
            ("shape_tensor", "optional: the output takes its shape")],
    outputs=[("sampled_indexes", "int32 indices drawn in proportion to the weights")],
    args=[Arg("num_samples", "int", 0, "how many indices to draw (without shape_tensor)")],
    doc="Draws indices, with replacement, in proportion to one weight vector.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def draw(ctx, weights, count):
    """``count`` indices per row of the 2-D ``weights``: (rows, count) int32."""
    cum = np.cumsum(weights.astype(np.float32), axis=1, dtype=np.float32)
    top = cum[:, -1:].copy()
    cum[:, -1] += np.float32(ROUNDING_SLACK)
    r = ctx.rng.random((weights.shape[0], count), dtype=np.float32) * top
    if weights.shape[0] == 1:  # many draws from one vector: a binary search each
        return np.searchsorted(cum[0], r[0], side="left").astype(np.int32).reshape(1, count)
    # one draw per row: lower_bound as the number of running sums below r
    return (cum[:, None, :] < r[:, :, None]).sum(axis=2).astype(np.int32)


def _check_weights(ctx, weights, ndim):
    if weights.ndim != ndim or weights.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a {ndim}-D float tensor, got {weights.dtype} "
                 f"of shape {tuple(weights.shape)}")
    if weights.size and not bool((weights >= 0).all()):
        ctx.fail(f"{ctx.input_label(0)} holds a negative weight")


@register_kernel("WeightedSample", devices=("CPU",))
def weighted_sample(ctx, weights, values=None):
    _check_weights(ctx, weights, 2)
    if values is not None and values.shape != weights.shape:
        ctx.fail(f"{ctx.input_label(1)} {tuple(values.shape)} must have the shape of "
                 f"{ctx.input_label(0)} {tuple(weights.shape)}")
    if weights.size == 0:
        empty = (np.empty(0, np.int32),)
        return empty if values is None else empty + (np.empty(0, values.dtype),)
    index = draw(ctx, weights, 1)[:, 0]
    if values is None:
        return (index,)
    return index, values[np.arange(weights.shape[0]), index]


@register_kernel("WeightedMultiSampling", devices=("CPU",))
def weighted_multi_sampling(ctx, weights, shape_like=None):
    _check_weights(ctx, weights, 1)
    shape = tuple(shape_like.shape) if shape_like is not None else (ctx.args["num_samples"],)
    if any(d < 0 for d in shape):
        ctx.fail(f"argument 'num_samples' must be >= 0, got {shape[0]}")
    if weights.size == 0:
        return (np.empty(0, np.int32),)
    count = int(np.prod(shape, dtype=np.int64))
    check_allocation(ctx, (count,), 8, ctx.input_label(1) if shape_like is not None
                     else "argument 'num_samples'")
    return (draw(ctx, weights.reshape(1, -1), count).reshape(shape),)
