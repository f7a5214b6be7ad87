"""N-bit fused row-wise (de)quantization: Caffe2's 2- and 4-bit embedding tables.

``FloatToFused{2,4}BitRowwiseQuantized`` (float32 input) and
``HalfToFused{2,4}BitRowwiseQuantized`` (float16) pack each row (last axis; leading
axes count rows, whose width must be a multiple of 8 / bits) into codes, four or
two to a byte, then a float16 scale and bias (operators/_rowwise_nbit.py has the
formulas); ``Fused{2,4}BitRowwiseQuantizedToFloat`` / ``...ToHalf`` give back
scale * code + bias.  The ``FloatToFused{2,4}BitFakeRowwiseQuantized`` /
``HalfToFused{2,4}BitFakeRowwiseQuantized`` ops quantize as N-bit but store one
code per byte with float32 scale and bias -- the 8-bit fused layout, so
Fused8BitRowwiseQuantizedToFloat and the 8-bit lookups read them (Caffe2's way of
checking N-bit tables against the 8-bit kernels).  The quantizing ops have a
GREEDY engine, which first narrows each row's range with Caffe2's greedy L2
search.  No gradients (Caffe2's NO_GRADIENT).
"""

import numpy as np

from caffe2lite.operators._rowwise_8bit import checked_float_rows
from caffe2lite.operators._rowwise_nbit import (HALF_SB_BYTES, fake_quantize, nbit_dequantize,
                                                nbit_quantize, packed_width, per_byte)
from caffe2lite.operators._segments import check_dtype
from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema

BIT_RATES = (2, 4)
_FLOATS = {"Float": (np.float32, "float32"), "Half": (np.float16, "float16")}
QUANTIZE = {f"{src}ToFused{b}BitRowwiseQuantized": (b, src) for b in BIT_RATES for src in _FLOATS}
FAKE = {f"{src}ToFused{b}BitFakeRowwiseQuantized": (b, src) for b in BIT_RATES
        for src in _FLOATS}
DEQUANTIZE = {f"Fused{b}BitRowwiseQuantizedTo{dst}": (b, dst) for b in BIT_RATES
              for dst in _FLOATS}


def _check_float_rows(ctx, x, dtype, name, rank=None):
    if rank is not None and getattr(x, "ndim", rank) != rank:
        ctx.fail(f"{ctx.input_label(0)} must be a matrix (rank 2), got shape {tuple(x.shape)}")
    return checked_float_rows(ctx, x, dtype, name)


def _quantize_shapes(ctx, x):
    if x is None or x.ndim < 1:
        return (None,)
    bits = QUANTIZE[ctx.op_def.type][0]
    return (TensorSpec(x.shape[:-1] + (packed_width(x.shape[-1], bits) + HALF_SB_BYTES,),
                       np.uint8),)


def _fake_shapes(ctx, x):
    if x is None or x.ndim != 2:
        return (None,)
    return (TensorSpec((x.shape[0], x.shape[1] + 8), np.uint8),)


def _dequantize_shapes(ctx, q):
    if q is None or q.ndim < 1:
        return (None,)
    bits, dst = DEQUANTIZE[ctx.op_def.type]
    cols = (q.shape[-1] - HALF_SB_BYTES) * per_byte(bits)
    return (TensorSpec(q.shape[:-1] + (cols,), _FLOATS[dst][0]),)


for _type, (_bits, _src) in QUANTIZE.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_quantize_shapes,
        cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
        inputs=[("input", f"{_FLOATS[_src][1]} input data, rank >= 1; the last axis (a row, "
                          f"a multiple of {8 // _bits} values) is quantized")],
        outputs=[("output", f"Fused scale, bias and quantized data: uint8, each row "
                            f"ceil(D / {8 // _bits}) bytes of {_bits}-bit codes (first value "
                            f"in the low bits), then float16 scale and bias")],
        doc=f"Applies {_bits}-bit row-wise quantization: per row, bias = half(min) and "
            f"scale = half((max - bias) / {(1 << _bits) - 1}) (1 where that is 0), codes "
            f"clamp(round((x - bias) / scale), 0, {(1 << _bits) - 1}), packed "
            f"{8 // _bits} to a byte. Engine GREEDY: the range is first narrowed by a greedy "
            f"search for the smallest L2 error.",
        gradient=NO_GRADIENT))

