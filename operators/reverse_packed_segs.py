"""ReversePackedSegs: reverse each sequence of a packed (time-major) batch in place of
its valid steps (Caffe2's reverse_packed_segs_op.h).

data is (max_length, batch, ...) and lengths[i] the valid steps of sequence i:
out[t, i] = data[lengths[i] - 1 - t, i] for t < lengths[i], data[t, i] after.  The
op is its own inverse, so its gradient is ReversePackedSegs of dOut.
"""

import numpy as np

from caffe2lite.operators._segments import INDEX_DTYPES
from caffe2lite.runtime import (OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, same_as)


def reverse_packed_segs_gradient_maker(op_def, g_output):
    d_data = grad_name(op_def.input[0])
    return [make_operator("ReversePackedSegs", [g_output[0], op_def.input[1]], [d_data])], \
        [d_data, None]


register_schema(OpSchema(
    "ReversePackedSegs", num_inputs=2, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("data", "3-D tensor (max_length, batch, block)"),
            ("lengths", "int32/int64 vector of batch valid lengths, each <= max_length")],
    outputs=[("reversed_data", "data with each sequence's valid steps reversed")],
    doc="Reverses the first lengths[i] steps of sequence i.",
    gradient=reverse_packed_segs_gradient_maker))


@register_kernel("ReversePackedSegs", devices=("CPU", "CUDA"))
def reverse_packed_segs(ctx, data, lengths):
    xp = ctx.xp
    if data.ndim != 3 or data.dtype.kind not in "biuf":
        ctx.fail(f"{ctx.input_label(0)} should be a 3-D numeric tensor, got {data.dtype} of "
                 f"shape {tuple(data.shape)}")
    if np.dtype(lengths.dtype) not in INDEX_DTYPES or lengths.ndim != 1 \
            or lengths.shape[0] != data.shape[1]:
        ctx.fail(f"{ctx.input_label(1)} must be an int32/int64 vector of {data.shape[1]} "
                 f"lengths (one per sequence), got {lengths.dtype} of shape "
                 f"{tuple(lengths.shape)}")
    max_length = data.shape[0]
    if lengths.size and (int(lengths.max()) > max_length or int(lengths.min()) < 0):
        ctx.fail(f"{ctx.input_label(1)} must lie in [0, {max_length}] (the max length)")
    t = xp.arange(max_length, dtype=np.int64)[:, None]
    n = lengths.astype(np.int64)[None, :]
    source = xp.where(t < n, n - 1 - t, t)                   # (max_length, batch)
    return (data[source, xp.arange(data.shape[1])[None, :]],)
