"""Int8Softmax: quantized softmax over each row (QNNPACK's SoftArgMax).

After ``caffe2/operators/quantized/int8_softmax_op.h``: X viewed as (N, rest) rows;
the output quantization is fixed at scale 1/256, zero point 0 (Y_scale /
Y_zero_point must say so).  QNNPACK builds a table of 256 uint32 values
``lrint(q * exp((i - 255) * X.scale))`` with ``q = min(2**32 - 1 / rest, 2**23 - 1)``
(float64), looks each input up shifted by its row's maximum, and writes
``min(255, (t << 8 + sum / 2) / sum)`` with ``sum`` the row's table total.
"""


import numpy as np

from caffe2lite.operators._int8 import Y_ARGS, int8_input
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, register_kernel,
                                register_schema, same_as)

register_schema(OpSchema(
    "Int8Softmax", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, cpu_fallback=True,
    args=[*Y_ARGS, Arg("order", "string", "NHWC", "accepted for Caffe2 nets; no effect")],
    infer_shapes=same_as(0),
    inputs=[("input", "Int8 tensor, softmax over everything after the first dim")],
    outputs=[("output", "Int8 probabilities at scale 1/256, zero point 0")],
    doc="Quantized softmax over each row (all dims after the first), QNNPACK's lookup-table "
        "arithmetic; the output scale must be 1/256 and zero point 0.",
    gradient=NO_GRADIENT))


@register_kernel("Int8Softmax")
def int8_softmax(ctx, X):
    x = int8_input(ctx, 0, X)
    if ctx.args["Y_zero_point"] != 0 or np.float32(ctx.args["Y_scale"]) != np.float32(1 / 256):
        ctx.fail(f"Y_scale {ctx.args['Y_scale']} / Y_zero_point {ctx.args['Y_zero_point']}: "
                 f"only scale 1/256 and zero point 0 are supported")
    scale = np.float32(x.scale)
    if not (np.isfinite(scale) and scale > 0):
        ctx.fail(f"{ctx.input_label(0)} scale {x.scale} must be positive and finite")
    if x.data.ndim < 1 or x.data.shape[0] == 0 or x.data.size == 0:
        ctx.fail(f"{ctx.input_label(0)} {x.data.shape}: QNNPACK refuses an empty batch or row")
    n = x.data.shape[0]
    channels = x.data.size // n
    qscale = min((2.0 ** 32 - 1) / channels, 8388607.0)
    table = np.rint(qscale * np.exp((np.arange(256, dtype=np.float64) - 255)
                                    * float(scale))).astype(np.int64)
    rows = x.data.reshape(n, channels).astype(np.int64)
    shifted = table[rows + (255 - rows.max(axis=1, keepdims=True))]
    total = shifted.sum(axis=1, keepdims=True) & 0xFFFFFFFF  # uint32 sum
    if (total == 0).any():
        ctx.fail(f"{ctx.input_label(0)}: a row's exponentials underflow to 0 (scale "
                 f"{x.scale} too large for {channels} values)")
    q = ((shifted << 8) + (total >> 1)) // total
    y = np.minimum(q, 255).astype(np.uint8).reshape(x.data.shape)
    return Int8Tensor(y, float(np.float32(1 / 256)), 0)


