"""SquaredL2Distance: per-row half squared distance, 0.5 * sum((X - Y)**2) over all but axis 0.

NumPy: ``0.5 * ((X - Y) ** 2).reshape(N, -1).sum(1)`` with N = X.shape[0]
(N = 1 for a 0-d input, as in Caffe2).
"""

from math import prod

from caffe2lite.runtime import (OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)


def gradient_maker(op_def, g_output):
    """SquaredL2DistanceGradient(X, Y, dDistance) -> (dX, dY)."""
    x, y = op_def.input
    grad_op = make_operator("SquaredL2DistanceGradient",
                            [x, y, dense_output_grad(op_def, g_output)],
                            [grad_name(x), grad_name(y)])
    return [grad_op], [grad_name(x), grad_name(y)]


register_schema(OpSchema(
    "SquaredL2Distance", num_inputs=2, num_outputs=1,
    inputs=[("X", "float tensor, N rows"), ("Y", "float tensor of X's shape")],
    outputs=[("Z", "(N,): 0.5 * sum of squared differences per row")],
    doc="Z[i] = 0.5 * sum((X[i] - Y[i]) ** 2), one value per row of X.",
    gradient=gradient_maker))

register_schema(OpSchema(
    "SquaredL2DistanceGradient", num_inputs=3, num_outputs=2,
    inputs=[("X", "X"), ("Y", "Y"), ("dDistance", "gradient of Z, (N,)")],
    outputs=[("dX", "(X - Y) * dDistance per row"), ("dY", "-dX")],
    doc="Gradient of SquaredL2Distance with respect to X and Y."))


def _rows(ctx, X, Y):
    ctx.check_same_shape(0, X, 1, Y)
    ctx.check_float(0, X)
    if X.dtype != Y.dtype:
        ctx.fail_input(1, f"is {Y.dtype}, but must be {X.dtype} like input 0")
    return (X.shape[0], prod(X.shape[1:])) if X.ndim else (1, 1)


@register_kernel("SquaredL2Distance", devices=("CPU", "CUDA"))
def squared_l2_distance(ctx, X, Y):
    n, inner = _rows(ctx, X, Y)
    diff = (X - Y).reshape(n, inner)
    return ((diff * diff).sum(axis=1) * X.dtype.type(0.5),)


@register_kernel("SquaredL2DistanceGradient", devices=("CPU", "CUDA"))
def squared_l2_distance_gradient(ctx, X, Y, dD):
    n, inner = _rows(ctx, X, Y)
    if dD.size != n:
        ctx.fail_input(2, f"{tuple(dD.shape)} must have {n} elements, one per row")
    if dD.dtype != X.dtype:
        ctx.fail_input(2, f"must be {X.dtype} like X and Y, got {dD.dtype}")
    dX = ((X - Y).reshape(n, inner) * dD.reshape(n, 1)).reshape(X.shape)
    return dX, -dX
