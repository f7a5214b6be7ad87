"""MaxPool and AveragePool (and their 1D/2D/3D names) with their gradients.

Y at each output position is the max (or mean) of X over the window at
``o * stride - pad_head`` spanning the kernel, per channel, in NCHW or NHWC
(ConvPoolOpBase's arguments and padding rules, operators/_conv_geometry.py).
As in Caffe2: padding never wins a max; an average divides by the number of
input elements inside the window unless ``count_include_pad`` is set (then by
the full kernel size); ``global_pooling`` pools each whole image to 1 x 1;
MaxPoolGradient gives dY to every element equal to the window's max (ties all
receive it).

The forward kernels reduce one spatial axis at a time (3 + 3 strided-slice
steps for a 3x3 window; max and sum are separable), the gradients add one
strided slice per kernel offset: no loop over pixels, channels or images.
"""

from math import prod

import numpy as np

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators import _parallel
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema,
                                same_as)

POOL_ARGS = geo.WINDOW_ARGS + geo.DILATION_ARGS + [
    Arg("global_pooling", "bool", False, "pool each whole image to 1 x 1 (the kernel is "
                                         "the input's spatial size)"),
    geo.GROUP_ARG,
] + geo.IGNORED_ARGS
AVERAGE_ARGS = POOL_ARGS + [Arg("count_include_pad", "bool", False,
                                "divide by the full kernel size, padding included, instead "
                                "of the number of input elements in the window")]
KINDS = {"MaxPool": POOL_ARGS, "AveragePool": AVERAGE_ARGS}
SUFFIXES = ("", "1D", "2D", "3D")


def pool_gradient_maker(op_def, g_output):
    """Caffe2's GetPoolGradient: <type>Gradient(X, Y, dY) -> dX."""
    x = op_def.input[0]
    grad_op = make_operator(op_def.type + "Gradient",
                            [x, op_def.output[0], dense_output_grad(op_def, g_output)],
                            [grad_name(x)])
    return [grad_op], [grad_name(x)]


@once_per_op
def _window(ctx):
    return geo.parse(ctx, pooling=True)


def _checked(ctx, X):
    window = _window(ctx)
    if getattr(X, "dtype", None) is None or X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got "
                 f"{getattr(X, 'dtype', type(X).__name__)}")
    res = geo.resolve(ctx, window, X.shape)
    channels = X.shape[-1] if window.channels_last else X.shape[1]
    return window, res, geo.output_shape(window, res, X.shape[0], channels)


def _pool_shapes(ctx, X):
    if X is None:
        return (None,)
    window = geo.parse(ctx, pooling=True)
    res = geo.resolve(ctx, window, X.shape)
    channels = X.shape[-1] if window.channels_last else X.shape[1]
    return (TensorSpec(geo.output_shape(window, res, X.shape[0], channels), X.dtype),)


def _window_counts(xp, res, axes, ndim, count_include_pad, dtype):
    """1 / (elements averaged) per output position, shaped to broadcast against Y."""
    if count_include_pad:
        return xp.asarray(1.0 / prod(res.kernel), dtype=dtype)
    counts = xp.ones((1,) * ndim, dtype=dtype)
    for ax, n, k, s, h, size in zip(axes, res.out_dims, res.kernel, res.stride, res.heads,
                                    res.in_dims):
        starts = xp.arange(n) * s - h
        inside = xp.minimum(starts + k, size) - xp.maximum(starts, 0)
        shape = [1] * ndim
        shape[ax] = n
        counts = counts * inside.reshape(shape).astype(dtype)
    return 1 / counts


def _separable(xp, X, window, res, fill, combine):
    """combine() over every window, one spatial axis at a time: a 3x3 window is 3 + 3
    whole-array steps instead of 9, and the steps along outer axes read whole
    contiguous rows.  Exact for max and sum (both are separable)."""
    axes = geo.spatial_axes(window, X.ndim)
    arr = geo.pad_spatial(xp, X, axes, res.heads, res.tails, fill)
    for ax, k, s, d, n in zip(axes, res.kernel, res.stride, res.dilation, res.out_dims):
        steps = [_along(arr, ax, offset * d, s, n) for offset in range(k)]
        out = steps[0].copy() if k == 1 else combine(steps[0], steps[1])
        for step in steps[2:]:
            combine(out, step, out=out)
        arr = out
    return arr


def _along(arr, axis, start, stride, count):
    """The view of ``arr`` taking ``count`` entries from ``start`` every ``stride`` along
    ``axis``."""
    index = [slice(None)] * arr.ndim
    index[axis] = slice(start, start + stride * (count - 1) + 1, stride)
    return arr[tuple(index)]


# Elements of X per piece of a pooling shared out over threads: a few channels of the
# batch, small enough to stay in cache between the separable passes.
POOL_PIECE_ELEMENTS = 1 << 17


