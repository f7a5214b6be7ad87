"""LRN and LRNGradient: local response normalisation across channels, as Caffe2's.

For a 4-D X (channels on axis 1 with ``order='NCHW'``, last with 'NHWC'):
``scale[c] = bias + alpha / size * sum(X[c']**2 for c' in window(c))`` and
``Y = X * scale**-beta``, where window(c) is the ``size`` channels
``c - pre_pad .. c - pre_pad + size - 1`` (pre_pad = (size - 1) // 2; channels
outside [0, C) count as 0).  The optional second output is ``scale``.

LRNGradient(X, Y, dY) recomputes scale from X and gives
``dX = dY * scale**-beta - 2 * alpha * beta / size * X * sum over the
channels c'' whose window holds c of (dY * Y / scale)[c'']``.

The window sums are sliding sums over a zero-padded copy: one vectorised add
per window offset (``size`` of them, up to 16; wider windows take a cumulative
sum), never a loop over channels or pixels.
"""

from caffe2lite.operators._storage_order import ORDER_ARG, channel_axis
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)

ARGS = [
    Arg("size", "int", 0, "number of neighbouring channels summed over (must be >= 1)"),
    Arg("alpha", "float", 0.0, "multiplicative factor of the windowed sum of squares"),
    Arg("beta", "float", 0.0, "exponent"),
    Arg("bias", "float", 1.0, "additive factor"),
    ORDER_ARG,
]


def lrn_gradient_maker(op_def, g_output):
    """LRNGradient(X, Y, dY) -> dX, as Caffe2's GetLRNGradient."""
    x = op_def.input[0]
    grad_op = make_operator("LRNGradient",
                            [x, op_def.output[0], dense_output_grad(op_def, g_output)],
                            [grad_name(x)])
    return [grad_op], [grad_name(x)]


register_schema(OpSchema(
    "LRN", num_inputs=1, num_outputs=(1, 2), args=ARGS, infer_shapes=same_as(0, 0),
    inputs=[("X", "4-D float tensor, NCHW or NHWC")],
    outputs=[("Y", "X * scale**-beta"),
             ("Y_scale", "optional: scale = bias + alpha / size * windowed sum of X**2")],
    doc="Local response normalisation across channels: Y = X * (bias + alpha / size * sum of "
        "X**2 over size neighbouring channels)**-beta.",
    gradient=lrn_gradient_maker))

register_schema(OpSchema(
    "LRNGradient", num_inputs=3, num_outputs=1, args=ARGS, infer_shapes=same_as(0),
    inputs=[("X", "input of LRN"), ("Y", "output of LRN"), ("dY", "gradient of Y")],
    outputs=[("dX", "gradient of X")],
    doc="Gradient of LRN with respect to X."))


def _check(ctx, X):
    """(channel axis, size, pre_pad), after checking X and the arguments."""
    if X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {X.dtype}")
    if X.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} must be 4-D (NCHW or NHWC), got shape "
                 f"{tuple(X.shape)}")
    size = ctx.args["size"]
    if size < 1:
        ctx.fail(f"argument 'size' must be >= 1, got {size}")
    return channel_axis(ctx, X.ndim), size, (size - 1) // 2


SHIFTED_ADDS_UP_TO = 16  # window sizes summed by shifted adds; wider ones by a cumsum


def _window_sum(xp, values, axis, size, before, square=False):
    """out[c] = sum(v[c - before + k] for k in range(size)) along ``axis``, zeros outside,
    where v is ``values`` (or its square).

    Channels outside [0, C) add nothing, so the window is first clipped to at most
    C - 1 channels on either side; then a small window is ``size`` shifted adds over a
    zero-padded copy (exact, no cancellation), a wide one a difference of cumulative
    sums in float64.
    """
    C = values.shape[axis]
    after = min(size - 1 - before, C - 1) if C else 0
    before = min(before, C - 1) if C else 0
    size = before + after + 1
    padded_shape = list(values.shape)
    padded_shape[axis] = C + size - 1
    wide = size > SHIFTED_ADDS_UP_TO
    padded = xp.zeros(padded_shape, dtype=xp.float64 if wide else values.dtype)
    index = [slice(None)] * values.ndim

    def channels(start, stop=None):
        index[axis] = slice(start, start + C if stop is None else stop)
        return tuple(index)

    if square:
        xp.multiply(values, values, out=padded[channels(before)], casting="unsafe")
    else:
        padded[channels(before)] = values
    if wide:
        sums = xp.cumsum(padded, axis=axis)
        out = sums[channels(size - 1)].copy()
        out[channels(1, C)] -= sums[channels(0, C - 1)]
        return out.astype(values.dtype)
    out = padded[channels(0)].copy()
    for k in range(1, size):  # at most SHIFTED_ADDS_UP_TO window offsets
        out += padded[channels(k)]
    return out


def _scale(ctx, X, axis, size, pre_pad):
    """bias + alpha / size * (windowed sum of X**2), computed in place in X's dtype."""
    dtype = X.dtype.type
    scale = _window_sum(ctx.xp, X, axis, size, pre_pad, square=True)
    scale *= dtype(ctx.args["alpha"] / size)
    scale += dtype(ctx.args["bias"])
    return scale


@register_kernel("LRN", devices=("CPU", "CUDA"))
def lrn(ctx, X):
    axis, size, pre_pad = _check(ctx, X)
    scale = _scale(ctx, X, axis, size, pre_pad)
    Y = ctx.xp.power(scale, X.dtype.type(-ctx.args["beta"]))
    Y *= X
    return (Y, scale) if len(ctx.op_def.output) == 2 else (Y,)


@register_kernel("LRNGradient", devices=("CPU", "CUDA"))
def lrn_gradient(ctx, X, Y, dY):
    axis, size, pre_pad = _check(ctx, X)
    for i, arr in ((1, Y), (2, dY)):
        if arr.shape != X.shape or arr.dtype != X.dtype:
            ctx.fail(f"{ctx.input_label(i)} is {arr.dtype}{tuple(arr.shape)}, expected X's "
                     f"{X.dtype}{tuple(X.shape)}")
    dtype = X.dtype.type
    scale = _scale(ctx, X, axis, size, pre_pad)
    alpha, beta = ctx.args["alpha"], ctx.args["beta"]
    # The transpose of the forward window: channel c collects from c'' whose window holds c.
    ratios = dY * Y
    ratios /= scale
    ratios = _window_sum(ctx.xp, ratios, axis, size, size - 1 - pre_pad)
    ratios *= X
    ratios *= dtype(2 * alpha * beta / size)
    dX = ctx.xp.power(scale, dtype(-beta))
    dX *= dY
    dX -= ratios
    return (dX,)
