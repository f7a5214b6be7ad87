"""Fused 8-bit row-wise (de)quantization: a float row <-> uint8 codes + float32 scale and bias.

``FloatToFused8BitRowwiseQuantized`` turns each row (the last axis; leading axes
are rows) of a float32 tensor into D uint8 codes followed by 8 bytes: the
row's scale = (max - min) / 255 and bias = min as little-endian float32, with
codes lrintf((x - min) * 255 / (range + 1e-8)) (half to even).
``Fused8BitRowwiseQuantizedToFloat`` gives back codes * scale + bias.  The
Half variants read / write float16 values (converted to float32 first / last);
the scale and bias stay float32.  The HalfScaleBias variants store the scale and
bias as float16 (4 trailing bytes; Fused8BitRowwiseQuantizedHalfScaleBiasToHalfFloat
outputs float32, as Caffe2's registration did; Caffe2's FloatToFusedNBitRowwiseQuantizedSBHalf
at 8 bits: the bias is the minimum rounded to float16, and codes are clamped to
[0, 255]).  Formulas and float32 operation order are Caffe2's perfkernels
(operators/_rowwise_8bit.py), so the bytes match Caffe2's.  No gradients
(Caffe2's NO_GRADIENT).
"""

import functools

import numpy as np

from caffe2lite.operators._rowwise_8bit import checked_float_rows, fused_dequantize, fused_quantize
from caffe2lite.operators._rowwise_nbit import nbit_dequantize, nbit_quantize
from caffe2lite.operators._segments import check_dtype
from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema

# the float16 scale and bias layout is Caffe2's N-bit one at 8 bits
_quantize_half_scale_bias = functools.partial(nbit_quantize, bit_rate=8)
_dequantize_half_scale_bias = functools.partial(nbit_dequantize, bit_rate=8)

# op type: (float dtype, bytes of scale + bias, quantize or dequantize function)
QUANTIZE = {
    "FloatToFused8BitRowwiseQuantized": (np.float32, 8, fused_quantize),
    "HalfFloatToFused8BitRowwiseQuantized": (np.float16, 8, fused_quantize),
    "FloatToFused8BitRowwiseQuantizedHalfScaleBias": (np.float32, 4,
                                                      _quantize_half_scale_bias),
    "HalfFloatToFused8BitRowwiseQuantizedHalfScaleBias": (np.float16, 4,
                                                          _quantize_half_scale_bias),
}
DEQUANTIZE = {
    "Fused8BitRowwiseQuantizedToFloat": (np.float32, 8, fused_dequantize),
    "Fused8BitRowwiseQuantizedToHalfFloat": (np.float16, 8, fused_dequantize),
    "Fused8BitRowwiseQuantizedHalfScaleBiasToFloat": (np.float32, 4,
                                                      _dequantize_half_scale_bias),
    # float32 despite its name: Caffe2 registered it with a float output (and said so)
    "Fused8BitRowwiseQuantizedHalfScaleBiasToHalfFloat": (np.float32, 4,
                                                          _dequantize_half_scale_bias),
}
_NAMES = {np.float32: ("float32", "Float32"), np.float16: ("float16", "Float16")}


def _layout(tail):
    kind = "float32" if tail == 8 else "float16"
    return (f"each row: D uint8 codes, then the scale and the bias as little-endian {kind} "
            f"({tail} bytes; value = code * scale + bias)")


def _quantize_shapes(ctx, x):
    if x is None:
        return (None,)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    tail = QUANTIZE[ctx.op_def.type][1]
    return (TensorSpec(x.shape[:-1] + (x.shape[-1] + tail,), np.uint8),)


def _dequantize_shapes(ctx, q):
    if q is None:
        return (None,)
    if q.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    dtype, tail, _ = DEQUANTIZE[ctx.op_def.type]
    return (TensorSpec(q.shape[:-1] + (q.shape[-1] - tail,), dtype),)


for _type, (_dtype, _tail, _) in QUANTIZE.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_quantize_shapes,
        cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
        inputs=[("input", f"{_NAMES[_dtype][1]} input data, rank >= 1; the last axis is a "
                          f"row, the others count rows")],
        outputs=[("output", f"uint8, input.shape[:-1] + (D + {_tail},): {_layout(_tail)}")],
        doc="8-bit row-wise quantization with fused storage: per row, scale = (max - min) "
            "/ 255 and bias = min, stored after the row's codes, codes = round((x - bias) / "
            "scale) " + ("(lrintf((x - min) * 255 / (max - min + 1e-8)))." if _tail == 8 else
                         "(bias and scale rounded to float16 first, codes clamped to "
                         "[0, 255])."),
        gradient=NO_GRADIENT))

for _type, (_dtype, _tail, _) in DEQUANTIZE.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_dequantize_shapes,
        cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
        inputs=[("scale_bias_quantized_input", f"uint8, last axis D + {_tail}: "
                                               f"{_layout(_tail)}")],
        outputs=[("float_output" if _dtype == np.float32 else "float16_output",
                  f"{_NAMES[_dtype][1]} data, input.shape[:-1] + (D,)")],
        doc="De-quantizes fused 8-bit row-wise rows: code * scale + bias per row (float32 "
            "arithmetic" + (", then rounded to float16)." if _dtype == np.float16 else ")."),
        gradient=NO_GRADIENT))


@register_kernel("FloatToFused8BitRowwiseQuantized", devices=("CPU",))
@register_kernel("HalfFloatToFused8BitRowwiseQuantized", devices=("CPU",))
@register_kernel("FloatToFused8BitRowwiseQuantizedHalfScaleBias", devices=("CPU",))
@register_kernel("HalfFloatToFused8BitRowwiseQuantizedHalfScaleBias", devices=("CPU",))
def quantize_fused_8bit_rowwise(ctx, x):
    dtype, tail, quantize = QUANTIZE[ctx.op_def.type]
    rows = checked_float_rows(ctx, x, dtype, _NAMES[dtype][0])
    return (quantize(rows).reshape(x.shape[:-1] + (rows.shape[1] + tail,)),)


@register_kernel("Fused8BitRowwiseQuantizedToFloat", devices=("CPU",))
@register_kernel("Fused8BitRowwiseQuantizedToHalfFloat", devices=("CPU",))
@register_kernel("Fused8BitRowwiseQuantizedHalfScaleBiasToFloat", devices=("CPU",))
@register_kernel("Fused8BitRowwiseQuantizedHalfScaleBiasToHalfFloat", devices=("CPU",))
def dequantize_fused_8bit_rowwise(ctx, q):
    dtype, tail, dequantize = DEQUANTIZE[ctx.op_def.type]
    check_dtype(ctx, q, 0, (np.uint8,), "uint8 (fused 8-bit row-wise rows)")
    if q.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    cols = int(q.shape[-1])
    if cols < tail:
        ctx.fail(f"{ctx.input_label(0)}: rows of {cols} bytes cannot hold the {tail} trailing "
                 f"bytes of scale and bias")
    out = dequantize(q.reshape(-1, cols))
    return (out.astype(dtype, copy=False).reshape(q.shape[:-1] + (cols - tail,)),)