def _by_channels(xp, X, window, out_shape, pool):
    """pool(X_part) for ranges of channels, on operators/_parallel.py's threads, into one
    output (NCHW NumPy arrays large enough to share out; else pool(X) whole).  Channels
    are independent: the same bits."""
    C = X.shape[1] if X.ndim > 1 else 0
    per_channel = X.size // C if C else 0
    if xp is not np or window.channels_last or not per_channel or \
            X.size < 8 * POOL_PIECE_ELEMENTS:
        return pool(X)
    step = max(1, POOL_PIECE_ELEMENTS // per_channel)
    Y = np.empty(out_shape, X.dtype)

    def run(first, stop):
        lo, hi = first * step, min(C, stop * step)
        Y[:, lo:hi] = pool(X[:, lo:hi])

    _parallel.for_each_range(run, -(-C // step), _parallel.threads_beside_blas())
    return Y


def max_pool(ctx, X):
    xp = ctx.xp
    window, res, out_shape = _checked(ctx, X)
    if window.global_pooling:
        return (X.max(axis=geo.spatial_axes(window, X.ndim), keepdims=True),)
    return (_by_channels(xp, X, window, out_shape,
                         lambda part: _separable(xp, part, window, res, -xp.inf, xp.maximum)),)


def average_pool(ctx, X):
    xp = ctx.xp
    window, res, out_shape = _checked(ctx, X)
    axes = geo.spatial_axes(window, X.ndim)
    if window.global_pooling:
        return (X.mean(axis=axes, keepdims=True, dtype=X.dtype),)
    scale = _window_counts(xp, res, axes, X.ndim, ctx.args["count_include_pad"], X.dtype)

    def pool(part):
        Y = _separable(xp, part, window, res, 0, xp.add)
        Y *= scale
        return Y

    return (_by_channels(xp, X, window, out_shape, pool),)


def _check_gradient_inputs(ctx, X, dY, expected, Y=None):
    for i, arr in ((1, Y), (2, dY)):
        if arr is not None and (tuple(arr.shape) != expected or arr.dtype != X.dtype):
            ctx.fail(f"{ctx.input_label(i)} is {arr.dtype}{tuple(arr.shape)}, expected "
                     f"{X.dtype}{expected} (the pooled output's shape)")


def _scatter(xp, X, window, res, contribution):
    """dX from adding ``contribution(index)`` into each kernel offset's window."""
    axes = geo.spatial_axes(window, X.ndim)
    padded_shape = list(X.shape)
    for ax, h, t in zip(axes, res.heads, res.tails):
        padded_shape[ax] += h + t  # a negative pad cuts
    dXp = xp.zeros(tuple(padded_shape), dtype=X.dtype)
    for offset in geo.offsets(res.kernel):
        where = geo.window_slices(axes, X.ndim, offset, res.dilation, res.stride,
                                  res.out_dims)
        dXp[where] += contribution(where)
    return geo.unpad_spatial(xp, dXp, axes, res.heads, res.tails, X.shape)


def max_pool_gradient(ctx, X, Y, dY):
    xp = ctx.xp
    window, res, expected = _checked(ctx, X)
    _check_gradient_inputs(ctx, X, dY, expected, Y)
    if window.global_pooling:
        return (xp.where(X == Y, dY, xp.zeros((), X.dtype)),)
    axes = geo.spatial_axes(window, X.ndim)
    padded = geo.pad_spatial(xp, X, axes, res.heads, res.tails, -xp.inf)
    zero = xp.zeros((), X.dtype)
    return (_scatter(xp, X, window, res,
                     lambda where: xp.where(padded[where] == Y, dY, zero)),)


def average_pool_gradient(ctx, X, Y, dY):
    xp = ctx.xp
    window, res, expected = _checked(ctx, X)
    _check_gradient_inputs(ctx, X, dY, expected)
    axes = geo.spatial_axes(window, X.ndim)
    if window.global_pooling:
        scale = 1.0 / prod(X.shape[ax] for ax in axes)
        return (xp.broadcast_to(dY * X.dtype.type(scale), X.shape).copy(),)
    scaled = dY * _window_counts(xp, res, axes, X.ndim, ctx.args["count_include_pad"],
                                 X.dtype)
    return (_scatter(xp, X, window, res, lambda where: scaled),)


KERNELS = {"MaxPool": (max_pool, max_pool_gradient),
           "AveragePool": (average_pool, average_pool_gradient)}
for _kind, _args in KINDS.items():
    what = "maximum" if _kind == "MaxPool" else "mean"
    for _suffix in SUFFIXES:
        _type = _kind + _suffix
        register_schema(OpSchema(
            _type, num_inputs=1, num_outputs=1, args=_args, infer_shapes=_pool_shapes,
            inputs=[("X", "input: (N, C, *spatial) under NCHW, (N, *spatial, C) under NHWC")],
            outputs=[("Y", f"the {what} of each window, per channel: (N, C, *out) or "
                           f"(N, *out, C)")],
            doc=f"{_type}: the {what} of X over each sliding window, per image and "
                f"channel (1-D, 2-D or 3-D as the kernel arguments say).  Caffe2's kernel, "
                f"stride and pad arguments, legacy_pad rules and global_pooling."
                + (" count_include_pad divides by the full kernel size." if
                   _kind == "AveragePool" else " Padding never wins."),
            gradient=pool_gradient_maker))
        register_schema(OpSchema(
            _type + "Gradient", num_inputs=3, num_outputs=1, args=_args,
            infer_shapes=same_as(0),
            inputs=[("X", f"input of {_type}"), ("Y", f"output of {_type}"),
                    ("dY", "gradient of Y")],
            outputs=[("dX", "gradient of X")],
            doc=f"Gradient of {_type}: "
                + ("dY goes to every element of a window equal to its max." if
                   _kind == "MaxPool" else "dY spread evenly over each window's "
                                           "counted elements.")))
        forward, backward = KERNELS[_kind]
        register_kernel(_type, devices=("CPU", "CUDA"))(forward)
        register_kernel(_type + "Gradient", devices=("CPU", "CUDA"))(backward)
