"""BatchSparseToDense and BatchDenseToSparse: a per-row sparse batch <-> a dense matrix.

Row i of the batch owns lengths[i] consecutive (index, value) pairs:

    BatchSparseToDense: dense = full((len(lengths), D), default_value);
                        dense[i, indices[k]] = values[k] for the pairs of row i
    BatchDenseToSparse: values[k] = dense[i, indices[k]]

D comes from the dense_last_dim argument or from the optional 4th input's
second dimension (both, if given, must agree).  A column named twice in one
row keeps the last value, as Caffe2's sequential loop did.  Each op's
gradient is the other one (caffe2/operators/batch_sparse_to_dense_op.cc).
"""

import numpy as np

from caffe2lite.operators._segments import position_in_segment
from caffe2lite.operators._train_common import INDEX_DTYPES, host_int, last_occurrences
from caffe2lite.runtime import (Arg, OpSchema, check_allocation, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)


def batch_sparse_to_dense_gradient(op_def, g_output):
    """d values = BatchDenseToSparse(lengths, indices, d dense)."""
    grad = grad_name(op_def.input[2])
    op = make_operator("BatchDenseToSparse", [op_def.input[0], op_def.input[1],
                                               dense_output_grad(op_def, g_output)], [grad])
    return [op], [None, None, grad] + [None] * (len(op_def.input) - 3)


def batch_dense_to_sparse_gradient(op_def, g_output):
    """d dense = BatchSparseToDense(lengths, indices, d values, dense) (shaped like dense)."""
    grad = grad_name(op_def.input[2])
    op = make_operator("BatchSparseToDense", [op_def.input[0], op_def.input[1],
                                               dense_output_grad(op_def, g_output),
                                               op_def.input[2]], [grad])
    return [op], [None, None, grad]


_ARGS = [Arg("dense_last_dim", "int", -1, "second dimension of the dense matrix"),
         Arg("default_value", "float", 0.0, "value of the entries no pair sets")]

register_schema(OpSchema(
    "BatchSparseToDense", num_inputs=(3, 4), num_outputs=1,
    inputs=[("lengths", "int32/int64 pairs per row"),
            ("indices", "int32/int64 column of each pair, sum(lengths) of them"),
            ("values", "float value of each pair"),
            ("output_shape_inference", "(optional) 2-D tensor whose second dimension is D")],
    outputs=[("dense", "(len(lengths), D), values' dtype, default_value elsewhere")],
    args=_ARGS,
    doc="dense[i, indices[k]] = values[k] for the lengths[i] pairs of row i; "
        "default_value elsewhere.",
    gradient=batch_sparse_to_dense_gradient))

register_schema(OpSchema(
    "BatchDenseToSparse", num_inputs=3, num_outputs=1,
    inputs=[("lengths", "int32/int64 pairs per row"),
            ("indices", "int32/int64 column of each pair, sum(lengths) of them"),
            ("dense", "2-D, first dimension len(lengths)")],
    outputs=[("values", "dense[i, indices[k]], shaped like indices")],
    args=_ARGS,  # unused; accepted because it receives BatchSparseToDense's as its gradient
    doc="values[k] = dense[i, indices[k]] for the lengths[i] pairs of row i.",
    gradient=batch_dense_to_sparse_gradient))


def _pairs(ctx, lengths, indices, width):
    """(row, column) of every pair, validated against lengths and the dense width."""
    for i, t in ((0, lengths), (1, indices)):
        if not (np.dtype(t.dtype) in INDEX_DTYPES and t.ndim == 1):
            ctx.fail(f"{ctx.input_label(i)} must be a 1-D int32/int64 tensor, got {t.dtype} of "
                     f"shape {tuple(t.shape)}")
    if not (lengths.size == 0 or host_int(lengths.min()) >= 0):
        ctx.fail(f"{ctx.input_label(0)} holds a negative length")
    total = host_int(lengths.sum()) if lengths.size else 0
    if total != indices.size:
        ctx.fail(f"{ctx.input_label(0)} sums to {total} but {ctx.input_label(1)} "
                 f"has {indices.size} entries")
    if indices.size:
        bad = (indices < 0) | (indices >= width)
        if bool(bad.any()):
            pos = host_int(ctx.xp.argmax(bad))
            ctx.fail(f"{ctx.input_label(1)} holds index {host_int(indices[pos])} at "
                     f"position {pos}, outside [0, {width}) (the dense last dim)")
    row, _ = position_in_segment(ctx.xp, lengths)
    return row, indices.astype(np.int64)


@register_kernel("BatchSparseToDense", devices=("CPU", "CUDA"))
def batch_sparse_to_dense(ctx, lengths, indices, values, shape_like=None):
    width = ctx.args["dense_last_dim"]
    if shape_like is not None:
        if shape_like.ndim != 2:
            ctx.fail(f"{ctx.input_label(3)} must be 2-D, got shape "
                     f"{tuple(shape_like.shape)}")
        if width not in (-1, shape_like.shape[1]):
            ctx.fail(f"argument 'dense_last_dim' = {width} is not aligned with the last dim "
                     f"{shape_like.shape[1]} of {ctx.input_label(3)}")
        width = shape_like.shape[1]
    if width < 1:
        ctx.fail(f"argument 'dense_last_dim' must be >= 1 when there is no shape "
                 f"input, got {width}")
    if not (values.dtype.kind == "f" and values.size == indices.size):
        ctx.fail(f"{ctx.input_label(2)} must be a floating tensor with one value per index "
                 f"({indices.size}), got {values.dtype} with {values.size}")
    check_allocation(ctx, (lengths.size, width), values.dtype.itemsize,
                     "argument 'dense_last_dim'" if shape_like is None else ctx.input_label(3))
    row, col = _pairs(ctx, lengths, indices, width)
    dense = ctx.xp.full((lengths.size, width), ctx.args["default_value"], dtype=values.dtype)
    flat = row * width + col
    last = last_occurrences(ctx.xp, flat)
    dense.reshape(-1)[flat[last]] = values.reshape(-1)[last]
    return (dense,)


@register_kernel("BatchDenseToSparse", devices=("CPU", "CUDA"))
def batch_dense_to_sparse(ctx, lengths, indices, dense):
    if not (dense.ndim == 2 and dense.shape[0] == lengths.size):
        ctx.fail(f"{ctx.input_label(2)} must be 2-D with {lengths.size} rows (one per length), got "
                 f"shape {tuple(dense.shape)}")
    row, col = _pairs(ctx, lengths, indices, dense.shape[1])
    return (dense[row, col].reshape(indices.shape),)
