"""ElementwiseLinear and its gradient (caffe2/operators/elementwise_linear_op.cc).

X is read as (N, D), N the product of its dimensions before ``axis``; a and b
have D elements:  Y[n, d] = X[n, d] * a[d] + b[d].  Gradient: dX = dY * a,
da = sum_n dY * X, db = sum_n dY.
"""

import math

from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)

_AXIS = Arg("axis", "int", 1, "X is read as (product of dims before axis, the rest)")


def _elementwise_linear_gradient(op_def, g_output):
    dy = dense_output_grad(op_def, g_output)
    grads = [grad_name(b) for b in op_def.input]
    return [make_operator("ElementwiseLinearGradient", [dy, op_def.input[0], op_def.input[1]],
                          grads)], grads


register_schema(OpSchema(
    "ElementwiseLinear", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("X", "input, read as (N, D)"), ("a", "D scales"), ("b", "D offsets")],
    outputs=[("Y", "X * a + b, shaped like X")], args=[_AXIS],
    doc="Y = X * a + b along the dimension(s) from axis on.",
    gradient=_elementwise_linear_gradient))

register_schema(OpSchema(
    "ElementwiseLinearGradient", num_inputs=3, num_outputs=3,
    inputs=[("dY", "gradient of Y"), ("X", "the forward input"), ("a", "the scales")],
    outputs=[("dX", "dY * a"), ("da", "sum over rows of dY * X"), ("db", "sum over rows of dY")],
    args=[_AXIS], doc="Gradient of ElementwiseLinear."))


def _rows(ctx, x, a, x_index, a_index, other, other_index, other_name, other_shape):
    """(N, D) for X read from ``axis`` on, after checking the float inputs and that ``a``
    has D elements and ``other`` (b, or dY) the shape it must have."""
    check_float(ctx, x_index, x)
    check_float(ctx, a_index, a, x_index, x)
    check_float(ctx, other_index, other, x_index, x)
    axis = ctx.args["axis"]
    axis = axis + x.ndim if axis < 0 else axis
    ctx.enforce(0 <= axis <= x.ndim, f"argument 'axis' = {ctx.args['axis']} is outside the "
                                     f"{x.ndim} dimensions of {ctx.input_label(x_index)}")
    n, d = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    ctx.enforce(a.ndim == 1 and a.shape[0] == d,
                f"{ctx.input_label(a_index)} must be 1-D with {d} elements (X's size from axis "
                f"{axis} on), got shape {tuple(a.shape)}")
    ctx.enforce(other.shape == other_shape,
                f"{ctx.input_label(other_index)} must have {other_name} {other_shape}, "
                f"got {tuple(other.shape)}")
    return n, d


@register_kernel("ElementwiseLinear", devices=("CPU", "CUDA"))
def elementwise_linear(ctx, x, a, b):
    n, d = _rows(ctx, x, a, 0, 1, b, 2, "a's shape", a.shape)
    return ((x.reshape(n, d) * a + b).reshape(x.shape),)


@register_kernel("ElementwiseLinearGradient", devices=("CPU", "CUDA"))
def elementwise_linear_gradient(ctx, dy, x, a):
    n, d = _rows(ctx, x, a, 1, 2, dy, 0, "X's shape", x.shape)
    g, x2 = dy.reshape(n, d), x.reshape(n, d)
    return (g * a).reshape(x.shape), (g * x2).sum(axis=0), g.sum(axis=0)
