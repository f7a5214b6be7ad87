"""Int8GivenTensorFill and Int8GivenIntTensorFill: Int8 tensor blobs from arguments.

After ``caffe2/operators/quantized/int8_given_tensor_fill_op.h``: ``values`` is a
byte string (one uint8 per element; it stays bytes whatever it happens to
decode to) or, for the Int fill, a list of int32 (biases); ``shape`` gives the
dims, ``Y_scale`` / ``Y_zero_point`` the quantization.  The number of values
must match the shape (Caffe2 only DCHECKed it).
"""

import math

import numpy as np

from caffe2lite.operators._int8 import Y_ARGS
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, TensorSpec,
                                check_allocation, once_per_op, register_kernel, register_schema)

SHAPE = Arg("shape", "ints", [], "dims of the output")


def _fill_shapes(dtype):
    return lambda ctx: (TensorSpec(tuple(ctx.args["shape"]), dtype),)


register_schema(OpSchema(
    "Int8GivenTensorFill", num_inputs=0, num_outputs=1, cpu_fallback=True,
    args=[Arg("values", "bytes", b"", "the uint8 values, one byte each"), SHAPE, *Y_ARGS],
    infer_shapes=_fill_shapes(np.uint8),
    outputs=[("Tensor", "Int8 tensor with scale and zero point")],
    doc="Creates a quantized tensor of type uint8 (byte string values) with scale and zero "
        "point.",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8GivenIntTensorFill", num_inputs=0, num_outputs=1, cpu_fallback=True,
    args=[Arg("values", "ints", [], "the int32 values"), SHAPE, *Y_ARGS],
    infer_shapes=_fill_shapes(np.int32),
    outputs=[("Tensor", "Int8 tensor holding int32 data (a bias) with scale and zero point")],
    doc="Creates a quantized tensor of type int32 with scale and zero point info.",
    gradient=NO_GRADIENT))


@once_per_op
def _filled(ctx):
    a = ctx.args
    shape = tuple(a["shape"])
    if any(d < 0 for d in shape):
        ctx.fail(f"argument 'shape' {list(shape)} has a negative dimension")
    check_allocation(ctx, shape, 4, "argument 'shape'")
    if ctx.op_def.type == "Int8GivenTensorFill":
        data = np.frombuffer(a["values"], dtype=np.uint8)
    else:
        values = a["values"]
        if any(not -2**31 <= v < 2**31 for v in values):
            ctx.fail("argument 'values' must hold int32 values")
        data = np.asarray(values, dtype=np.int32)
    if data.size != math.prod(shape):
        ctx.fail(f"argument 'values' holds {data.size} values, shape {list(shape)} needs "
                 f"{math.prod(shape)}")
    if not np.isfinite(a["Y_scale"]):
        ctx.fail(f"argument 'Y_scale' must be finite, got {a['Y_scale']}")
    return data.reshape(shape)


def _fill(ctx):
    data = _filled(ctx)
    return Int8Tensor(data.copy(), float(np.float32(ctx.args["Y_scale"])),
                      ctx.args["Y_zero_point"])


register_kernel("Int8GivenTensorFill")(_fill)
register_kernel("Int8GivenIntTensorFill")(_fill)
