"""AveragedLoss: the mean of all elements of X, as a 0-d tensor (numpy.mean(X)).

As in Caffe2 (a sum scaled by 1/size only when there are elements), an
empty X gives 0 rather than NaN.
"""

from caffe2lite.runtime import (OpSchema, TensorSpec, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def gradient_maker(op_def, g_output):
    """AveragedLossGradient(X, dY) -> dX = dY / X.size everywhere."""
    x = op_def.input[0]
    grad_op = make_operator("AveragedLossGradient", [x, dense_output_grad(op_def, g_output)],
                            [grad_name(x)])
    return [grad_op], [grad_name(x)]


register_schema(OpSchema(
    "AveragedLoss", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None else TensorSpec((), x.dtype),),
    inputs=[("X", "float tensor (per-example losses)")],
    outputs=[("loss", "0-d tensor: the mean of X")],
    doc="loss = mean(X) over every element, a scalar (0-d) tensor (0 for an empty X).",
    gradient=gradient_maker))

register_schema(OpSchema(
    "AveragedLossGradient", num_inputs=2, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("X", "input of AveragedLoss"), ("dY", "gradient of loss (one element)")],
    outputs=[("dX", "dY / X.size, shaped like X")],
    doc="Gradient of AveragedLoss."))


@register_kernel("AveragedLoss", devices=("CPU", "CUDA"))
def averaged_loss(ctx, X):
    ctx.check_float(0, X)
    total = X.sum(dtype=X.dtype)
    return (total / X.dtype.type(X.size) if X.size else total,)


@register_kernel("AveragedLossGradient", devices=("CPU", "CUDA"))
def averaged_loss_gradient(ctx, X, dY):
    if dY.size != 1:
        ctx.fail_input(1, f"must have one element, got shape {tuple(dY.shape)}")
    share = (dY.reshape(()) / max(X.size, 1)).astype(X.dtype)
    return (ctx.xp.zeros(X.shape, dtype=X.dtype) + share,)
