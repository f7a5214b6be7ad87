"""Scale: Y = scale * X elementwise, in X's floating dtype."""

from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, rewrites, same_as)


def scale_gradient_maker(op_def, g_output):
    """dX = Scale(dY) with the same 'scale' (the gradient engine copies the forward args)."""
    g = dense_output_grad(op_def, g_output, optional=True)
    if g is None:
        return [], [None]
    gx = grad_name(op_def.input[0])
    return [make_operator("Scale", [g], [gx])], [gx]


register_schema(OpSchema(
    "Scale", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("input", "floating-point tensor (float16, float32 or float64)")],
    outputs=[("output", "scale * input, same shape and dtype")],
    args=[Arg("scale", "float", 1.0, "the factor to multiply by")],
    doc="Y = X * scale elementwise (numpy: (X * scale).astype(X.dtype)).",
    gradient=scale_gradient_maker))


@register_kernel("Scale", devices=("CPU", "CUDA"))
def scale(ctx, x):
    if x.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} has dtype "
                 f"{x.dtype}; Scale supports float16, float32 and float64")
    return (x * x.dtype.type(ctx.args["scale"]),)


rewrites.register_pure("Scale")  # runtime/rewrites.py: constant folding
