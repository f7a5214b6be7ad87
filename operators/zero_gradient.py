"""ZeroGradient: no output; the gradient of its input is zeros shaped like it.

Caffe2's rnn_cell.UnrolledCell puts one on each output that gets no gradient from
outside, so that the backward pass still has a gradient (of zeros) to start from."""

from caffe2lite.runtime import OpSchema, grad_name, make_operator, register_kernel, register_schema


def zero_gradient_maker(op_def, g_output):
    """ConstantFill([X], [X_grad], value=0.0): zeros shaped like X."""
    grad = grad_name(op_def.input[0])
    return [make_operator("ConstantFill", [op_def.input[0]], [grad], value=0.0)], [grad]


register_schema(OpSchema(
    "ZeroGradient", num_inputs=1, num_outputs=0,
    inputs=[("X", "a blob whose gradient is zero")],
    doc="Produces nothing; in the backward pass the gradient of X is zeros shaped like X.",
    gradient=zero_gradient_maker))


@register_kernel("ZeroGradient", devices=("CPU", "CUDA"))
def zero_gradient(ctx, x):
    return ()
