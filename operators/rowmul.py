"""RowMul and ReduceTailSum (caffe2/operators/rowmul_op.*).

RowMul(mat, w): output[i, ...] = mat[i, ...] * w[i], w holding one factor per row
of mat (Caffe2's "hacky Mul with broadcast").  ReduceTailSum(mat): output[i] = the
sum of mat[i, ...].  RowMul's gradient is Caffe2's three ops: RowMul(dY, w) -> dmat,
Mul(dY, mat) -> dw before the row sum, ReduceTailSum -> dw.  Both are float32, as
Caffe2 registered them.
"""

import numpy as np

from caffe2lite.runtime import (OpSchema, TensorSpec, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def _row_mul_gradient(op_def, g_output):
    mat, w = op_def.input
    dy = dense_output_grad(op_def, g_output)
    before = grad_name(w) + "before_aggregate"
    return ([make_operator("RowMul", [dy, w], [grad_name(mat)]),
             make_operator("Mul", [dy, mat], [before]),
             make_operator("ReduceTailSum", [before], [grad_name(w)])],
            [grad_name(mat), grad_name(w)])


register_schema(OpSchema(
    "RowMul", num_inputs=2, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("mat", "float32 tensor of rank >= 1, N rows"), ("w", "float32, N factors")],
    outputs=[("output", "mat with row i multiplied by w[i]")],
    doc="Given a matrix A and column vector w, the output is the multiplication of row i of "
        "A and element i of w, e.g. C[i][j] = A[i][j] * w[i].",
    gradient=_row_mul_gradient))


def _tail_sum_shapes(ctx, mat):
    if mat is None or mat.ndim == 0:
        return (None,)
    return (TensorSpec(mat.shape[:1], mat.dtype),)


register_schema(OpSchema(
    "ReduceTailSum", num_inputs=1, num_outputs=1, infer_shapes=_tail_sum_shapes,
    inputs=[("mat", "float32 tensor of rank >= 1")],
    outputs=[("output", "(N,): the sum of each row of mat over its trailing dimensions")],
    doc="Reduce the tailing dimensions: output[i] = sum(mat[i, ...])."))


def _check_float32_rows(ctx, i, x):
    if x.dtype != np.float32 or x.ndim == 0:
        ctx.fail_input(i, f"must be a float32 tensor of rank >= 1, got {x.dtype} of shape "
                          f"{tuple(x.shape)}")


@register_kernel("RowMul", devices=("CPU", "CUDA"))
def row_mul(ctx, mat, w):
    _check_float32_rows(ctx, 0, mat)
    if w.dtype != np.float32 or w.size != mat.shape[0]:
        ctx.fail_input(1, f"must hold {mat.shape[0]} float32 factors (the first dim of "
                          f"{ctx.input_label(0)}), got {w.dtype} of shape {tuple(w.shape)}")
    return (mat * w.reshape((-1,) + (1,) * (mat.ndim - 1)),)


@register_kernel("ReduceTailSum", devices=("CPU", "CUDA"))
def reduce_tail_sum(ctx, mat):
    _check_float32_rows(ctx, 0, mat)
    row = int(np.prod(mat.shape[1:], dtype=np.int64))  # -1 cannot be inferred for 0 rows
    return (mat.reshape(mat.shape[0], row).sum(axis=1, dtype=np.float32),)
