"""Find: the position of each query in an index vector (Caffe2's find_op.h).

y[i] = the last position j with index[j] == queries[i] (Caffe2 filled a hash map
from the index in order, so a repeated value keeps its last position), or
``missing_value`` when there is none.  index and queries are int32 or int64 of one
type, and y has that type and the queries' shape.
"""

import numpy as np

from caffe2lite.operators._segments import INDEX_DTYPES
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Find", num_inputs=2, num_outputs=1,
    infer_shapes=lambda ctx, index, queries: (None if queries is None
                                              else TensorSpec(queries.shape, queries.dtype),),
    inputs=[("index", "int32/int64 vector of values"),
            ("query", "values to look up, index's type")],
    outputs=[("query_indices", "the last position of each query in index, or "
                               "missing_value")],
    args=[Arg("missing_value", "int", -1, "the result for a value not in index")],
    doc="Finds each query's position in index.", gradient=NO_GRADIENT))


@register_kernel("Find", devices=("CPU", "CUDA"))
def find(ctx, index, queries):
    xp = ctx.xp
    if np.dtype(index.dtype) not in INDEX_DTYPES or queries.dtype != index.dtype:
        ctx.fail(f"{ctx.input_label(0)} ({index.dtype}) and {ctx.input_label(1)} "
                 f"({queries.dtype}) must be int32 or int64, of one type")
    flat = index.reshape(-1)
    # unique values of the index with their last position: first hits of the reversed index
    values, first_reversed = xp.unique(flat[::-1], return_index=True)
    last = flat.size - 1 - first_reversed
    slot = xp.minimum(xp.searchsorted(values, queries), max(values.size - 1, 0))
    found = (values[slot] == queries) if values.size else xp.zeros(queries.shape, np.bool_)
    hit = last[slot] if values.size else xp.zeros(queries.shape, np.int64)
    return (xp.where(found, hit, ctx.args["missing_value"]).astype(index.dtype),)
