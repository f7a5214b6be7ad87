"""PrependDim and MergeDim (caffe2/operators/prepend_dim_op.*): reshapes of the first axis.

PrependDim(dim_size) turns (n, d1, ...) into (dim_size, n / dim_size, d1, ...) (n must
be a multiple of dim_size); MergeDim turns (d0, d1, d2, ...) into (d0 * d1, d2, ...).
Both copy the data of any dtype (in place they reshape the blob).  PrependDim's
gradient is MergeDim of dY, as Caffe2's maker built; Caffe2 registered none for
MergeDim.
"""

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)


def _prepend_dim_gradient(op_def, g_output):
    dx = grad_name(op_def.input[0])
    # Caffe2's maker did not copy the arguments: MergeDim takes none
    return [make_operator("MergeDim", [dense_output_grad(op_def, g_output)], [dx])], [dx]


def _prepended(ctx, shape):
    dim_size = ctx.args["dim_size"]
    if dim_size <= 0:
        ctx.fail(f"Argument dim_size must be greater than zero, got {dim_size}")
    if len(shape) == 0:
        ctx.fail(f"{ctx.input_label(0)} must be at least 1D, got a 0-d tensor")
    if shape[0] % dim_size:
        ctx.fail(f"{ctx.input_label(0)}: first dimension must be multiple of dim_size "
                 f"{dim_size}. Current first dimension: {shape[0]}")
    return (dim_size, shape[0] // dim_size) + tuple(shape[1:])


def _merged(ctx, shape):
    if len(shape) < 2:
        ctx.fail(f"{ctx.input_label(0)} must be at least 2D, got shape {tuple(shape)}")
    return (shape[0] * shape[1],) + tuple(shape[2:])


register_schema(OpSchema(
    "PrependDim", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=lambda ctx, x: (None if x is None
                                 else TensorSpec(_prepended(ctx, x.shape), x.dtype),),
    args=[Arg("dim_size", "int", 0, "size of the dimension to prepend (> 0)", required=True)],
    inputs=[("data", "an input tensor of rank >= 1")],
    outputs=[("reshaped", "(dim_size, data.shape[0] / dim_size, *data.shape[1:])")],
    doc="Reshape the tensor by prepending a dimension of fixed size and dividing the size of "
        "the next dimension by that amount.",
    gradient=_prepend_dim_gradient))

register_schema(OpSchema(
    "MergeDim", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=lambda ctx, x: (None if x is None
                                 else TensorSpec(_merged(ctx, x.shape), x.dtype),),
    inputs=[("data", "an input tensor of rank >= 2")],
    outputs=[("reshaped", "(data.shape[0] * data.shape[1], *data.shape[2:])")],
    doc="Merge first two dimensions in a single dimension with size dim(0) * dim(1)."))


def _check_tensor(ctx, x):
    if not hasattr(x, "reshape") or not hasattr(x, "shape"):
        ctx.fail_input(0, f"must be a tensor, got {type(x).__name__}")


@register_kernel("PrependDim", devices=("CPU", "CUDA"))
def prepend_dim(ctx, x):
    _check_tensor(ctx, x)
    return (x.reshape(_prepended(ctx, x.shape)).copy(),)


@register_kernel("MergeDim", devices=("CPU", "CUDA"))
def merge_dim(ctx, x):
    _check_tensor(ctx, x)
    return (x.reshape(_merged(ctx, x.shape)).copy(),)
