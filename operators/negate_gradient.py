"""NegateGradient: Y = X in the forward pass; the gradient flows back negated (dX = -dY),
as in gradient-reversal layers."""

from caffe2lite.runtime import (OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, same_as)


def negate_gradient_maker(op_def, g_output):
    grad = grad_name(op_def.input[0])
    return [make_operator("Negative", [g_output[0]], [grad])], [grad]


register_schema(OpSchema(
    "NegateGradient", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0), inputs=[("X", "")], outputs=[("Y", "X")],
    doc="Identity forward (Y = X); the gradient is negated (dX = -dY).",
    gradient=negate_gradient_maker))


@register_kernel("NegateGradient", devices=("CPU", "CUDA"))
def negate_gradient(ctx, x):
    return (x if ctx.op_def.input[0] == ctx.op_def.output[0] else x.copy(),)
