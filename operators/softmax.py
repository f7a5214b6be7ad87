"""Softmax and SoftmaxGradient over X coerced to a matrix at ``axis``, as Caffe2's softmax_op.

X (any rank >= 1) is viewed as (N, D) with N = prod(X.shape[:axis]) and
D = prod(X.shape[axis:]); each row becomes ``exp(x - max(x)) / sum(exp(x - max(x)))``
(numpy: ``e = np.exp(x - x.max(1, keepdims=True)); e / e.sum(1, keepdims=True)``),
reshaped back to X's shape.  SoftmaxGradient reads the output Y and dY:
``dX = Y * (dY - sum(Y * dY, row))``.
"""

from math import prod

from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)

AXIS_ARG = Arg("axis", "int", 1, "X is coerced to (prod(shape[:axis]), prod(shape[axis:])); "
                                 "negative counts from the end")


def coerced_rows(ctx, X, axis, label=None):
    """(N, D): X seen as a matrix at ``axis`` (Caffe2's size_to_dim / size_from_dim)."""
    if not -X.ndim <= axis < X.ndim:
        ctx.fail(f"argument 'axis' = {axis} is out of range for "
                 f"{label or ctx.input_label(0)} of shape {tuple(X.shape)}")
    axis += X.ndim if axis < 0 else 0
    return prod(X.shape[:axis]), prod(X.shape[axis:])


def softmax_rows(xp, x2d):
    """Row-wise softmax of a matrix, in its dtype; max-shifted so exp never overflows."""
    if x2d.size == 0:
        return x2d.copy()
    e = xp.exp(x2d - x2d.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax_rows(xp, x2d):
    """Row-wise log-softmax of a non-empty matrix: x - max - log(sum(exp(x - max)))."""
    shifted = x2d - x2d.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax_gradient_maker(op_def, g_output):
    """SoftmaxGradient(Y, dY) -> dX, as Caffe2's GetSoftmaxGradient."""
    grad_op = make_operator(op_def.type + "Gradient",
                            [op_def.output[0], dense_output_grad(op_def, g_output)],
                            [grad_name(op_def.input[0])])
    return [grad_op], [grad_name(op_def.input[0])]


register_schema(OpSchema(
    "Softmax", num_inputs=1, num_outputs=1, args=[AXIS_ARG], infer_shapes=same_as(0),
    inputs=[("X", "float tensor, coerced to (N, D) at axis")],
    outputs=[("Y", "softmax of each row, X's shape and dtype")],
    doc="Y = softmax of X coerced to a matrix at axis: exp(x - max) / sum(exp(x - max)) per "
        "row.",
    gradient=softmax_gradient_maker))

register_schema(OpSchema(
    "SoftmaxGradient", num_inputs=2, num_outputs=1, args=[AXIS_ARG], infer_shapes=same_as(0),
    inputs=[("Y", "output of Softmax"), ("dY", "gradient of Y")],
    outputs=[("dX", "Y * (dY - sum(Y * dY, row))")],
    doc="Gradient of Softmax from its output Y."))


def _float(ctx, i, arr):
    if arr.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got {arr.dtype}")


@register_kernel("Softmax", devices=("CPU", "CUDA"))
def softmax(ctx, X):
    _float(ctx, 0, X)
    N, D = coerced_rows(ctx, X, ctx.args["axis"])
    return (softmax_rows(ctx.xp, X.reshape(N, D)).reshape(X.shape),)


@register_kernel("SoftmaxGradient", devices=("CPU", "CUDA"))
def softmax_gradient(ctx, Y, dY):
    _float(ctx, 0, Y)
    if dY.shape != Y.shape or dY.dtype != Y.dtype:
        ctx.fail(f"{ctx.input_label(1)} is {dY.dtype}{tuple(dY.shape)}, expected Y's "
                 f"{Y.dtype}{tuple(Y.shape)}")
    N, D = coerced_rows(ctx, Y, ctx.args["axis"])
    y, dy = Y.reshape(N, D), dY.reshape(N, D)
    return ((y * (dy - (y * dy).sum(axis=1, keepdims=True))).reshape(Y.shape),)
