"""Int8FC: quantized fully connected layer (QNNPACK's arithmetic).

After ``caffe2/operators/quantized/int8_fc_op.h``: X flattened to (M, K) at
axis 1, W (N, K) uint8, B (N,) int32; ``acc = B + (x - X.zero_point) @ (w -
W.zero_point).T`` in int32, requantized with the float32 scale ``X.scale *
W.scale / Y_scale`` (< 1) into [0, 255] at ``Y_zero_point``; Y is (M, N).
An empty batch is an error, as QNNPACK's.
"""

import math

import numpy as np

from caffe2lite.operators._int8 import (Y_ARGS, check_scale_below_one, int8_input, output_params,
                                        requantize_q31, wrap_int32)
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, TensorSpec,
                                register_kernel, register_schema)


def _fc_shapes(ctx, X, W, B):
    if X is None or W is None or len(X.shape) < 1:
        return (None,)
    k = math.prod(X.shape[1:])
    return (TensorSpec((math.prod(X.shape) // k if k else 0, W.shape[0]), np.uint8),)


register_schema(OpSchema(
    "Int8FC", num_inputs=3, num_outputs=1, cpu_fallback=True,
    args=[*Y_ARGS, Arg("order", "string", "NHWC", "accepted for Caffe2 nets; X is flattened "
                                                  "at axis 1 whatever its layout")],
    infer_shapes=_fc_shapes,
    inputs=[("X", "Int8 input, flattened to (M, K) at axis 1"), ("W", "Int8 weights (N, K)"),
            ("b", "Int8 bias (N,) holding int32")],
    outputs=[("Y", "Int8 output (M, N)")],
    doc="Quantized fully connected layer: Y = requantize(b + (X - Xz) @ (W - Wz).T).",
    gradient=NO_GRADIENT))


@register_kernel("Int8FC")
def int8_fc(ctx, X, W, B):
    x, w, b = int8_input(ctx, 0, X), int8_input(ctx, 1, W), int8_input(ctx, 2, B, np.int32)
    scale, zero_point = output_params(ctx)
    if x.data.ndim < 1 or w.data.ndim != 2:
        ctx.fail(f"X must have a batch dim and W must be 2-D (N, K), got {x.data.shape} and "
                 f"{w.data.shape}")
    k = math.prod(x.data.shape[1:])
    n_out = w.data.shape[0]
    if w.data.shape[1] != k:
        ctx.fail(f"X {x.data.shape} has K = {k} features, W {w.data.shape} has "
                 f"{w.data.shape[1]}")
    if b.data.size != n_out:
        ctx.fail(f"{ctx.input_label(2)} must hold {n_out} biases, got {b.data.size}")
    m = x.data.shape[0]
    if m == 0:
        ctx.fail(f"{ctx.input_label(0)} has batch size 0, which QNNPACK refuses")
    fc_scale = np.float32(np.float32(x.scale) * np.float32(w.scale)) / scale
    check_scale_below_one(ctx, fc_scale, "fully connected")
    xq = (x.data.reshape(m, k).astype(np.int32) - x.zero_point).astype(np.float64)
    wq = (w.data.astype(np.int32) - w.zero_point).astype(np.float64)
    acc = wrap_int32((xq @ wq.T).astype(np.int64) + b.data.reshape(-1).astype(np.int64))
    return Int8Tensor(requantize_q31(acc, fc_scale, zero_point, 0, 255), float(scale),
                      zero_point)
