"""CopyRowsToTensor: rows of a 2-D tensor replaced by one row, in place.

``OUT = INPUT_TENSOR`` with ``OUT[INDICES] = ROW``; the output must be the input blob,
as in Caffe2.  Its gradient op passes the output's gradient through unchanged (Caffe2's
CopyRowsToTensorGradient, whose copy of only the first few elements was a slip)."""

import numpy as np

from caffe2lite.runtime import (OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, same_as)

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)


def copy_rows_to_tensor_gradient_maker(op_def, g_output):
    grad = grad_name(op_def.input[0])
    return [make_operator("CopyRowsToTensorGradient", [g_output[0]], [grad])], \
        [grad, None, None]


register_schema(OpSchema(
    "CopyRowsToTensor", num_inputs=3, num_outputs=1, enforce_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("input_tensor", "(H, W) tensor, changed in place"),
            ("indices", "1-D indices of the rows to replace"),
            ("row", "(W,) the new row")],
    outputs=[("output_tensor", "input_tensor with the rows replaced")],
    doc="Replaces the rows INDICES of a 2-D tensor by ROW, in place.",
    gradient=copy_rows_to_tensor_gradient_maker))

register_schema(OpSchema(
    "CopyRowsToTensorGradient", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0), inputs=[("dY", "")], outputs=[("dX", "dY")],
    doc="Gradient of CopyRowsToTensor: the output gradient unchanged."))


@register_kernel("CopyRowsToTensor", devices=("CPU", "CUDA"))
def copy_rows_to_tensor(ctx, tensor, indices, row):
    if getattr(tensor, "ndim", 0) != 2 or tensor.dtype not in DTYPES:
        ctx.fail(f"{ctx.input_label(0)} should be 2-d, of float16/32/64 or int32/64; got "
                 f"{getattr(tensor, 'dtype', '')} {getattr(tensor, 'shape', '')}")
    if getattr(indices, "ndim", 0) != 1 or indices.dtype.kind not in "iu":
        ctx.fail(f"{ctx.input_label(1)} should be 1-d integers")
    if getattr(row, "ndim", 0) != 1:
        ctx.fail(f"{ctx.input_label(2)} should be 1-d")
    if row.shape[0] != tensor.shape[1]:
        ctx.fail(f"width of input tensor should match lengths of row: {ctx.input_label(0)} "
                 f"has width {tensor.shape[1]}, {ctx.input_label(2)} {row.shape[0]} values")
    if indices.size and (indices.min() < 0 or indices.max() >= tensor.shape[0]):
        ctx.fail(f"{ctx.input_label(1)} must be rows of {ctx.input_label(0)} "
                 f"(0..{tensor.shape[0] - 1})")
    out = tensor.copy()
    out[indices] = row.astype(tensor.dtype)
    return (out,)


@register_kernel("CopyRowsToTensorGradient", devices=("CPU", "CUDA"))
def copy_rows_to_tensor_gradient(ctx, dy):
    return (dy.copy(),)
