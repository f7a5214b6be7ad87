"""What Caffe2's Int8 operators share: their blob checks and their integer arithmetic.

Caffe2's Int8 operators (``caffe2/operators/quantized/``) ran on QNNPACK, whose
arithmetic is reproduced here bit for bit:

* quantizing a float (``Int8Quantize``, ``activationLimits``):
  ``clamp(zero_point + nearbyint(value / scale), 0, 255)`` in float32
  (``QuantizeUint8`` in ``int8_utils.h``);
* requantizing an int32 accumulator (convolution, fully connected): the float32
  scale ``X.scale * W.scale / Y.scale`` must be < 1; its 24-bit mantissa shifted
  left by 7 is a Q31 multiplier and its exponent a right shift; the product is
  rounded to Q31 (``+ 2^30``, shift 31), then shifted right with the remainder
  rounding half away from zero, clamped to the activation limits and offset by
  the zero point (QNNPACK's ``qnnp_q31_requantize``, which its SSE2 and NEON
  kernels match exactly);
* average pooling: a 24-bit multiplier and a 64-bit rounding shift
  (``qnnp_avgpool_quantize``);
* addition: two 22-bit multipliers over a common shift (``qnnp_add_quantize``).

Every function is vectorised over whole tensors (int64 intermediates where C
used 64 bits; int32 wrap-around where C wrapped).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import Arg, Int8Tensor, is_int8

F32 = np.float32
QMIN, QMAX = 0, 255

Y_ARGS = [Arg("Y_scale", "float", 1.0, "output quantization scale"),
          Arg("Y_zero_point", "int", 0, "output quantization offset, in [0, 255]")]


def int8_input(ctx, i: int, value, dtype=np.uint8) -> Int8Tensor:
    """Input ``i`` as an Int8 tensor of ``dtype`` data, or an error naming it."""
    if not is_int8(value):
        kind = getattr(value, "dtype", type(value).__name__)
        ctx.fail(f"{ctx.input_label(i)} must be an Int8 tensor blob (Int8TensorCPU), got "
                 f"{'a float tensor' if getattr(value, 'dtype', None) is not None else ''} "
                 f"{kind}; quantize it with Int8Quantize")
    if value.data.dtype != dtype:
        ctx.fail(f"{ctx.input_label(i)} must hold {np.dtype(dtype)} data, got "
                 f"{value.data.dtype}")
    if dtype == np.uint8 and not QMIN <= value.zero_point <= QMAX:
        ctx.fail(f"{ctx.input_label(i)} has zero point {value.zero_point}, outside [0, 255]")
    return value


def output_params(ctx) -> tuple[float, int]:
    """(Y_scale as float32, Y_zero_point) checked: a positive finite scale, a uint8 offset."""
    scale, zero_point = F32(ctx.args["Y_scale"]), ctx.args["Y_zero_point"]
    if not (np.isfinite(scale) and scale > 0):
        ctx.fail(f"argument 'Y_scale' must be positive and finite, got {ctx.args['Y_scale']}")
    if not QMIN <= zero_point <= QMAX:
        ctx.fail(f"argument 'Y_zero_point' must be in [0, 255], got {zero_point}")
    return scale, zero_point


def same_params(ctx, x: Int8Tensor, what: str = "input 0") -> None:
    """Ops that pass X's quantization through (pooling, resize, relu, reshape) require
    Y_scale / Y_zero_point equal to X's, as Caffe2 CHECKed."""
    scale, zero_point = ctx.args["Y_scale"], ctx.args["Y_zero_point"]
    if F32(scale) != F32(x.scale) or zero_point != x.zero_point:
        ctx.fail(f"Y_scale {scale} / Y_zero_point {zero_point} must equal {what}'s scale "
                 f"{x.scale} / zero point {x.zero_point}: this op does not requantize")


def quantize(values, scale, zero_point):
    """Caffe2's QuantizeUint8 over an array: clamp(zp + nearbyint(v / scale), 0, 255)."""
    q = np.rint(np.asarray(values, F32) / F32(scale))  # round half to even, like nearbyint
    q = np.clip(q, -2.0 ** 31, 2.0 ** 31 - 1) + zero_point  # C's int32 conversion range
    return np.clip(q, QMIN, QMAX).astype(np.uint8)


def relu_limits(scale, zero_point, relu: bool) -> tuple[int, int]:
    """Caffe2's activationLimits: [quantize(0), 255] with ReLU, else [0, 255]."""
    if not relu:
        return QMIN, QMAX
    return int(quantize(F32(0), scale, zero_point)), QMAX


def check_scale_below_one(ctx, scale, what: str) -> None:
    """QNNPACK's convolution / fully connected limit on the requantization scale."""
    if not scale < F32(1):
        ctx.fail(f"{what} scale {float(scale):.7g} (X.scale * W.scale / Y_scale) is greater "
                 f"or equal to 1.0, which QNNPACK does not support")
    if not scale >= F32(2.0 ** -32):
        ctx.fail(f"{what} scale {float(scale):.7g} (X.scale * W.scale / Y_scale) is below "
                 f"2**-32, which QNNPACK does not support")


def requantize_q31(acc, scale, zero_point, qmin, qmax):
    """QNNPACK's qnnp_q31_requantize of int32 accumulators ``acc`` to uint8."""
    bits = int(np.asarray(scale, F32).view(np.uint32))
    multiplier = np.int64(((bits & 0x007FFFFF) | 0x00800000) << 7)
    shift = 127 + 31 - 32 - (bits >> 23)
    acc = np.asarray(acc, np.int64)
    q31 = (acc * multiplier + (1 << 30)) >> 31  # low 32 bits as C kept them (fits int32)
    mask = (1 << shift) - 1
    remainder = (q31 & mask) - (acc < 0)
    n = (q31 >> shift) + (remainder > (mask >> 1))
    n = np.clip(n, qmin - zero_point, qmax - zero_point)
    return (n + zero_point).astype(np.uint8)


def requantize_avgpool(acc, scale, zero_point, qmin, qmax):
    """QNNPACK's qnnp_avgpool_quantize: acc * 24-bit multiplier, rounded right shift."""
    bits = int(np.asarray(scale, F32).view(np.uint32))
    multiplier = np.int64((bits & 0x007FFFFF) | 0x00800000)
    shift = 127 + 23 - (bits >> 23)
    acc = np.asarray(acc, np.int64)
    product = acc * multiplier - (acc < 0)
    # shifts of 16..55 bits: product (< 2^55) plus the rounding stays inside int64
    n = (product + (np.int64(1) << (shift - 1))) >> shift
    n = np.clip(n, qmin - zero_point, qmax - zero_point)
    return (n + zero_point).astype(np.uint8)


def wrap_int32(values):
    """C's int32 wrap-around of int64 values."""
    return np.asarray(values, np.int64).astype(np.int32).astype(np.int64)
