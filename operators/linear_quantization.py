"""QuantizeLinear and DequantizeLinear: ONNX's affine quantization of plain tensors.

Caffe2's Int8Quantize / Int8Dequantize carried the scale and zero point inside an
Int8 tensor blob; these are ONNX's form, on ordinary tensors:

    y = saturate(round_half_to_even(x / scale) + zero_point)      QuantizeLinear
    x = (y - zero_point) * scale                                  DequantizeLinear

The scale and zero point are one value (per tensor), a vector along ``axis`` (per
axis), or -- with ``block_size`` -- X's shape with ``axis`` cut into blocks of that many
elements.  Quantized types: uint8 (default), int8, uint16, int16 (ONNX's 2/4-bit and
float8 types have no NumPy / Caffe2 type).
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

# ONNX element type -> NumPy dtype of the quantized integers
QUANTIZED = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16}
FLOATS = {1: np.float32, 10: np.float16, 11: np.float64}


def _expand(ctx, value, shape, i):
    """Input i (a scale or zero point) broadcast against X: per tensor, axis or block."""
    if value.ndim == 0 or value.size == 1:
        return value.reshape(())
    axis, block = ctx.args["axis"], ctx.args["block_size"]
    if not -len(shape) <= axis < len(shape):
        ctx.fail(f"argument 'axis' = {axis} is out of range for rank {len(shape)}")
    if block < 0:
        ctx.fail(f"argument 'block_size' = {block} must not be negative")
    axis %= len(shape)
    if not block:
        if value.ndim != 1 or value.size != shape[axis]:
            ctx.fail_input(i, f"{tuple(value.shape)} must be one value or ({shape[axis]},) "
                              f"along axis {axis}")
        dims = [1] * len(shape)
        dims[axis] = value.size
        return value.reshape(dims)
    blocks = -(-shape[axis] // block)
    expected = tuple(shape[:axis]) + (blocks,) + tuple(shape[axis + 1:])
    if tuple(value.shape) != expected:
        ctx.fail_input(i, f"{tuple(value.shape)} must be {expected} for blocks of {block} "
                          f"along axis {axis}")
    return ctx.xp.repeat(value, block, axis=axis).take(ctx.xp.arange(shape[axis]), axis=axis)


def _quantize_shapes(ctx, x, scale, zero_point=None):
    if x is None:
        return (None,)
    dtype = zero_point.dtype if zero_point is not None else \
        QUANTIZED.get(ctx.args["output_dtype"] or 2)
    return (TensorSpec(x.shape, dtype),) if dtype is not None else (None,)


register_schema(OpSchema(
    "QuantizeLinear", num_inputs=(2, 3), num_outputs=1, infer_shapes=_quantize_shapes,
    inputs=[("x", "float tensor"), ("y_scale", "float scale(s), x's dtype"),
            ("y_zero_point", "optional: the quantized type's zero point(s)")],
    outputs=[("y", "the quantized integers (the zero point's dtype, default uint8)")],
    args=[Arg("axis", "int", 1, "the axis of a per-axis or blocked scale"),
          Arg("block_size", "int", 0, "> 0: the scale holds one value per block of this "
                                      "many elements along axis"),
          Arg("output_dtype", "int", 0, "ONNX element type of y when no zero point says it "
                                        "(0: uint8)"),
          Arg("saturate", "int", 1, "accepted (it concerns ONNX's float8 types only)"),
          Arg("precision", "int", 0, "ONNX element type of x / scale (0: x's)")],
    doc="y = clip(round_half_to_even(x / y_scale) + y_zero_point) to y's range.",
    gradient=NO_GRADIENT))


@register_kernel("QuantizeLinear", devices=("CPU", "CUDA"))
def quantize_linear(ctx, x, scale, zero_point=None):
    for i, v in enumerate((x, scale)):
        if getattr(v, "dtype", None) is None or v.dtype.kind != "f":
            ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got "
                     f"{getattr(v, 'dtype', type(v).__name__)}")
    wanted = ctx.args["output_dtype"] or 2
    dtype = zero_point.dtype if zero_point is not None else QUANTIZED.get(wanted)
    if dtype is None or np.dtype(dtype) not in {np.dtype(d) for d in QUANTIZED.values()}:
        ctx.fail(f"the quantized type must be uint8, int8, uint16 or int16, got "
                 f"{dtype if dtype is not None else wanted}")
    xp = ctx.xp
    work = FLOATS.get(ctx.args["precision"], x.dtype) if ctx.args["precision"] else x.dtype
    ratio = x.astype(work) / _expand(ctx, scale, x.shape, 1).astype(work)
    q = xp.rint(ratio).astype(np.int64)
    if zero_point is not None:
        q = q + _expand(ctx, zero_point, x.shape, 2).astype(np.int64)
    info = np.iinfo(dtype)
    return (xp.clip(q, info.min, info.max).astype(dtype),)


def _dequantize_shapes(ctx, x, scale, zero_point=None):
    if x is None or scale is None:
        return (None,)
    return (TensorSpec(x.shape, FLOATS.get(ctx.args["output_dtype"], scale.dtype)),)


register_schema(OpSchema(
    "DequantizeLinear", num_inputs=(2, 3), num_outputs=1, infer_shapes=_dequantize_shapes,
    inputs=[("x", "quantized integers (int8, uint8, int16, uint16, int32)"),
            ("x_scale", "float scale(s)"),
            ("x_zero_point", "optional: zero point(s), x's dtype")],
    outputs=[("y", "(x - x_zero_point) * x_scale, the scale's dtype")],
    args=[Arg("axis", "int", 1, "the axis of a per-axis or blocked scale"),
          Arg("block_size", "int", 0, "> 0: one scale per block of this many elements"),
          Arg("output_dtype", "int", 0, "ONNX element type of y (0: the scale's)")],
    doc="y = (x - x_zero_point) * x_scale.",
    gradient=NO_GRADIENT))


@register_kernel("DequantizeLinear", devices=("CPU", "CUDA"))
def dequantize_linear(ctx, x, scale, zero_point=None):
    if getattr(x, "dtype", None) is None or x.dtype.kind not in "iu" or x.dtype.itemsize > 4:
        ctx.fail(f"{ctx.input_label(0)} must hold int8, uint8, int16, uint16 or int32, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}")
    if getattr(scale, "dtype", None) is None or scale.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(1)} must be a float tensor")
    if zero_point is not None and getattr(zero_point, "dtype", None) != x.dtype:
        ctx.fail(f"{ctx.input_label(2)} must have x's dtype {x.dtype}")
    out = FLOATS.get(ctx.args["output_dtype"], scale.dtype)
    shifted = x.astype(np.int64)
    if zero_point is not None:
        shifted = shifted - _expand(ctx, zero_point, x.shape, 2).astype(np.int64)
    scale = _expand(ctx, scale, x.shape, 1)
    return ((shifted.astype(scale.dtype) * scale).astype(out),)
