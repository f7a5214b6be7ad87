"""LpPool and LpPoolGradient: the L_p norm of each pooling window, per channel.

Y = (sum over the window's input elements of |x|^p)^(1/p), with Caffe2's
ConvPoolOpBase arguments (kernel, stride, pads, legacy_pad, global_pooling,
order) and ``p`` (default 2.0); padding adds nothing to the sum.  The gradient
is Caffe2's: dX = sum over the windows holding x of dY * x * |x|^(p-2) / Y^(p-1).
Both reuse MaxPool's window machinery: |X|^p is summed one spatial axis at a
time.
"""

import contextlib
import math

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.pool import (POOL_ARGS, _check_gradient_inputs, _checked, _pool_shapes,
                                       _scatter, _separable, pool_gradient_maker)
from caffe2lite.runtime import (Arg, OpSchema, once_per_op, register_kernel, register_schema,
                                same_as)

LP_ARGS = POOL_ARGS + [Arg("p", "float", 2.0, "the norm's order, > 0 (2: Euclidean)")]


@once_per_op
def _order(ctx):
    p = ctx.args["p"]
    if not (math.isfinite(p) and p > 0):
        ctx.fail(f"argument 'p' must be a positive finite number, got {p}")
    return p


def lp_pool(ctx, X):
    xp = ctx.xp
    p = _order(ctx)
    window, res, _ = _checked(ctx, X)
    powered = xp.abs(X) ** X.dtype.type(p)
    if window.global_pooling:
        total = powered.sum(axis=geo.spatial_axes(window, X.ndim), keepdims=True)
    else:
        total = _separable(xp, powered, window, res, 0, xp.add)
    return (total ** X.dtype.type(1 / p),)


def lp_pool_gradient(ctx, X, Y, dY):
    xp = ctx.xp
    p = _order(ctx)
    window, res, expected = _checked(ctx, X)
    _check_gradient_inputs(ctx, X, dY, expected, Y)
    with _quiet(xp):  # x = 0 with p < 2, or an all-zero window, give inf/nan as in Caffe2
        per_output = dY / Y ** X.dtype.type(p - 1)
        local = X * xp.abs(X) ** X.dtype.type(p - 2)
    if window.global_pooling:
        return (per_output * local,)
    return (_scatter(xp, X, window, res, lambda where: per_output) * local,)


def _quiet(xp):
    """NumPy's floating-point warnings off (CuPy raises none)."""
    if hasattr(xp, "errstate"):
        return xp.errstate(divide="ignore", invalid="ignore")
    return contextlib.nullcontext()


register_schema(OpSchema(
    "LpPool", num_inputs=1, num_outputs=1, args=LP_ARGS, infer_shapes=_pool_shapes,
    inputs=[("X", "input: (N, C, *spatial) under NCHW, (N, *spatial, C) under NHWC")],
    outputs=[("Y", "the L_p norm of each window, per channel")],
    doc="LpPool: the L_p norm (sum |x|^p)^(1/p) of X over each sliding window, per image "
        "and channel; Caffe2's pooling arguments and p (default 2).",
    gradient=pool_gradient_maker))
register_schema(OpSchema(
    "LpPoolGradient", num_inputs=3, num_outputs=1, args=LP_ARGS, infer_shapes=same_as(0),
    inputs=[("X", "input of LpPool"), ("Y", "output of LpPool"), ("dY", "gradient of Y")],
    outputs=[("dX", "gradient of X")],
    doc="Gradient of LpPool: dY * x * |x|^(p-2) / Y^(p-1), summed over the windows."))
register_kernel("LpPool", devices=("CPU", "CUDA"))(lp_pool)
register_kernel("LpPoolGradient", devices=("CPU", "CUDA"))(lp_pool_gradient)
