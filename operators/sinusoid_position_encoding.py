"""SinusoidPositionEncoding: the Transformer's sinusoidal embedding of positions
(Caffe2's sinusoid_position_encoding_op.h).

For an int tensor of positions (M, K): output[m, k, d] = amplitude * sin(x) for even d,
amplitude * cos(x) for odd d, with x = position / alpha ** (d / embedding_size).
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, check_allocation,
                                register_kernel, register_schema)

register_schema(OpSchema(
    "SinusoidPositionEncoding", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, p: (None if p is None else TensorSpec(
        p.shape + (ctx.args["embedding_size"],), np.float32),),
    inputs=[("positions", "int32/int64 (M, K) positions")],
    outputs=[("output", "float (M, K, embedding_size)")],
    args=[Arg("embedding_size", "int", 100, "the embedding width"),
          Arg("alpha", "float", 10000.0, "the base of the wavelengths"),
          Arg("amplitude", "float", 1.0, "the scale of the embedding")],
    doc="sin / cos of position / alpha^(d / embedding_size), alternating over d.",
    gradient=NO_GRADIENT))


@register_kernel("SinusoidPositionEncoding", devices=("CPU", "CUDA"))
def sinusoid_position_encoding(ctx, positions):
    xp = ctx.xp
    width = ctx.args["embedding_size"]
    if positions.dtype not in (np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(0)} must hold int32/int64 positions, got {positions.dtype}")
    if width < 1 or not ctx.args["alpha"] > 0:
        ctx.fail(f"arguments 'embedding_size' and 'alpha' must be >= 1 and > 0, got {width} and "
                 f"{ctx.args['alpha']}")
    check_allocation(ctx, positions.shape + (width,), 4, "argument 'embedding_size'")
    d = xp.arange(width, dtype=np.float64)
    x = positions[..., None].astype(np.float64) / xp.power(ctx.args["alpha"], d / width)
    out = xp.where(d % 2 == 0, xp.sin(x), xp.cos(x)) * ctx.args["amplitude"]
    return (out.astype(np.float32),)
