"""BitShift: X << Y or X >> Y on integers (ONNX's BitShift; Caffe2 had none).

As ONNX's newest definition: unsigned and signed integers; a right shift of a
signed value is arithmetic (the sign bit fills in); a left shift wraps (the
bits shifted out are lost, as in unsigned arithmetic); a shift by a negative
amount or by the width or more gives 0 (-1 for a negative value shifted right).
"""

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

INTEGER = "iu"
DIRECTIONS = ("LEFT", "RIGHT")


def _shapes(ctx, x, y):
    return (None,) if x is None or y is None else (x if x.shape == y.shape else None,)


register_schema(OpSchema(
    "BitShift", num_inputs=2, num_outputs=1, infer_shapes=_shapes,
    inputs=[("X", "integer tensor"), ("Y", "shift amounts, X's dtype (broadcast)")],
    outputs=[("Z", "X shifted by Y bits, X's dtype")],
    args=[Arg("direction", "string", None, "LEFT (numpy.left_shift) or RIGHT", required=True)],
    doc="Z = X << Y (LEFT) or X >> Y (RIGHT), elementwise with NumPy broadcasting.",
    gradient=NO_GRADIENT))


@register_kernel("BitShift", devices=("CPU", "CUDA"))
def bit_shift(ctx, x, y):
    direction = ctx.args["direction"]
    if direction not in DIRECTIONS:
        ctx.fail(f"argument 'direction' must be LEFT or RIGHT, got '{direction}'")
    for i, v in enumerate((x, y)):
        if getattr(v, "dtype", None) is None or v.dtype.kind not in INTEGER:
            ctx.fail(f"{ctx.input_label(i)} must be an integer tensor, got "
                     f"{getattr(v, 'dtype', type(v).__name__)}")
    if x.dtype != y.dtype:
        ctx.fail(f"{ctx.input_label(0)} ({x.dtype}) and {ctx.input_label(1)} ({y.dtype}) "
                 f"must have one dtype")
    xp = ctx.xp
    try:
        x, y = xp.broadcast_arrays(x, y)
    except ValueError:
        ctx.fail(f"shapes {tuple(x.shape)} and {tuple(y.shape)} do not broadcast")
    zero = xp.zeros((), x.dtype)
    beyond = (y < zero) | (y >= x.dtype.itemsize * 8)
    shift = xp.where(beyond, zero, y)
    if direction == "RIGHT":
        z = xp.right_shift(x, shift)  # arithmetic for signed dtypes
        fill = xp.where(x < zero, x.dtype.type(-1), zero) if x.dtype.kind == "i" else zero
    else:
        unsigned = f"u{x.dtype.itemsize}"
        z = xp.left_shift(x.astype(unsigned), shift.astype(unsigned)).astype(x.dtype)
        fill = zero
    return (xp.where(beyond, fill, z),)
