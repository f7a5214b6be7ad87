"""Hardmax: 1 at the first maximum along an axis, 0 elsewhere (ONNX 13's Hardmax)."""

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema,
                                same_as)

register_schema(OpSchema(
    "Hardmax", num_inputs=1, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("X", "float tensor of rank >= 1")],
    outputs=[("Y", "X's shape and dtype: 1 at the first maximum along axis, 0 elsewhere")],
    args=[Arg("axis", "int", -1, "the axis; negative counts from the end")],
    doc="Y = one_hot(argmax(X, axis), X.shape[axis]) along axis (the first maximum wins).",
    gradient=NO_GRADIENT))


@register_kernel("Hardmax", devices=("CPU", "CUDA"))
def hardmax(ctx, x):
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor of rank >= 1, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    axis = ctx.args["axis"]
    if not -x.ndim <= axis < x.ndim:
        ctx.fail(f"axis {axis} is out of range for rank {x.ndim}")
    xp = ctx.xp
    y = xp.zeros_like(x)
    if x.size:
        first = xp.expand_dims(xp.argmax(x, axis=axis), axis)
        xp.put_along_axis(y, first, x.dtype.type(1), axis=axis)
    return (y,)
