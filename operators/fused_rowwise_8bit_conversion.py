"""Fused 8-bit row-wise (de)quantization: a float row <-> uint8 codes + float32 scale and bias.

``FloatToFused8BitRowwiseQuantized`` turns each row (the last axis; leading axes
are rows) of a float32 tensor into D uint8 codes followed by 8 bytes: the
row's scale = (max - min) / 255 and bias = min as little-endian float32, with
codes lrintf((x - min) * 255 / (range + 1e-8)) (half to even).
``Fused8BitRowwiseQuantizedToFloat`` gives back codes * scale + bias.  The
Half variants read / write float16 values (converted to float32 first / last);
the scale and bias stay float32.  Formulas and float32 operation order are
Caffe2's perfkernels (operators/_rowwise_8bit.py), so the bytes match Caffe2's.
No gradients (Caffe2's NO_GRADIENT).
"""

import math

import numpy as np

from caffe2lite.registry import register_kernel, register_schema
from caffe2lite.schema import NO_GRADIENT, OpSchema
from caffe2lite.shape_inference import TensorSpec
from caffe2lite.operators._rowwise_8bit import (SCALE_BIAS_BYTES, fused_dequantize,
                                                fused_quantize)
from caffe2lite.operators._segments import check_dtype

_LAYOUT = ("each row: D uint8 codes, then the scale and the bias as little-endian float32 "
           "(value = code * scale + bias)")


def _quantize_shapes(ctx, x):
    if x is None:
        return (None,)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    return (TensorSpec(x.shape[:-1] + (x.shape[-1] + SCALE_BIAS_BYTES,), np.uint8),)


def _dequantize_shapes(dtype):
    def infer(ctx, q):
        if q is None:
            return (None,)
        if q.ndim < 1:
            ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
        return (TensorSpec(q.shape[:-1] + (q.shape[-1] - SCALE_BIAS_BYTES,), dtype),)
    return infer


for _type, _dtype, _what in (("FloatToFused8BitRowwiseQuantized", np.float32, "Float32"),
                             ("HalfFloatToFused8BitRowwiseQuantized", np.float16, "Float16")):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_quantize_shapes,
        inputs=[("input", f"{_what} input data, rank >= 1; the last axis is a row, the "
                          f"others count rows")],
        outputs=[("output", f"uint8, input.shape[:-1] + (D + 8,): {_LAYOUT}")],
        doc="8-bit row-wise quantization with fused storage: per row, scale = (max - min) "
            "/ 255 and bias = min (float32, stored in the row's last 8 bytes), codes = "
            "lrintf((x - min) * 255 / (max - min + 1e-8)).",
        gradient=NO_GRADIENT))

for _type, _dtype, _what in (("Fused8BitRowwiseQuantizedToFloat", np.float32, "Float32"),
                             ("Fused8BitRowwiseQuantizedToHalfFloat", np.float16, "Float16")):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_dequantize_shapes(_dtype),
        inputs=[("scale_bias_quantized_input", f"uint8, last axis D + 8: {_LAYOUT}")],
        outputs=[("float_output" if _dtype == np.float32 else "float16_output",
                  f"{_what} data, input.shape[:-1] + (D,)")],
        doc="De-quantizes FloatToFused8BitRowwiseQuantized rows: code * scale + bias per "
            "row (float32 arithmetic" + (", then rounded to float16)." if _dtype == np.float16
                                         else ")."),
        gradient=NO_GRADIENT))


def _quantize(ctx, x, dtype, what):
    check_dtype(ctx, x, 0, (dtype,), what)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    width = int(x.shape[-1])
    if width == 0 and math.prod(x.shape[:-1]):
        ctx.fail(f"{ctx.input_label(0)} has rows of 0 values (shape {tuple(x.shape)}): no "
                 f"minimum or maximum to quantize with")
    rows = x.reshape(-1, width).astype(np.float32, copy=False)
    return (fused_quantize(rows).reshape(x.shape[:-1] + (width + SCALE_BIAS_BYTES,)),)


def _dequantize(ctx, q, dtype):
    check_dtype(ctx, q, 0, (np.uint8,), "uint8 (from FloatToFused8BitRowwiseQuantized)")
    if q.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    cols = int(q.shape[-1])
    if cols < SCALE_BIAS_BYTES:
        ctx.fail(f"{ctx.input_label(0)}: rows of {cols} bytes cannot hold the 8 trailing "
                 f"bytes of scale and bias")
    out = fused_dequantize(q.reshape(-1, cols))
    return (out.astype(dtype, copy=False).reshape(q.shape[:-1] + (cols - SCALE_BIAS_BYTES,)),)


@register_kernel("FloatToFused8BitRowwiseQuantized", devices=("CPU",))
def float_to_fused_8bit_rowwise_quantized(ctx, x):
    return _quantize(ctx, x, np.float32, "float32")


@register_kernel("HalfFloatToFused8BitRowwiseQuantized", devices=("CPU",))
def half_float_to_fused_8bit_rowwise_quantized(ctx, x):
    return _quantize(ctx, x, np.float16, "float16")


@register_kernel("Fused8BitRowwiseQuantizedToFloat", devices=("CPU",))
def fused_8bit_rowwise_quantized_to_float(ctx, q):
    return _dequantize(ctx, q, np.float32)


@register_kernel("Fused8BitRowwiseQuantizedToHalfFloat", devices=("CPU",))
def fused_8bit_rowwise_quantized_to_half_float(ctx, q):
    return _dequantize(ctx, q, np.float16)
