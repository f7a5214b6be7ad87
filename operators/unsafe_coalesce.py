"""UnsafeCoalesce: N tensors moved into one buffer, each output a view of its part.

Outputs 0..N-1 are the inputs themselves (in place, as Caffe2 enforced), now views of
output N, the inputs flattened and concatenated, so one op over the buffer (a single
update of many small biases, say) touches them all.  The inputs must share a dtype."""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "UnsafeCoalesce", num_inputs=(1, None), num_outputs=(2, None),
    num_inputs_outputs=lambda n_in, n_out: n_out == n_in + 1,
    enforce_inplace=lambda i, o: i == o,
    inputs=[("X1, ..., XN", "tensors of one dtype")],
    outputs=[("X1, ..., XN", "the inputs, as views of the buffer"),
             ("coalesced", "the inputs flattened and concatenated")],
    doc="Coalesces N tensors into one buffer; each output is a view of its part.",
    gradient=NO_GRADIENT))


@register_kernel("UnsafeCoalesce", devices=("CPU", "CUDA"))
def unsafe_coalesce(ctx, *inputs):
    xp = ctx.xp
    dtype = getattr(inputs[0], "dtype", None)
    for i, x in enumerate(inputs):
        if getattr(x, "dtype", None) != dtype or dtype.kind not in "biuf":
            ctx.fail(f"{ctx.input_label(i)} must be a numeric tensor of the first input's "
                     f"dtype {dtype}, got {getattr(x, 'dtype', type(x).__name__)}")
    buffer = xp.concatenate([x.reshape(-1) for x in inputs])
    ends = np.cumsum([x.size for x in inputs])
    views = [buffer[end - x.size:end].reshape(x.shape) for x, end in zip(inputs, ends)]
    return tuple(views) + (buffer,)