for _type, (_bits, _src) in FAKE.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_fake_shapes,
        cpu_fallback=True,
        inputs=[("input", f"{_FLOATS[_src][1]} matrix")],
        outputs=[("output", "uint8 (N, D + 8): one code per byte, then float32 scale and "
                            "bias (the 8-bit fused layout)")],
        doc=f"Applies {_bits}-bit row-wise fake quantization to a matrix: the codes and the "
            f"float16-rounded scale and bias of {_bits}-bit quantization, stored like an "
            f"8-bit fused row-wise table (Fused8BitRowwiseQuantizedToFloat reads it). Engine "
            f"GREEDY: the range is first narrowed by the greedy L2 search.",
        gradient=NO_GRADIENT))

for _type, (_bits, _dst) in DEQUANTIZE.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, infer_shapes=_dequantize_shapes,
        cpu_fallback=True,
        inputs=[("scale_bias_quantized_input", "Fused scale, bias and quantized data")],
        outputs=[("float_output" if _dst == "Float" else "float16_output",
                  f"{_FLOATS[_dst][1]} data, last axis (bytes - 4) * {8 // _bits}")],
        doc=f"De-quantizes the result of FloatToFused{_bits}BitRowwiseQuantized: "
            f"scale * code + bias per row, in float32"
            + (", then rounded to float16." if _dst == "Half" else "."),
        gradient=NO_GRADIENT))


def _quantizer(greedy):
    def quantize(ctx, x):
        bits, src = QUANTIZE[ctx.op_def.type]
        dtype, name = _FLOATS[src]
        rows = _check_float_rows(ctx, x, dtype, name)
        per = per_byte(bits)
        ctx.enforce(x.shape[-1] % per == 0,
                    f"FloatToFused{bits}BitRowwiseQuantizedOp only works for the number of "
                    f"columns a multiple of {per}; {ctx.input_label(0)} has shape "
                    f"{tuple(x.shape)}")
        # Caffe2's float fast path multiplies by 1 / scale; the float16 and GREEDY paths
        # divide by the scale
        out = nbit_quantize(rows, bits, greedy=greedy, divide=greedy or src == "Half")
        return (out.reshape(x.shape[:-1] + (out.shape[1],)),)
    return quantize


def _fake_quantizer(greedy):
    def quantize(ctx, x):
        bits, src = FAKE[ctx.op_def.type]
        dtype, name = _FLOATS[src]
        return (fake_quantize(_check_float_rows(ctx, x, dtype, name, rank=2), bits, greedy),)
    return quantize


for _type in QUANTIZE:
    register_kernel(_type, devices=("CPU",))(_quantizer(greedy=False))
    register_kernel(_type, devices=("CPU",), engine="GREEDY")(_quantizer(greedy=True))
for _type in FAKE:
    register_kernel(_type, devices=("CPU",))(_fake_quantizer(greedy=False))
    register_kernel(_type, devices=("CPU",), engine="GREEDY")(_fake_quantizer(greedy=True))


def _dequantize(ctx, q):
    bits, dst = DEQUANTIZE[ctx.op_def.type]
    check_dtype(ctx, q, 0, (np.uint8,), f"uint8 (fused {bits}-bit row-wise rows)")
    if q.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    cols = int(q.shape[-1])
    if cols < HALF_SB_BYTES:
        ctx.fail(f"{ctx.input_label(0)}: rows of {cols} bytes cannot hold the "
                 f"{HALF_SB_BYTES} trailing bytes of float16 scale and bias")
    out = nbit_dequantize(q.reshape(-1, cols), bits).astype(_FLOATS[dst][0], copy=False)
    return (out.reshape(q.shape[:-1] + (out.shape[1],)),)


for _type in DEQUANTIZE:
    register_kernel(_type, devices=("CPU",))(_dequantize)
