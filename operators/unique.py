"""Unique: the sorted distinct values of a 1-D int32/int64 tensor, and optionally the remapping.

Caffe2's CPU kernel sorted the values (so the output is ascending, although
its docs promised no order) and wrote ``remapping[i]`` = position of
``X[i]`` in the output, as int32 -- numpy.unique(X, return_inverse=True).
"""

import numpy as np

from caffe2lite.operators._train_common import INDEX_DTYPES
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _unique_shapes(ctx, x):
    """Caffe2's inference: the count of distinct values is known only for a vector of at
    most one element (an empty batch, say); the remapping is shaped like the input."""
    if x is None or x.ndim != 1 or np.dtype(x.dtype) not in INDEX_DTYPES:
        return (None,) * len(ctx.op_def.output)
    values = TensorSpec(x.shape, x.dtype) if x.shape[0] <= 1 else None
    return (values, TensorSpec(x.shape, np.int32))[:len(ctx.op_def.output)]


register_schema(OpSchema(
    "Unique", num_inputs=1, num_outputs=(1, 2), infer_shapes=_unique_shapes,
    inputs=[("indices", "1-D int32/int64 tensor")],
    outputs=[("unique_indices", "the distinct values, ascending"),
             ("remapping", "(optional) int32, same shape as input: unique[remapping] == input")],
    doc="Deduplicates a vector: numpy.unique(x, return_inverse=True) with an int32 remapping.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Unique", devices=("CPU", "CUDA"))
def unique(ctx, x):
    if np.dtype(x.dtype) not in INDEX_DTYPES:
        ctx.fail(f"{ctx.input_label(0)} must be int32 or int64, got {x.dtype}")
    if x.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} should be a vector, got shape {tuple(x.shape)}")
    if len(ctx.op_def.output) == 1:
        return (ctx.xp.unique(x),)
    values, inverse = ctx.xp.unique(x, return_inverse=True)
    return values, inverse.reshape(x.shape).astype(np.int32)
