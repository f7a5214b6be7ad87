"""ChannelBackpropStats (caffe2/operators/channel_backprop_stats_op.*).

From SpatialBN's input X (N, C, H[, W[, D]]), its saved mean and inverse std per
channel and the output gradient dY, the per-channel gradients of SpatialBN's scale
and bias: dscale[c] = sum((X - mean[c]) * inv_std[c] * dY) and dbias[c] = sum(dY),
over every element of channel c (to be reduced across devices before
SpatialBNGradient, for batches too small on one device).  float32, as in Caffe2.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _shapes(ctx, x, mean, inv_std, dy):
    if x is None or not 3 <= x.ndim <= 5:
        return (None, None)
    spec = TensorSpec((x.shape[1],), np.float32)
    return spec, spec


register_schema(OpSchema(
    "ChannelBackpropStats", num_inputs=4, num_outputs=2, infer_shapes=_shapes,
    inputs=[("X", "float32 input of SpatialBN, NCHW (3 to 5 dimensions)"),
            ("mean", "float32 (C,) mean saved by the forward pass"),
            ("inv_std", "float32 (C,) inverse standard deviation saved by the forward pass"),
            ("output_grad", "float32 gradient of SpatialBN's output, X's shape")],
    outputs=[("scale_grad", "(C,) gradient of the scale"),
             ("bias_grad", "(C,) gradient of the bias")],
    doc="Given an input tensor in NCHW format, the gradient for the output of SpatialBN and "
        "the per-channel mean and inverse std var vectors for the input, computes the "
        "per-channel bias and scale gradient to be used during the backward pass for "
        "subsequent spatial batch normalization gradient calculation.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("ChannelBackpropStats", devices=("CPU", "CUDA"))
def channel_backprop_stats(ctx, x, mean, inv_std, dy):
    if x.dtype != np.float32 or not 3 <= x.ndim <= 5:
        ctx.fail_input(0, f"must be a float32 NCHW tensor of 3 to 5 dimensions, got {x.dtype} "
                          f"of shape {tuple(x.shape)}")
    c = x.shape[1]
    for i, stat in ((1, mean), (2, inv_std)):
        if stat.dtype != np.float32 or stat.size != c:
            ctx.fail_input(i, f"must hold {c} float32 values (one per channel of "
                              f"{ctx.input_label(0)}), got {stat.dtype} of shape "
                              f"{tuple(stat.shape)}")
    if dy.dtype != np.float32 or dy.shape != x.shape:
        ctx.fail_input(3, f"must be float32 of {ctx.input_label(0)}'s shape {tuple(x.shape)}, "
                          f"got {dy.dtype} of shape {tuple(dy.shape)}")
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    centred = (x - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
    return ((centred * dy).sum(axis=axes, dtype=np.float32),
            dy.sum(axis=axes, dtype=np.float32))
