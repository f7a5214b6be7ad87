"""FindDuplicateElements: positions of the entries seen earlier in a vector (Caffe2's
find_duplicate_elements_op.h).

indices = every position i whose value occurs at some position before i, in
increasing order (int64).  The data may be numeric, bool or strings.
"""

import numpy as np

from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "FindDuplicateElements", num_inputs=1, num_outputs=1,
    inputs=[("data", "1-D tensor (numbers, bools or strings)")],
    outputs=[("indices", "int64 positions of the repeated occurrences")],
    doc="The positions whose value already occurred earlier in data.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("FindDuplicateElements", devices=("CPU",))
def find_duplicate_elements(ctx, data):
    if data.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be a vector, got shape {tuple(data.shape)}")
    if data.dtype.kind not in "biufOSU":
        ctx.fail(f"{ctx.input_label(0)} must hold numbers, bools or strings, got {data.dtype}")
    try:  # np.unique's first index per value marks the first occurrences
        _, first = np.unique(data, return_index=True)
    except TypeError:  # an object array mixing bytes and str: compare as text
        _, first = np.unique(np.array([v.decode() if isinstance(v, bytes) else str(v)
                                       for v in data.tolist()], dtype=object),
                             return_index=True)
    repeated = np.ones(data.shape[0], np.bool_)
    repeated[first] = False
    return (np.flatnonzero(repeated).astype(np.int64),)
