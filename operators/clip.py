"""Clip and ClipGradient: Y = numpy.clip(X, min, max) (Caffe2's clip_op).

``min`` / ``max`` default to the lowest / highest value of X's dtype, so an
unset bound does not clip.  The gradient op reads the output, as Caffe2's
ClipGradient(Y, dY): dX = dY where min < Y < max, else 0 -- a clipped
element (Y on a bound) passes no gradient.
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)

FLOATS = (np.float32, np.float64)
CLIP_ARGS = (
    Arg("min", "float", None, "lower bound (default: the dtype's lowest value)"),
    Arg("max", "float", None, "upper bound (default: the dtype's highest value)"),
)


def clip_gradient_maker(op_def, g_output):
    """ClipGradient(Y, dY) -> dX, with min/max copied from the forward op."""
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None]
    dx = grad_name(op_def.input[0])
    return [make_operator("ClipGradient", [op_def.output[0], dy], [dx])], [dx]


def bounds(ctx, dtype):
    """(min, max) as scalars of dtype; unset bounds are the dtype's range."""
    info = np.finfo(dtype)
    lo = info.min if ctx.args["min"] is None else ctx.args["min"]
    hi = info.max if ctx.args["max"] is None else ctx.args["max"]
    if np.isnan(lo) or np.isnan(hi):
        ctx.fail(f"arguments 'min' ({lo}) and 'max' ({hi}) must not be NaN")
    with np.errstate(over="ignore"):
        return dtype.type(lo), dtype.type(hi)


def _check(ctx, x, index=0):
    if getattr(x, "dtype", None) not in FLOATS:
        ctx.fail(f"{ctx.input_label(index)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"{ctx.op_def.type} supports {dtype_names(FLOATS)}")


register_schema(OpSchema(
    "Clip", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=same_as(0),
    inputs=[("input", "float tensor")], outputs=[("output", "numpy.clip(input, min, max)")],
    args=list(CLIP_ARGS),
    doc="output = min(max(input, min), max) elementwise; unset bounds do not clip.",
    gradient=clip_gradient_maker))

register_schema(OpSchema(
    "ClipGradient", num_inputs=2, num_outputs=1, allow_inplace={(1, 0)},
    infer_shapes=same_as(1), args=list(CLIP_ARGS),
    inputs=[("Y", "output of Clip"), ("dY", "gradient of Y")],
    outputs=[("dX", "dY where min < Y < max, else 0")],
    doc="Gradient of Clip, from its output: zero where Y sits on a bound."))


@register_kernel("Clip", devices=("CPU", "CUDA"))
def clip(ctx, x):
    _check(ctx, x)
    lo, hi = bounds(ctx, x.dtype)
    # max then min, as Caffe2's std::min(std::max(x, min), max): max wins if min > max
    return (ctx.xp.minimum(ctx.xp.maximum(x, lo), hi),)


@register_kernel("ClipGradient", devices=("CPU", "CUDA"))
def clip_gradient(ctx, y, dy):
    _check(ctx, y, 0)
    _check(ctx, dy, 1)
    if y.shape != dy.shape:
        ctx.fail(f"{ctx.input_label(0)} {tuple(y.shape)} and {ctx.input_label(1)} "
                 f"{tuple(dy.shape)} must have the same shape")
    lo, hi = bounds(ctx, y.dtype)
    # dY * (lo < Y < hi), a product as in Caffe2's kernel (so NaN in dY stays NaN)
    return (dy * ((y > lo) & (y < hi)).astype(dy.dtype),)
