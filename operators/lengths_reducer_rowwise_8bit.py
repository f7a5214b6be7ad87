"""The older 8-bit row-wise layout: uint8 codes plus a separate (N, 2) float32 scale_bias.

``FloatToRowwiseQuantized8Bits`` views its input as a matrix (dim 0 = rows, the
other dims flattened) and returns uint8 codes shaped like the input and
scale_bias[i] = (scale, bias): bias = min; scale = (max - min) / 255, codes
round((x - min) * (1 / scale)) rounding half away from zero -- or, for a row
whose range is below 1e-10, scale 1 and all-zero codes.
``Rowwise8BitQuantizedToFloat`` gives codes * scale + bias.
``SparseLengths{Sum,WeightedSum,Mean,WeightedMean}8BitsRowwise`` (inputs DATA,
[SCALARS,] INDICES, LENGTHS, scale_bias, as in Caffe2) sum the looked-up rows
dequantized on the fly -- (w * scale) * codes + w * bias, left to right from 0
in float32, a Mean bag then times 1.0f / length -- output (len(LENGTHS),) +
DATA.shape[1:].  Engines NUMPY and NATIVE as for the fused ops.  No gradients
(Caffe2's NO_GRADIENT).
"""

import math

import numpy as np

from caffe2lite.operators._rowwise_8bit import (check_scale_bias, dequantize, legacy_quantize,
                                                quantized_segment_sum, register_lookup_engines)
from caffe2lite.operators._segments import check_dtype, check_scalars, check_vector
from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema

_SCALE_BIAS = ("scale_bias", "float32 (N, 2) matrix: row i holds (scale_i, bias_i) of DATA row i")


def _as_matrix(ctx, x, i=0):
    """Caffe2's view: dim 0 rows, the rest flattened (rank >= 1)."""
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(i)} must have rank >= 1, got a scalar")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


# -- conversions ----------------------------------------------------------------------
def _quantize_shapes(ctx, x):
    if x is None:
        return (None, None)
    return (TensorSpec(x.shape, np.uint8), TensorSpec((x.shape[0], 2), np.float32))


register_schema(OpSchema(
    "FloatToRowwiseQuantized8Bits", num_inputs=1, num_outputs=2, infer_shapes=_quantize_shapes,
    cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
    inputs=[("input", "float32 tensor of rank >= 1, viewed as (dim 0, the rest flattened)")],
    outputs=[("quantized_input", "uint8 codes, shaped like input"), _SCALE_BIAS],
    doc="8-bit row-wise quantization: per row bias = min, scale = (max - min) / 255, codes "
        "round((x - min) / scale) (half away from zero); rows with max - min < 1e-10 get "
        "scale 1 and zero codes.",
    gradient=NO_GRADIENT))


@register_kernel("FloatToRowwiseQuantized8Bits", devices=("CPU",))
def float_to_rowwise_quantized_8bits(ctx, x):
    check_dtype(ctx, x, 0, (np.float32,), "float32")
    codes, scale_bias = legacy_quantize(_as_matrix(ctx, x))
    return codes.reshape(x.shape), scale_bias


def _dequantize_shapes(ctx, q, scale_bias):
    return (None if q is None else TensorSpec(q.shape, np.float32),)


register_schema(OpSchema(
    "Rowwise8BitQuantizedToFloat", num_inputs=2, num_outputs=1,
    cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
    infer_shapes=_dequantize_shapes,
    inputs=[("quantized_input", "uint8 codes from FloatToRowwiseQuantized8Bits"), _SCALE_BIAS],
    outputs=[("output", "float32, shaped like quantized_input: codes * scale + bias per row")],
    doc="De-quantizes FloatToRowwiseQuantized8Bits: row i becomes codes * scale_i + bias_i.",
    gradient=NO_GRADIENT))


@register_kernel("Rowwise8BitQuantizedToFloat", devices=("CPU",))
def rowwise_8bit_quantized_to_float(ctx, q, scale_bias):
    check_dtype(ctx, q, 0, (np.uint8,), "uint8 (from FloatToRowwiseQuantized8Bits)")
    codes = _as_matrix(ctx, q)
    check_scale_bias(ctx, scale_bias, 1, codes.shape[0])
    return (dequantize(codes, scale_bias[:, 0], scale_bias[:, 1]).reshape(q.shape),)


# -- lookups --------------------------------------------------------------------------
OPS = {  # op type: (weighted, mean)
    "SparseLengthsSum8BitsRowwise": (False, False),
    "SparseLengthsWeightedSum8BitsRowwise": (True, False),
    "SparseLengthsMean8BitsRowwise": (False, True),
    "SparseLengthsWeightedMean8BitsRowwise": (True, True),
}
_DATA = ("DATA", "uint8 codes from FloatToRowwiseQuantized8Bits, rank >= 1")
_SCALARS = ("SCALARS", "float32 vector, one weight per entry of INDICES")
_INDICES = ("INDICES", "int32/int64 vector of row numbers into DATA")
_LENGTHS = ("LENGTHS", "int32/int64 vector of non-negative bag sizes summing to len(INDICES)")


def _lookup_shapes(ctx, data, *inputs):
    lengths = inputs[-2]
    if data is None or lengths is None:
        return (None,)
    check_vector(ctx, lengths, len(inputs) - 1)
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    return (TensorSpec((lengths.shape[0],) + data.shape[1:], np.float32),)


for _type, (_weighted, _mean) in OPS.items():
    _base = _type.replace("8BitsRowwise", "")
    register_schema(OpSchema(
        _type, num_inputs=5 if _weighted else 4, num_outputs=1, infer_shapes=_lookup_shapes,
        cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
        inputs=[_DATA] + ([_SCALARS] if _weighted else []) + [_INDICES, _LENGTHS, _SCALE_BIAS],
        outputs=[("output", "float32 (len(LENGTHS),) + DATA.shape[1:]")],
        doc=f"{_base} on an 8-bit row-wise table: each looked-up row r is dequantized as "
            f"(w * scale_r) * codes + w * bias_r (w = the row's weight, or 1) and added to "
            f"its bag" + (", which is then multiplied by 1.0f / its length." if _mean else "."),
        gradient=NO_GRADIENT))


def _reduce(ctx, inputs, native):
    weighted, mean = OPS[ctx.op_def.type]
    data, indices, lengths, scale_bias = inputs[0], inputs[-3], inputs[-2], inputs[-1]
    first = 2 if weighted else 1
    check_dtype(ctx, data, 0, (np.uint8,), "uint8 (codes from FloatToRowwiseQuantized8Bits)")
    table = _as_matrix(ctx, data)
    check_scale_bias(ctx, scale_bias, len(inputs) - 1, table.shape[0])
    weights = None
    if weighted:
        weights = inputs[1]
        check_vector(ctx, indices, first)
        check_scalars(ctx, weights, 1, int(indices.shape[0]))
    out = quantized_segment_sum(ctx, np.ascontiguousarray(table), table.shape[1], scale_bias,
                                indices, lengths, weights, mean, first, native)
    return (out.reshape(lengths.shape[:1] + data.shape[1:]),)


register_lookup_engines(OPS, _reduce)
