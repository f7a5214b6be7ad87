"""Unique: the sorted distinct values of a 1-D int32/int64 tensor, and optionally the remapping.

Caffe2's CPU kernel sorted the values (so the output is ascending, although
its docs promised no order) and wrote ``remapping[i]`` = position of
``X[i]`` in the output, as int32 -- numpy.unique(X, return_inverse=True).
"""

import numpy as np

from caffe2lite.operators._train_common import INDEX_DTYPES
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "Unique", num_inputs=1, num_outputs=(1, 2),
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
