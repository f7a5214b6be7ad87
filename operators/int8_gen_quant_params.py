"""Int8QuantSchemeBlobFill and Int8GenQuantParamsMinMax: quantization parameters as blobs.

After ``caffe2/quantization/server/int8_quant_scheme_blob_fill.h`` and
``int8_gen_quant_params_min_max.h``.  A scheme blob (``Int8QuantScheme``:
``quantization_kind``, ``preserve_sparsity``) and a parameter blob
(``Int8QuantParams``: ``scale``, ``zero_point``) are Caffe2 blob types of their
own; Int8Quantize's optional second input takes the parameter blob.  The
parameters for a range ``[min, max]`` are fbgemm's ``ChooseQuantizationParams``
for uint8 (``QuantUtils.cc``): the range is widened to contain 0, ``scale =
float((max - min) / 255)`` (0.1 when that is 0 or its reciprocal overflows), the
zero point the rounded ``qmin - min / scale`` or ``qmax - max / scale`` (the one
adding smaller terms), clamped to [0, 255]; with ``preserve_sparsity`` and a
range across 0 the range is made symmetric and the zero point is 128.
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8QuantParams, Int8QuantScheme, OpSchema,
                                register_kernel, register_schema)

F32 = np.float32
QMIN, QMAX = 0, 255

register_schema(OpSchema(
    "Int8QuantSchemeBlobFill", num_inputs=0, num_outputs=1, opaque_outputs=True,
    cpu_fallback=True,
    args=[Arg("quantization_kind", "string", "MIN_MAX_QUANTIZATION",
              "how parameters are chosen (only MIN_MAX_QUANTIZATION is read here: by "
              "Int8GenQuantParamsMinMax)"),
          Arg("preserve_sparsity", "bool", False, "a symmetric range, zero point 128")],
    outputs=[("quant_scheme", "Int8QuantSchemeBlob")],
    doc="Creates an Int8QuantSchemeBlob holding the quantization kind and whether to preserve "
        "sparsity.", gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8GenQuantParamsMinMax", num_inputs=(2, 3), num_outputs=1, opaque_outputs=True,
    cpu_fallback=True,
    inputs=[("min", "the lower bound of the tensor to be quantized (its first element)"),
            ("max", "the upper bound (its first element)"),
            ("quant_scheme", "optional Int8QuantSchemeBlob: only preserve_sparsity is used")],
    outputs=[("quant_param", "Int8QuantParamsBlob with the scale and zero point")],
    doc="Generates int8 tensor quantization parameters given the lower and upper bound of "
        "the input tensor.", gradient=NO_GRADIENT))


def choose_quantization_params(lo, hi, preserve_sparsity: bool = False) -> Int8QuantParams:
    """fbgemm's ChooseQuantizationParams for the uint8 range [0, 255], in its precisions
    (float32 bounds and scale, double intermediates)."""
    lo, hi = F32(lo), F32(hi)
    if lo < 0 and hi > 0 and preserve_sparsity:
        sym_lo, sym_hi = -((QMAX - QMIN) // 2 + 1), (QMAX - QMIN) // 2
        widest = float(max(abs(lo / F32(sym_lo)), abs(hi / F32(sym_hi))))
        lo, hi = F32(widest * sym_lo), F32(widest * sym_hi)
    lo, hi = min(lo, F32(0)), max(hi, F32(0))
    scale = F32((float(hi) - float(lo)) / (QMAX - QMIN))
    with np.errstate(divide="ignore", over="ignore"):
        if scale == 0 or np.isinf(F32(1) / scale):
            scale = F32(0.1)
    from_min, from_max = QMIN - float(lo) / float(scale), QMAX - float(hi) / float(scale)
    error_min = abs(QMIN) + abs(float(lo) / float(scale))
    error_max = abs(QMAX) + abs(float(hi) / float(scale))
    zero_point = from_min if error_min < error_max else from_max
    if lo < 0 and hi > 0 and preserve_sparsity:
        zero_point = (QMIN + QMAX) // 2 + 1
    if zero_point < QMIN:
        nudged = QMIN
    elif zero_point > QMAX:
        nudged = QMAX
    else:
        nudged = int(np.rint(zero_point))  # nearbyint: half to even
    return Int8QuantParams(float(scale), nudged)


def _bound(ctx, i, value):
    if getattr(value, "dtype", None) != F32 or value.size < 1:
        ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor holding the bound, got "
                 f"{getattr(value, 'dtype', type(value).__name__)} "
                 f"{tuple(getattr(value, 'shape', ()))}")
    bound = F32(np.asarray(ctx.device.to_host(value)).reshape(-1)[0])
    if not math.isfinite(bound):
        ctx.fail(f"{ctx.input_label(i)} must be finite, got {bound}")
    return bound


@register_kernel("Int8QuantSchemeBlobFill")
def int8_quant_scheme_blob_fill(ctx):
    return Int8QuantScheme(ctx.args["quantization_kind"], bool(ctx.args["preserve_sparsity"]))


@register_kernel("Int8GenQuantParamsMinMax")
def int8_gen_quant_params_min_max(ctx, lo, hi, *scheme):
    lo, hi = _bound(ctx, 0, lo), _bound(ctx, 1, hi)
    if not lo <= hi:
        ctx.fail(f"min {lo} must not be greater than max {hi}")
    sparse = False
    if scheme:
        if not isinstance(scheme[0], Int8QuantScheme):
            ctx.fail(f"{ctx.input_label(2)} must be an Int8QuantSchemeBlob (from "
                     f"Int8QuantSchemeBlobFill), got {type(scheme[0]).__name__}")
        sparse = scheme[0].preserve_sparsity
    return choose_quantization_params(lo, hi, sparse)
