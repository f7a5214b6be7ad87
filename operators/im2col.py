"""Im2Col and Col2Im: image patches as columns and back (Caffe2's im2col_op.h).

Im2Col(X) on a 4-D image (N, C, H, W) in NCHW gives (N, C * kh * kw, out_h, out_w):
entry (c * kh * kw + i * kw + j, y, x) is the input under kernel offset (i, j) of
output position (y, x), zero where it falls in the padding.  In NHWC it gives
(N, out_h, out_w, kh * kw * C), offsets before channels.  Sizes follow Caffe2's
convolution rule (kernel, stride, pad, dilation -- the same argument spellings as
Conv), and the image must be at least as large as the dilated kernel.

Col2Im(col, like) sums the columns back onto an image of ``like``'s shape (each
pixel gets the sum of every column entry that read it): the adjoint of Im2Col, so
each is the other's gradient.
"""

from math import prod

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.conv import col2im as channel_first_col2im
from caffe2lite.operators.conv import im2col as channel_first_im2col
from caffe2lite.runtime import (OpSchema, TensorSpec, grad_name, make_operator, once_per_op,
                                register_kernel, register_schema)


def im2col_gradient_maker(op_def, g_output):
    d_x = grad_name(op_def.input[0])
    return [make_operator("Col2Im", [g_output[0], op_def.input[0]], [d_x])], [d_x]


def col2im_gradient_maker(op_def, g_output):
    d_col = grad_name(op_def.input[0])
    return [make_operator("Im2Col", [g_output[0]], [d_col])], [d_col, None]


_ARGS = geo.WINDOW_ARGS + geo.DILATION_ARGS


@once_per_op
def _window(ctx):
    window = geo.parse(ctx)
    if len(window.kernel) != 2:
        ctx.fail(f"Im2Col and Col2Im take a 2-D kernel, got {list(window.kernel)}")
    return window


def _resolved(ctx, shape, i):
    window = _window(ctx)
    if len(shape) != 4:
        ctx.fail(f"{ctx.input_label(i)} must be a 4-D image ({window.order}), got shape "
                 f"{tuple(shape)}")
    res = geo.resolve(ctx, window, shape, ctx.input_label(i))
    spread = [d * (k - 1) + 1 for k, d in zip(res.kernel, res.dilation)]
    if any(size < s for size, s in zip(res.in_dims, spread)):
        ctx.fail(f"{ctx.input_label(i)} {tuple(shape)} is smaller than the dilated kernel "
                 f"{spread}")
    return window, res


def _im2col_shapes(ctx, x):
    if x is None:
        return (None,)
    window, res = _resolved(ctx, x.shape, 0)
    k = prod(res.kernel)
    if window.channels_last:
        return (TensorSpec((x.shape[0],) + res.out_dims + (k * x.shape[3],), x.dtype),)
    return (TensorSpec((x.shape[0], k * x.shape[1]) + res.out_dims, x.dtype),)


register_schema(OpSchema(
    "Im2Col", num_inputs=1, num_outputs=1, infer_shapes=_im2col_shapes,
    inputs=[("X", "4-D float image")],
    outputs=[("Y", "its patches as columns: (N, C*kh*kw, oh, ow) or (N, oh, ow, kh*kw*C)")],
    args=_ARGS, doc="The im2col matrix of each image (Conv's patches).",
    gradient=im2col_gradient_maker))

register_schema(OpSchema(
    "Col2Im", num_inputs=2, num_outputs=1,
    infer_shapes=lambda ctx, col, like: (None if like is None or col is None
                                         else TensorSpec(like.shape, col.dtype),),
    inputs=[("X", "columns as Im2Col makes them"), ("Z", "an image of the output shape")],
    outputs=[("Y", "the columns summed back onto an image of Z's shape")],
    args=_ARGS, doc="The adjoint of Im2Col.", gradient=col2im_gradient_maker))


def _check_float(ctx, i, value):
    if value.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got {value.dtype}")


@register_kernel("Im2Col", devices=("CPU", "CUDA"))
def im2col(ctx, x):
    xp = ctx.xp
    _check_float(ctx, 0, x)
    window, res = _resolved(ctx, x.shape, 0)
    n, k = x.shape[0], prod(res.kernel)
    if not window.channels_last:
        return (channel_first_im2col(xp, x, res, 1).reshape((n, k * x.shape[1]) + res.out_dims),)
    axes = (1, 2)
    padded = geo.pad_spatial(xp, x, axes, res.heads, res.tails)
    view = geo.window_view(xp, padded, axes, res)  # (N, oh, ow, C, kh, kw)
    cols = xp.ascontiguousarray(view.transpose(0, 1, 2, 4, 5, 3))
    return (cols.reshape((n,) + res.out_dims + (k * x.shape[3],)),)


@register_kernel("Col2Im", devices=("CPU", "CUDA"))
def col2im(ctx, col, like):
    xp = ctx.xp
    _check_float(ctx, 0, col)
    window, res = _resolved(ctx, like.shape, 1)
    n = like.shape[0]
    c = like.shape[3] if window.channels_last else like.shape[1]
    if col.size != n * prod(res.kernel) * c * prod(res.out_dims):
        ctx.fail(f"{ctx.input_label(0)} has {col.size} values, but an image of "
                 f"{tuple(like.shape)} has {n * prod(res.kernel) * c * prod(res.out_dims)} "
                 f"column entries")
    if not window.channels_last:
        dcol = col.reshape((n, c) + res.kernel + res.out_dims)
        return (channel_first_col2im(xp, dcol, res, tuple(like.shape)),)
    dcol = col.reshape((n,) + res.out_dims + res.kernel + (c,)).transpose(0, 5, 3, 4, 1, 2)
    image = channel_first_col2im(xp, dcol, res, (n, c) + res.in_dims)
    return (xp.ascontiguousarray(image.transpose(0, 2, 3, 1)),)
