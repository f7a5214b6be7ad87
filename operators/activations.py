"""Sigmoid and Tanh with their gradients, which Caffe2 computes from the output Y.

One table row per op: the forward function of ``xp`` and X, and the
derivative written in terms of Y, so that the gradient op reads (Y, dY) as
Caffe2's SigmoidGradient / TanhGradient do.
"""

from caffe2lite.runtime import (OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def _sigmoid(xp, x):
    # exp of a non-positive number only, so large |x| never overflows.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


ACTIVATIONS = {
    # type: (doc of Y, forward(xp, X), dY/dX from Y)
    "Sigmoid": ("1 / (1 + exp(-X))", _sigmoid, lambda y: y * (1 - y)),
    "Tanh": ("tanh(X)", lambda xp, x: xp.tanh(x), lambda y: 1 - y * y),
}


def _output_gradient_maker(op_def, g_output):
    """<Type>Gradient(Y, dY) -> dX: the derivative is a function of the output."""
    grad_op = make_operator(op_def.type + "Gradient",
                            [op_def.output[0], dense_output_grad(op_def, g_output)],
                            [grad_name(op_def.input[0])])
    return [grad_op], [grad_name(op_def.input[0])]


def _register(op_type, formula, forward, derivative):
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
        infer_shapes=same_as(0),
        inputs=[("X", "float tensor")], outputs=[("Y", f"{formula}, elementwise")],
        doc=f"Y = {formula} elementwise (same shape and dtype as X).",
        gradient=_output_gradient_maker))
    register_schema(OpSchema(
        op_type + "Gradient", num_inputs=2, num_outputs=1, allow_inplace={(1, 0)},
        infer_shapes=same_as(1),
        inputs=[("Y", f"output of {op_type}"), ("dY", "gradient of Y")],
        outputs=[("dX", "dY * dY/dX, computed from Y")],
        doc=f"Gradient of {op_type} from its output Y."))

    @register_kernel(op_type, devices=("CPU", "CUDA"))
    def kernel(ctx, X):
        ctx.check_float(0, X)
        return (forward(ctx.xp, X),)

    @register_kernel(op_type + "Gradient", devices=("CPU", "CUDA"))
    def gradient_kernel(ctx, Y, dY):
        ctx.check_same_shape(0, Y, 1, dY)
        ctx.check_float(0, Y)
        ctx.check_float(1, dY)
        return ((dY * derivative(Y)).astype(dY.dtype, copy=False),)


for _type, _row in ACTIVATIONS.items():
    _register(_type, *_row)
