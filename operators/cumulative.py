"""CumSum and CumProd: cumulative sums / products along an axis (ONNX's; Caffe2 had none).

Y = numpy.cumsum(X, axis) (numpy.cumprod), optionally ``exclusive`` (each
leaves its own element out, so the first is 0 -- 1 for products) and/or
``reverse`` (from the end).  The axis is the argument, or the optional 0-d int
input ONNX passes it in.
"""

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema,
                                same_as)

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


CUMULATIVE_ARGS = [
    Arg("axis", "int", 0, "axis to accumulate along; negative counts from the end"),
    Arg("exclusive", "int", 0, "nonzero: Y[i] covers the elements before i only"),
    Arg("reverse", "int", 0, "nonzero: accumulate from the last element towards the first")]


def _schema(op_type, what, identity, gradient):
    register_schema(OpSchema(
        op_type, num_inputs=(1, 2), num_outputs=1, infer_shapes=same_as(0),
        inputs=[("X", "int32, int64, float32 or float64 tensor"),
                ("axis", "optional: 0-d int tensor, the axis (instead of the argument)")],
        outputs=[("Y", f"the cumulative {what}, X's shape and dtype")],
        args=list(CUMULATIVE_ARGS),
        doc=f"Y = numpy.cum{op_type[3:].lower()}(X, axis) (exclusive: the first is "
            f"{identity}; reverse: from the end).",
        gradient=gradient))


_schema("CumSum", "sums", 0, cumsum_gradient_maker)
_schema("CumProd", "products", 1, GRADIENT_NOT_IMPLEMENTED_YET)


def _accumulate(ctx, x, axis, product):
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
    total = (xp.cumprod if product else xp.cumsum)(data, axis=a, dtype=x.dtype)
    if ctx.args["exclusive"]:  # shift by one: what the elements before each give
        head = [slice(None)] * x.ndim
        head[a] = slice(0, -1)
        first = list(x.shape)
        first[a] = min(1, x.shape[a])
        start = (xp.ones if product else xp.zeros)(first, x.dtype)
        total = xp.concatenate([start, total[tuple(head)]], axis=a)
    return (xp.flip(total, a) if ctx.args["reverse"] else total,)


@register_kernel("CumSum", devices=("CPU", "CUDA"))
def cumsum(ctx, x, axis=None):
    return _accumulate(ctx, x, axis, product=False)


@register_kernel("CumProd", devices=("CPU", "CUDA"))
def cumprod(ctx, x, axis=None):
    return _accumulate(ctx, x, axis, product=True)
