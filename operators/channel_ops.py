"""Per-channel ops on NCHW / NHWC tensors: ChannelShuffle, ChannelStats, NormalizePlanarYUV.

* ChannelShuffle (Caffe2's channel_shuffle_op, ShuffleNet): the C = G * K
  channels, viewed as (G, K), are transposed to (K, G) -- ``group`` is G.  Its
  gradient, ChannelShuffleGradient(dY), undoes the permutation.
* ChannelStats (channel_stats_op): the per-channel sum and sum of squares over
  the batch and every spatial position; no gradient.
* NormalizePlanarYUV (norm_planar_yuv_op): Y = (X - mean[c]) / std[c] on an
  NCHW X, mean and std holding C values; no gradient.
"""

from math import prod

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._storage_order import ORDER_ARG, batch_channel_axis, per_channel_shape
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema, same_as)

SHUFFLE_ARGS = [Arg("group", "int", 1, "G: the channels are viewed as (G, C / G)"), ORDER_ARG]

register_schema(OpSchema(
    "ChannelShuffle", num_inputs=1, num_outputs=1, args=SHUFFLE_ARGS, infer_shapes=same_as(0),
    inputs=[("X", "tensor (N, C, ...) or (N, ..., C)")],
    outputs=[("Y", "X with channel g * K + k moved to k * G + g")],
    doc="ShuffleNet's channel shuffle: the channels, viewed as (group, C / group), are "
        "transposed to (C / group, group).",
    gradient=single_gradient_def("ChannelShuffleGradient", ["GO0"], ["GI0"])))

register_schema(OpSchema(
    "ChannelShuffleGradient", num_inputs=1, num_outputs=1, args=SHUFFLE_ARGS,
    infer_shapes=same_as(0),
    inputs=[("dY", "gradient of ChannelShuffle's output")],
    outputs=[("dX", "dY with the shuffle undone")],
    doc="Gradient of ChannelShuffle: the inverse permutation of the channels."))


def _shuffle(ctx, x, inverse):
    check_float(ctx, 0, x)
    axis = batch_channel_axis(ctx, x)
    c, g = x.shape[axis], ctx.args["group"]
    if g <= 0 or c % g:
        ctx.fail(f"the {c} channels of {ctx.input_label(0)} {tuple(x.shape)} do not split "
                 f"into {g} groups")
    first, second = (c // g, g) if inverse else (g, c // g)
    split = x.reshape(x.shape[:axis] + (first, second) + x.shape[axis + 1:])
    return (ctx.xp.swapaxes(split, axis, axis + 1).reshape(x.shape),)


register_kernel("ChannelShuffle", devices=("CPU", "CUDA"))(
    lambda ctx, x: _shuffle(ctx, x, inverse=False))
register_kernel("ChannelShuffleGradient", devices=("CPU", "CUDA"))(
    lambda ctx, dy: _shuffle(ctx, dy, inverse=True))


def _stats_shapes(ctx, x):
    if x is None:
        return (None, None)
    spec = TensorSpec((x.shape[batch_channel_axis(ctx, x)],), x.dtype)
    return (spec, spec)


register_schema(OpSchema(
    "ChannelStats", num_inputs=1, num_outputs=2, args=[ORDER_ARG], infer_shapes=_stats_shapes,
    gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("X", "float tensor (N, C, ...) or (N, ..., C)")],
    outputs=[("sum", "(C,): the sum of each channel"),
             ("sumsq", "(C,): the sum of squares of each channel")],
    doc="Per-channel sum and sum of squares over the batch and every spatial position."))


@register_kernel("ChannelStats", devices=("CPU", "CUDA"))
def channel_stats(ctx, x):
    check_float(ctx, 0, x)
    axis = batch_channel_axis(ctx, x)
    others = tuple(d for d in range(x.ndim) if d != axis)
    return x.sum(axis=others), (x * x).sum(axis=others)


register_schema(OpSchema(
    "NormalizePlanarYUV", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0), gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("X", "float tensor (N, C, H, W)"), ("mean", "C values, (C,) or (1, C)"),
            ("std", "C values, (C,) or (1, C)")],
    outputs=[("Y", "(X - mean[c]) / std[c]")],
    doc="Per-channel normalisation of an NCHW image batch: Y = (X - mean[c]) / std[c]."))


@register_kernel("NormalizePlanarYUV", devices=("CPU", "CUDA"))
def normalize_planar_yuv(ctx, x, mean, std):
    check_float(ctx, 0, x)
    if x.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} must be 4-D (N, C, H, W)")
    c = x.shape[1]
    for i, v in ((1, mean), (2, std)):
        check_float(ctx, i, v, 0, x)
        if v.size != c or prod(v.shape) != c:
            ctx.fail(f"{ctx.input_label(i)} {tuple(v.shape)} must hold {c} values, one per "
                     f"channel")
    shape = per_channel_shape(4, 1)
    return (((x - mean.reshape(shape)) / std.reshape(shape)).astype(x.dtype, copy=False),)
