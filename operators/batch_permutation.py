"""BatchPermutation and BatchPermutationGradient: reorder the rows of a batch.

After ``caffe2/operators/batch_permutation_op.cc`` (the newest, any rank):
``Y[i] = X[indices[i]]`` over the first dimension, with int32 ``indices`` of
length N (Detectron uses it to put FPN RoI features back in RoI order).  The
gradient scatters back: ``dX[indices[i]] += dY[i]``.  Caffe2 assumed a
permutation and wrote ``dX[indices[i]] = dY[i]``; the sum is the same for a
permutation and is the true gradient when an index repeats.  An index outside
``[0, N)`` is an error (Caffe2 read out of bounds).  One body for NumPy and
CuPy: a gather and a scatter-add.
"""

import numpy as np

from caffe2lite.operators._segments import scatter_add_rows
from caffe2lite.runtime import (OpSchema, TensorSpec, grad_name, make_operator, register_kernel,
                                register_schema, same_as)


def batch_permutation_gradient_maker(op_def, g_output):
    """BatchPermutationGradient(indices, dY) -> dX, as Caffe2's GetBatchPermutationGradient."""
    x, indices = op_def.input
    grad_op = make_operator("BatchPermutationGradient", [indices, g_output[0]], [grad_name(x)])
    return [grad_op], [grad_name(x), None]


register_schema(OpSchema(
    "BatchPermutation", num_inputs=2, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("X", "float32 tensor of at least 1 dim; the first is the batch size N"),
            ("indices", "(N,) int32 permutation of [0, N)")],
    outputs=[("Y", "X's shape, Y[i] = X[indices[i]]")],
    doc="Batch permutation of an input tensor X given input indices: Y[i] = X[indices[i]] "
        "along the first dimension.",
    gradient=batch_permutation_gradient_maker))

register_schema(OpSchema(
    "BatchPermutationGradient", num_inputs=2, num_outputs=1,
    infer_shapes=lambda ctx, indices, dY: (
        None if dY is None else TensorSpec(dY.shape, np.float32),),
    inputs=[("indices", "see BatchPermutation"), ("dY", "gradient of Y")],
    outputs=[("dX", "gradient of X: dX[indices[i]] += dY[i]")],
    doc="Gradient of BatchPermutation with respect to X."))


def _checked(ctx, data, indices, data_index):
    if getattr(data, "dtype", None) != np.float32 or data.ndim < 1:
        ctx.fail(f"{ctx.input_label(data_index)} must be a float32 tensor of at least 1 "
                 f"dimension, got {getattr(data, 'dtype', type(data).__name__)} "
                 f"{tuple(getattr(data, 'shape', ()))}")
    index_pos = 1 - data_index
    if indices.dtype not in (np.int32, np.int64) or indices.ndim != 1:
        ctx.fail(f"{ctx.input_label(index_pos)} must be a 1-d int32 tensor, got "
                 f"{indices.dtype} {tuple(indices.shape)}")
    n = data.shape[0]
    if indices.shape[0] != n:
        ctx.fail(f"X.dim32(0) must be equal to indices.dim32(0) ({n} vs. {indices.shape[0]}; "
                 f"{ctx.input_label(data_index)} and {ctx.input_label(index_pos)})")
    if n and (bool((indices < 0).any()) or bool((indices >= n).any())):
        ctx.fail(f"{ctx.input_label(index_pos)} must hold indices in [0, {n}), got "
                 f"[{int(indices.min())}, {int(indices.max())}]")


@register_kernel("BatchPermutation", devices=("CPU", "CUDA"))
def batch_permutation(ctx, X, indices):
    _checked(ctx, X, indices, 0)
    return (X[indices],)


@register_kernel("BatchPermutationGradient", devices=("CPU", "CUDA"))
def batch_permutation_gradient(ctx, indices, dY):
    _checked(ctx, dY, indices, 1)
    return (scatter_add_rows(ctx.xp, dY.shape, dY.dtype, indices, dY),)
