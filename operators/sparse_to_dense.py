"""SparseToDense: scatter-add rows of VALUES into a zero tensor at INDICES.

Caffe2 used it as Gather's gradient when ``dense_gradient`` is set, so it is
here mainly for that; it is also an ordinary op.  Unlike Caffe2 (which wanted
a 1-D INDICES), INDICES of any rank is accepted when VALUES starts with
INDICES' shape -- exactly the shape of a Gather output's gradient.
"""

import numpy as np

from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_index_range,
                                            scatter_add_rows)
from caffe2lite.runtime import (Arg, OpSchema, check_allocation, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

VALUE_DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)


def sparse_to_dense_gradient_maker(op_def, g_output):
    """Caffe2's GetSparseToDenseGradient: dVALUES = Gather(dOUTPUT, INDICES)."""
    values = op_def.input[1]
    grad = dense_output_grad(op_def, g_output)
    grad_op = make_operator("Gather", [grad, op_def.input[0]], [grad_name(values)])
    return [grad_op], [None, grad_name(values)] + [None] * (len(op_def.input) - 2)


register_schema(OpSchema(
    "SparseToDense", num_inputs=(2, 3), num_outputs=1,
    inputs=[("INDICES", "int32/int64 indices into the output's first dim"),
            ("VALUES", "tensor whose leading dims equal INDICES' shape (or first dim equals "
                       "INDICES' size)"),
            ("DATA_TO_INFER_DIM", "optional: the output's first dim is this tensor's first dim")],
    outputs=[("OUTPUT", "zeros of (first_dim,) + slice shape with VALUES' slices added at "
                        "INDICES (duplicates add up)")],
    args=[Arg("output_first_dim", "int", 0,
              "output's first dim when > 0 (only with 2 inputs); else DATA_TO_INFER_DIM's "
              "first dim, else max(INDICES) + 1"),
          Arg("axis", "int", 0, "copied from Gather when this is its gradient; ignored"),
          Arg("match_outer", "bool", False, "copied from Gather; ignored"),
          Arg("wrap_indices", "bool", None, "copied from Gather; ignored"),
          Arg("dense_gradient", "bool", False, "copied from Gather; ignored")],
    doc="OUTPUT = zeros((D,) + slice); numpy.add.at(OUTPUT, INDICES.ravel(), VALUES rows).",
    gradient=sparse_to_dense_gradient_maker))


@register_kernel("SparseToDense", devices=("CPU", "CUDA"))
def sparse_to_dense(ctx, indices, values, *infer):
    check_index_dtype(ctx, indices, 0)
    check_dtype(ctx, values, 1, VALUE_DTYPES, "float16/32/64, int32 or int64")
    n = int(indices.size)
    leading = tuple(values.shape[:indices.ndim])
    if values.ndim >= max(indices.ndim, 1) and leading == tuple(indices.shape):
        slice_shape = tuple(values.shape[indices.ndim:])
    else:
        if not (values.ndim >= 1 and values.shape[0] == n):
            ctx.fail(f"{ctx.input_label(1)} has shape {tuple(values.shape)}, expected it to start "
                     f"with INDICES' shape {tuple(indices.shape)} (or with its size {n})")
        slice_shape = tuple(values.shape[1:])
    first_dim = ctx.args["output_first_dim"]
    source = "argument 'output_first_dim'"
    if first_dim > 0:
        ctx.enforce(not infer, "output_first_dim and DATA_TO_INFER_DIM are both given; "
                               "give only one")
    elif infer:
        if infer[0].ndim < 1:
            ctx.fail(f"{ctx.input_label(2)} must have rank >= 1")
        first_dim = int(infer[0].shape[0])
        source = ctx.input_label(2)
    else:
        first_dim = int(indices.max()) + 1 if n else 0
        source = f"the largest index in {ctx.input_label(0)}"
    flat = indices.reshape(-1)
    check_index_range(ctx, flat, first_dim, 0, f"an output first dim of {first_dim}")
    rows = values.reshape((n,) + slice_shape)
    if ctx.limits.max_tensor_bytes is not None:  # else: NumPy's refusal, reworded below
        check_allocation(ctx, (first_dim,) + slice_shape, values.dtype.itemsize, source)
    try:
        return (scatter_add_rows(ctx.xp, (first_dim,) + slice_shape, values.dtype, flat, rows),)
    except MemoryError:
        ctx.fail(f"the output of shape {(first_dim,) + slice_shape} ({values.dtype}; first "
                 f"dimension from {source}) does not fit in memory")
