"""AffineChannel and AffineChannelGradient: a per-channel scale and bias.

After ``caffe2/operators/affine_channel_op.{h,cc}``: ``Y = X * scale[c] + bias[c]``
with channels on axis 1 (``order`` NCHW) or last (NHWC), any rank >= 2 -- the
frozen batch norm of Detectron's backbones.  ``is_learnable`` makes scale and
bias parameters: the gradient then also gives ``dscale = sum(dY * X)`` and
``dbias = sum(dY)`` per channel (and the op may not run in place, since X is
needed for dscale); otherwise only ``dX = dY * scale``.  One NumPy/CuPy body.
"""

import numpy as np

from caffe2lite.operators._storage_order import ORDER_ARG, channel_axis, per_channel_shape
from caffe2lite.runtime import (Arg, OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, same_as)

F32 = np.float32
LEARNABLE_ARG = Arg("is_learnable", "bool", False,
                    "scale and bias are parameters: the gradient also gives dscale and dbias")


def affine_channel_gradient_maker(op_def, g_output):
    """Caffe2's GetAffineChannelGradient: (dY, X, scale) -> (dX, dscale, dbias) when
    learnable, else (dY, scale) -> dX."""
    x, scale, bias = op_def.input
    learnable = any(a.name == "is_learnable" and a.i for a in op_def.arg)
    if learnable:
        outs = [grad_name(x), grad_name(scale), grad_name(bias)]
        return [make_operator("AffineChannelGradient", [g_output[0], x, scale], outs)], outs
    grad_op = make_operator("AffineChannelGradient", [g_output[0], scale], [grad_name(x)])
    return [grad_op], [grad_name(x), None, None]


register_schema(OpSchema(
    "AffineChannel", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)},
    args=[ORDER_ARG, LEARNABLE_ARG], infer_shapes=same_as(0),
    inputs=[("X", "float32 feature map, NCHW or NHWC (rank >= 2)"),
            ("scale", "(C,) per-channel scale"), ("bias", "(C,) per-channel bias")],
    outputs=[("Y", "X * scale + bias per channel, X's shape")],
    doc="Applies a separate affine transformation to each channel of the input. Useful for "
        "replacing spatial batch norm with its equivalent fixed transformation.",
    gradient=affine_channel_gradient_maker))

register_schema(OpSchema(
    "AffineChannelGradient", num_inputs=(2, 3), num_outputs=(1, 3), allow_inplace={(0, 0)},
    num_inputs_outputs=lambda n_in, n_out: (n_in, n_out) in ((2, 1), (3, 3)),
    args=[ORDER_ARG, LEARNABLE_ARG], infer_shapes=lambda ctx, dY, *rest: (
        (dY,) if len(rest) == 1 else (dY, rest[1], rest[1])),
    inputs=[("dY", "gradient of Y"), ("X", "forward input (learnable only), then scale")],
    outputs=[("dX", "dY * scale"), ("dscale", "sum(dY * X) per channel (learnable)"),
             ("dbias", "sum(dY) per channel (learnable)")],
    doc="Gradient of AffineChannel: (dY, scale) -> dX, or (dY, X, scale) -> (dX, dscale, "
        "dbias) with is_learnable."))


def _channel_vector(ctx, i, vec, channels):
    if getattr(vec, "dtype", None) != F32 or vec.ndim != 1 or vec.shape[0] != channels:
        ctx.fail(f"{ctx.input_label(i)} must be a float32 vector of the {channels} channels, "
                 f"got {getattr(vec, 'dtype', type(vec).__name__)} "
                 f"{tuple(getattr(vec, 'shape', ()))}")


def _feature_map(ctx, i, x):
    """Check a float32 map of rank >= 2; return (channel axis, per-channel shape)."""
    if getattr(x, "dtype", None) != F32 or x.ndim < 2:
        ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor of rank >= 2 (N, C, ...), "
                 f"got {getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    axis = channel_axis(ctx, x.ndim)
    return axis, per_channel_shape(x.ndim, axis)


@register_kernel("AffineChannel", devices=("CPU", "CUDA"))
def affine_channel(ctx, X, scale, bias):
    axis, shape = _feature_map(ctx, 0, X)
    _channel_vector(ctx, 1, scale, X.shape[axis])
    _channel_vector(ctx, 2, bias, X.shape[axis])
    if ctx.args["is_learnable"] and ctx.op_def.output[0] == ctx.op_def.input[0]:
        ctx.fail("In-place affine_channel_op is not supported when is_learnable = true.")
    return (X * scale.reshape(shape) + bias.reshape(shape),)


@register_kernel("AffineChannelGradient", devices=("CPU", "CUDA"))
def affine_channel_gradient(ctx, dY, *rest):
    axis, shape = _feature_map(ctx, 0, dY)
    scale = rest[-1]
    _channel_vector(ctx, len(rest), scale, dY.shape[axis])
    dX = dY * scale.reshape(shape)
    if len(rest) == 1:
        return (dX,)
    X = rest[0]
    if getattr(X, "dtype", None) != F32 or tuple(X.shape) != tuple(dY.shape):
        ctx.fail(f"{ctx.input_label(1)} must be float32 of dY's shape {tuple(dY.shape)}, got "
                 f"{getattr(X, 'dtype', type(X).__name__)} {tuple(getattr(X, 'shape', ()))}")
    others = tuple(d for d in range(dY.ndim) if d != axis)
    return dX, (dY * X).sum(axis=others), dY.sum(axis=others)
