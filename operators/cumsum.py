"""CumSum: cumulative sums along an axis (ONNX's CumSum; Caffe2 had none).

Y = numpy.cumsum(X, axis), optionally ``exclusive`` (each sum leaves its own
element out, so the first is 0) and/or ``reverse`` (summed from the end).  The
axis is the argument, or the optional 0-d int input ONNX passes it in.
"""

from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)

SUMMABLE = "iuf"


def cumsum_gradient_maker(op_def, g_output):
    """dX = the cumulative sum of dY the other way round (same axis and exclusivity)."""
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None] * len(op_def.input)
    reverse = 0
    args = []
    for arg in op_def.arg:
        if arg.name == "reverse":
            reverse = arg.i
        else:
            args.append(arg)
    dx = grad_name(op_def.input[0])
    grad = make_operator("CumSum", [dy] + list(op_def.input[1:]), [dx], arg=args,
                         reverse=0 if reverse else 1)
    return [grad], [dx] + [None] * (len(op_def.input) - 1)


register_schema(OpSchema(
    "CumSum", num_inputs=(1, 2), num_outputs=1, infer_shapes=same_as(0),
    inputs=[("X", "int32, int64, float32 or float64 tensor"),
            ("axis", "optional: 0-d int tensor, the axis (instead of the argument)")],
    outputs=[("Y", "the cumulative sums, X's shape and dtype")],
    args=[Arg("axis", "int", 0, "axis to sum along; negative counts from the end"),
          Arg("exclusive", "int", 0, "nonzero: Y[i] sums the elements before i only"),
          Arg("reverse", "int", 0, "nonzero: sum from the last element towards the first")],
    doc="Y = numpy.cumsum(X, axis) (exclusive / reverse as the arguments say).",
    gradient=cumsum_gradient_maker))


@register_kernel("CumSum", devices=("CPU", "CUDA"))
def cumsum(ctx, x, axis=None):
    if getattr(x, "dtype", None) is None or x.dtype.kind not in SUMMABLE or x.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must be a numeric tensor of rank >= 1, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} of shape "
                 f"{tuple(getattr(x, 'shape', ()))}")
    a = ctx.args["axis"]
    if axis is not None:
        if getattr(axis, "size", 0) != 1 or axis.dtype.kind not in "iu":
            ctx.fail(f"{ctx.input_label(1)} must be one integer")
        a = int(axis.reshape(-1)[0])
    if not -x.ndim <= a < x.ndim:
        ctx.fail(f"axis {a} is out of range for {ctx.input_label(0)} of rank {x.ndim}")
    xp = ctx.xp
    data = xp.flip(x, a) if ctx.args["reverse"] else x
    total = xp.cumsum(data, axis=a, dtype=x.dtype)
    if ctx.args["exclusive"]:  # shift by one: the sum of the elements before each
        head = [slice(None)] * x.ndim
        head[a] = slice(0, -1)
        first = list(x.shape)
        first[a] = min(1, x.shape[a])
        total = xp.concatenate([xp.zeros(first, x.dtype), total[tuple(head)]], axis=a)
    return (xp.flip(total, a) if ctx.args["reverse"] else total,)
