"""EnsureDense (caffe2/operators/ensure_dense_op.cc): the input unchanged, forward; backward
it turns a sparse gradient (a GradientSlice) into a dense one with SparseToDense,
so what comes before it gets a dense gradient.
"""

from caffe2lite.runtime import (GradientSlice, OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, same_as)


def _ensure_dense_gradient(op_def, g_output):
    grad = g_output[0]
    if grad is None:
        return [], [None]
    if not isinstance(grad, GradientSlice):
        return [], [grad]
    dense = grad_name(op_def.input[0])
    return [make_operator("SparseToDense", [grad.indices, grad.values, op_def.input[0]],
                          [dense])], [dense]


register_schema(OpSchema(
    "EnsureDense", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("input", "a dense tensor")], outputs=[("output", "the same tensor")],
    doc="Identity forward; its gradient is always dense (SparseToDense of a sparse one).",
    gradient=_ensure_dense_gradient))


@register_kernel("EnsureDense", devices=("CPU", "CUDA"))
def ensure_dense(ctx, x):
    ctx.enforce(hasattr(x, "shape"), f"{ctx.input_label(0)} must be a tensor")
    in_place = ctx.op_def.input[0] == ctx.op_def.output[0]
    return (x if in_place else x.copy(),)  # no two blobs share one array
