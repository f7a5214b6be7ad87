"""DenseVectorToIdList: each row of a dense (N, D) tensor as the list of its non-zero
columns (a sparse id-list feature): ``lengths[i]`` = non-zeros of row i (int32),
``values`` = their column indices, row after row (int64)."""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "DenseVectorToIdList", num_inputs=1, num_outputs=2,
    inputs=[("input", "(N, D) numeric tensor")],
    outputs=[("out_lengths", "(N,) int32"), ("out_values", "int64 column indices")],
    doc="The columns of each row's non-zero entries, as (lengths, values).",
    gradient=NO_GRADIENT))


@register_kernel("DenseVectorToIdList")
def dense_vector_to_id_list(ctx, x):
    if getattr(x, "ndim", 0) != 2 or x.dtype.kind not in "biuf":
        ctx.fail(f"{ctx.input_label(0)} must be a 2-D numeric tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    rows, columns = np.nonzero(x)
    lengths = np.bincount(rows, minlength=x.shape[0]).astype(np.int32)
    return lengths, columns.astype(np.int64)
