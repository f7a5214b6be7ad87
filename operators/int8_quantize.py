"""Int8Quantize and Int8Dequantize: float tensors to Caffe2's Int8 tensor blobs and back.

After ``caffe2/operators/quantized/int8_quantize_op.h`` / ``int8_dequantize_op.h``:
``Y = clamp(Y_zero_point + nearbyint(X / Y_scale), 0, 255)`` as uint8 with the
scale and zero point attached (float32 division, round half to even), and
``Y = (X - X.zero_point) * X.scale`` as float32.  Int8Quantize's optional second
input, an Int8QuantParamsBlob (Int8GenQuantParamsMinMax's output, or
``dnnlowp_pybind11.CreateInt8QuantParamsBlob``), overrides Y_scale and
Y_zero_point, as in the newest Caffe2.  A NaN in X is an error (Caffe2's
conversion of it was undefined); infinities saturate at 0 / 255.
"""

import numpy as np

from caffe2lite.operators._int8 import Y_ARGS, int8_input, output_params, quantize
from caffe2lite.runtime import (NO_GRADIENT, Int8QuantParams, Int8Tensor, OpSchema, TensorSpec,
                                register_kernel, register_schema)

register_schema(OpSchema(
    "Int8Quantize", num_inputs=(1, 2), num_outputs=1, args=Y_ARGS, cpu_fallback=True,
    infer_shapes=lambda ctx, X, *q: (None if X is None else TensorSpec(X.shape, np.uint8),),
    inputs=[("X", "float32 tensor"),
            ("Qparam", "optional Int8QuantParamsBlob overriding Y_scale and Y_zero_point")],
    outputs=[("Y", "Int8 tensor: uint8 data, Y_scale, Y_zero_point")],
    doc="Quantize a float32 tensor to uint8: clamp(Y_zero_point + round(X / Y_scale), 0, 255).",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8Dequantize", num_inputs=1, num_outputs=1, cpu_fallback=True,
    infer_shapes=lambda ctx, X: (None if X is None else TensorSpec(X.shape, np.float32),),
    inputs=[("qX", "Int8 tensor")],
    outputs=[("Y", "float32 tensor (qX - zero_point) * scale")],
    doc="Dequantize an Int8 tensor to float32: (data - zero_point) * scale.",
    gradient=NO_GRADIENT))


def _given_params(ctx, qparam):
    """(scale as float32, zero point) from an Int8QuantParamsBlob input, checked."""
    if not isinstance(qparam, Int8QuantParams):
        ctx.fail(f"{ctx.input_label(1)} must be an Int8QuantParamsBlob (from "
                 f"Int8GenQuantParamsMinMax), got {type(qparam).__name__}")
    scale, zero_point = np.float32(qparam.scale), qparam.zero_point
    if not (np.isfinite(scale) and scale > 0) or not 0 <= zero_point <= 255:
        ctx.fail(f"{ctx.input_label(1)} holds scale {qparam.scale} and zero point "
                 f"{zero_point}: a positive finite scale and a zero point in [0, 255] needed")
    return scale, zero_point


@register_kernel("Int8Quantize")
def int8_quantize(ctx, X, *qparam):
    scale, zero_point = _given_params(ctx, qparam[0]) if qparam else output_params(ctx)
    if getattr(X, "dtype", None) != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be a float32 tensor, got "
                 f"{getattr(X, 'dtype', type(X).__name__)}")
    if np.isnan(X).any():
        ctx.fail(f"{ctx.input_label(0)} holds NaN, which has no quantized value")
    return Int8Tensor(quantize(X, scale, zero_point), float(scale), zero_point)


@register_kernel("Int8Dequantize")
def int8_dequantize(ctx, qX):
    x = int8_input(ctx, 0, qX)
    return x.real_values()
