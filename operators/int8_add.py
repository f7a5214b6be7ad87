"""Int8Add, Int8AddRelu, Int8Sum, Int8SumRelu: quantized elementwise addition.

After ``caffe2/operators/quantized/int8_add_op.h`` (QNNPACK's add): A and B of one
shape (no broadcasting); with ``a = A.scale / Y_scale`` and ``b = B.scale /
Y_scale`` (float32, each in [2**-14, 2**8)), both turned into integer
multipliers over a common shift (21 minus the larger one's exponent, the
multipliers rounded to nearest even), ``acc = a_mult * (A - A.zero_point) +
b_mult * (B - B.zero_point)`` (int32, wrapping), shifted right rounding half away
from zero, offset by ``Y_zero_point`` and clamped (Relu variants: from the
quantized 0; the clamp range must not be empty).  Int8Sum is Caffe2's alias of
Int8Add kept for its models: it takes exactly two inputs.
"""

import numpy as np

from caffe2lite.operators._int8 import Y_ARGS, int8_input, output_params, relu_limits
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32

for _name in ("Int8Add", "Int8AddRelu", "Int8Sum", "Int8SumRelu"):
    register_schema(OpSchema(
        _name, num_inputs=2, num_outputs=1, allow_inplace={(0, 0), (1, 0)}, cpu_fallback=True,
        args=[*Y_ARGS, Arg("order", "string", "NHWC", "accepted for Caffe2 nets; no effect")],
        infer_shapes=same_as(0),
        inputs=[("A", "Int8 tensor"), ("B", "Int8 tensor of A's shape")],
        outputs=[("C", "Int8 tensor A + B at Y_scale / Y_zero_point")],
        doc="Quantized elementwise A + B (no broadcasting)"
            + (", followed by a ReLU." if _name.endswith("Relu") else "."),
        gradient=NO_GRADIENT))


def _ratio(ctx, scale, y_scale, what):
    ratio = F32(F32(scale) / y_scale)
    if not (F32(2.0 ** -14) <= ratio < F32(2.0 ** 8)):
        ctx.fail(f"{what}-to-output scale ratio {float(ratio):.7g} must be in [2**-14, 2**8) "
                 f"(QNNPACK's add)")
    return ratio


def _int8_add(ctx, A, B, relu):
    a, b = int8_input(ctx, 0, A), int8_input(ctx, 1, B)
    if a.data.shape != b.data.shape:
        ctx.fail(f"inputs must have the same shape (broadcast semantics is not supported): "
                 f"{a.data.shape} and {b.data.shape}")
    if a.data.size == 0:
        ctx.fail("inputs are empty: QNNPACK's add refuses a batch of 0")
    y_scale, zero_point = output_params(ctx)
    qmin, qmax = relu_limits(y_scale, zero_point, relu)
    if qmin >= qmax:
        ctx.fail(f"output range [{qmin}, {qmax}] is empty (Y_zero_point {zero_point} with ReLU)")
    ra, rb = _ratio(ctx, a.scale, y_scale, "A"), _ratio(ctx, b.scale, y_scale, "B")
    exponent = int(np.asarray(max(ra, rb), F32).view(np.uint32) >> 23) - 127
    shift = 21 - exponent
    factor = F32(2.0 ** shift)  # exact: a power of two
    a_mult = int(np.rint(ra * factor))  # lrintf: round half to even
    b_mult = int(np.rint(rb * factor))
    zero_product = -(a_mult * a.zero_point + b_mult * b.zero_point)
    acc = (zero_product + a.data.astype(np.int64) * a_mult + b.data.astype(np.int64) * b_mult)
    acc = acc.astype(np.int32).astype(np.int64)  # C's int32 wrap-around
    mask = (1 << shift) - 1
    rem = (acc & mask) - (acc < 0)
    acc = (acc >> shift) + (rem > (mask >> 1))
    y = np.clip(acc + zero_point, qmin, qmax).astype(np.uint8)
    return Int8Tensor(y, float(y_scale), zero_point)


@register_kernel("Int8Add")
def int8_add(ctx, A, B):
    return _int8_add(ctx, A, B, relu=False)


@register_kernel("Int8AddRelu")
def int8_add_relu(ctx, A, B):
    return _int8_add(ctx, A, B, relu=True)


@register_kernel("Int8Sum")
def int8_sum(ctx, A, B):
    return _int8_add(ctx, A, B, relu=False)


@register_kernel("Int8SumRelu")
def int8_sum_relu(ctx, A, B):
    return _int8_add(ctx, A, B, relu=True)
