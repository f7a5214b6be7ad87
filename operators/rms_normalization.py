"""RMSNormalization: X over its root mean square, times a scale (ONNX's; Caffe2 had none).

Y = X / sqrt(mean(X**2 over the axes from ``axis`` on) + epsilon) * scale,
computed in float32 for float16 input (ONNX's stash_type 1), returned in X's
dtype; scale broadcasts against the normalised dims.
"""

import numpy as np

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

register_schema(OpSchema(
    "RMSNormalization", num_inputs=2, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("X", "float tensor"), ("scale", "float, broadcasts to X.shape[axis:]")],
    outputs=[("Y", "X / rms(X) * scale, X's shape and dtype")],
    args=[Arg("axis", "int", -1, "the first normalised axis; negative counts from the end"),
          Arg("epsilon", "float", 1e-5, "added to the mean square before the root"),
          Arg("stash_type", "int", 1, "1: compute in float32 (the only one supported)")],
    doc="Y = X / sqrt(mean(X**2, axes axis..rank-1) + epsilon) * scale.",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@register_kernel("RMSNormalization", devices=("CPU", "CUDA"))
def rms_normalization(ctx, x, scale):
    for i, v in enumerate((x, scale)):
        if getattr(v, "dtype", None) is None or v.dtype.kind != "f":
            ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got "
                     f"{getattr(v, 'dtype', type(v).__name__)}")
    if ctx.args["stash_type"] != 1:
        ctx.fail(f"argument 'stash_type' = {ctx.args['stash_type']}: only 1 (float32) is "
                 f"supported")
    axis = ctx.args["axis"]
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        ctx.fail(f"axis {axis} is out of range for {ctx.input_label(0)} of rank {x.ndim}")
    axes = tuple(range(axis % x.ndim, x.ndim))
    try:
        np.broadcast_shapes(tuple(x.shape[axes[0]:]), tuple(scale.shape))
    except ValueError:
        ctx.fail(f"{ctx.input_label(1)} {tuple(scale.shape)} does not broadcast to the "
                 f"normalised dims {tuple(x.shape[axes[0]:])}")
    if scale.ndim > len(axes):
        ctx.fail(f"{ctx.input_label(1)} has more dims than the normalised ones")
    xp = ctx.xp
    wide = x.astype(xp.float32) if x.dtype.itemsize < 4 else x
    mean_square = xp.mean(wide * wide, axis=axes, keepdims=True) if wide.size else wide
    y = wide / xp.sqrt(mean_square + ctx.args["epsilon"]) * scale.astype(wide.dtype)
    return (y.astype(x.dtype),)
