"""UpsampleNearest and UpsampleNearestGradient: Detectron's integer nearest upsampling.

After ``modules/detectron/upsample_nearest_op.{h,cc,cu}``: the last two axes of
a 3-D or 4-D tensor grow ``scale`` times (an integer >= 1), each output pixel
copying input pixel ``(y // scale, x // scale)`` (THCUNN's rule).  The
gradient sums each ``scale x scale`` block of dY into its input pixel (Caffe2
had it on CUDA only; here on both).  One NumPy/CuPy body (operators/_nearest.py).
"""

import numpy as np

from caffe2lite.operators import _nearest
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, grad_name, make_operator,
                                register_kernel, register_schema)

SCALE_ARG = Arg("scale", "int", 2, "integer upsampling factor (>= 1)")


def upsample_nearest_gradient_maker(op_def, g_output):
    """UpsampleNearestGradient(X, dY) -> dX, as Caffe2's GetUpsampleNearestGradient."""
    x = op_def.input[0]
    grad_op = make_operator("UpsampleNearestGradient", [x, g_output[0]], [grad_name(x)])
    return [grad_op], [grad_name(x)]


def _output_spec(ctx, X):
    if X is None or len(X.shape) not in (3, 4) or ctx.args["scale"] < 1:
        return (None,)
    s = ctx.args["scale"]
    return (TensorSpec(tuple(X.shape[:-2]) + (X.shape[-2] * s, X.shape[-1] * s), X.dtype),)


register_schema(OpSchema(
    "UpsampleNearest", num_inputs=1, num_outputs=1, args=[SCALE_ARG],
    infer_shapes=_output_spec,
    inputs=[("X", "float32 feature map (N, C, H, W) or (C, H, W)")],
    outputs=[("Y", "(N, C, scale * H, scale * W): nearest-neighbour samples of X")],
    doc="Nearest neighbor upsampling operation. Implementation taken from THCUNN.",
    gradient=upsample_nearest_gradient_maker))

register_schema(OpSchema(
    "UpsampleNearestGradient", num_inputs=2, num_outputs=1, args=[SCALE_ARG],
    infer_shapes=lambda ctx, X, dY: (X,),
    inputs=[("X", "see UpsampleNearest"), ("dY", "gradient of Y")],
    outputs=[("dX", "each scale x scale block of dY summed")],
    doc="Gradient of UpsampleNearest with respect to X."))


def _checked(ctx, i, x):
    if ctx.args["scale"] < 1:
        ctx.fail(f"argument 'scale' must be >= 1, got {ctx.args['scale']}")
    if getattr(x, "dtype", None) != np.float32 or x.ndim not in (3, 4):
        ctx.fail(f"{ctx.input_label(i)} must be a 3-D or 4-D float32 tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    return ctx.args["scale"]


def _sources(size: int, scale: int) -> np.ndarray:
    return np.arange(size * scale, dtype=np.int64) // scale


@register_kernel("UpsampleNearest", devices=("CPU", "CUDA"))
def upsample_nearest(ctx, X):
    s = _checked(ctx, 0, X)
    xp = ctx.xp
    y = _nearest.gather(xp, X, X.ndim - 2, _sources(X.shape[-2], s))
    return (_nearest.gather(xp, y, X.ndim - 1, _sources(X.shape[-1], s)),)


@register_kernel("UpsampleNearestGradient", devices=("CPU", "CUDA"))
def upsample_nearest_gradient(ctx, X, dY):
    s = _checked(ctx, 0, X)
    _checked(ctx, 1, dY)
    expected = tuple(X.shape[:-2]) + (X.shape[-2] * s, X.shape[-1] * s)
    if tuple(dY.shape) != expected:
        ctx.fail(f"{ctx.input_label(1)} must have shape {expected} (X's, scaled by {s}), got "
                 f"{tuple(dY.shape)}")
    xp, H, W = ctx.xp, X.shape[-2], X.shape[-1]
    dx = _nearest.sum_back(xp, dY, X.ndim - 1, _sources(W, s), W)
    return (_nearest.sum_back(xp, dx, X.ndim - 2, _sources(H, s), H),)
