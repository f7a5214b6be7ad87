"""PRelu and PReluGradient: a leaky relu with a learned slope, shared or per channel.

Y = X where X > 0, W * X elsewhere; W holds one slope (shared by every element)
or one per channel (axis 1 for order NCHW, the last axis for NHWC).  The
gradient, ``PReluGradient(Y, dY, X, W) -> (dX, dW)`` as Caffe2's maker built it,
is dX = dY where X > 0, W * dY elsewhere, and dW = the sum of dY * X over the
elements X <= 0 of each channel (of all, when shared).
"""

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._storage_order import ORDER_ARG, channel_axis, per_channel_shape
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import OpSchema, register_kernel, register_schema, same_as

register_schema(OpSchema(
    "PRelu", num_inputs=2, num_outputs=1, allow_inplace={(0, 0)}, args=[ORDER_ARG],
    infer_shapes=same_as(0),
    inputs=[("X", "float tensor"), ("Slope", "1 or C slopes, X's dtype")],
    outputs=[("Y", "X where X > 0, Slope * X elsewhere")],
    doc="Parametric relu: Y = numpy.where(X > 0, X, W * X), W shared (one element) or "
        "broadcast along the channel axis (order NCHW: axis 1, NHWC: the last).",
    gradient=single_gradient_def("PReluGradient", ["O0", "GO0", "I0", "I1"], ["GI0", "GI1"])))

register_schema(OpSchema(
    "PReluGradient", num_inputs=4, num_outputs=2, args=[ORDER_ARG], infer_shapes=same_as(2, 3),
    inputs=[("Y", "PRelu's output"), ("dY", "gradient of Y"), ("X", "PRelu's input"),
            ("Slope", "PRelu's slopes")],
    outputs=[("dX", "dY where X > 0, Slope * dY elsewhere"),
             ("dSlope", "sum of dY * X over X <= 0, per channel or shared")],
    doc="Gradient of PRelu with respect to X and the slopes."))


def _slopes(ctx, x, w, x_index, w_index):
    """W viewed to broadcast against X, and the axes dW sums over."""
    check_float(ctx, x_index, x)
    check_float(ctx, w_index, w, x_index, x)
    if w.ndim != 1:
        ctx.fail(f"{ctx.input_label(w_index)} {tuple(w.shape)} must be a vector of slopes")
    if w.size == 1:
        return w.reshape(()), tuple(range(x.ndim))
    if x.ndim < 2:
        ctx.fail(f"{ctx.input_label(x_index)} {tuple(x.shape)} has no channel axis for "
                 f"{w.size} slopes (give one shared slope)")
    axis = channel_axis(ctx, x.ndim)
    if w.size != x.shape[axis]:
        ctx.fail(f"{ctx.input_label(w_index)} has {w.size} slopes; {ctx.input_label(x_index)} "
                 f"{tuple(x.shape)} has {x.shape[axis]} channels (order {ctx.args['order']})")
    return w.reshape(per_channel_shape(x.ndim, axis)), tuple(d for d in range(x.ndim)
                                                             if d != axis)


@register_kernel("PRelu", devices=("CPU", "CUDA"))
def prelu(ctx, x, w):
    slope, _ = _slopes(ctx, x, w, 0, 1)
    return (ctx.xp.where(x > 0, x, x * slope).astype(x.dtype, copy=False),)


@register_kernel("PReluGradient", devices=("CPU", "CUDA"))
def prelu_gradient(ctx, y, dy, x, w):
    slope, sum_axes = _slopes(ctx, x, w, 2, 3)
    for i, v in ((0, y), (1, dy)):
        if v.shape != x.shape:
            ctx.fail(f"{ctx.input_label(i)} {tuple(v.shape)} must have X's shape "
                     f"{tuple(x.shape)}")
        check_float(ctx, i, v, 2, x)
    xp = ctx.xp
    positive = x > 0
    dx = xp.where(positive, dy, dy * slope).astype(x.dtype, copy=False)
    dw = xp.where(positive, 0, dy * x).sum(axis=sum_axes).reshape(w.shape).astype(w.dtype)
    return dx, dw
