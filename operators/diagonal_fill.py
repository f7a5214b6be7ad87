"""DiagonalFill: zeros with ``value`` on the diagonal (Caffe2's DiagonalFillOp).

The shape follows the filler rule of ``fill.py`` (``shape``, the input's shape
plus ``extra_shape``, or ``input_as_shape``) and must have at least 2
dimensions; above 2, all dimensions must be equal.  Caffe2 walked the flat
buffer with a fixed step, which NumPy's ``fill_diagonal`` reproduces:
``cols + 1`` for a matrix -- so a tall matrix's diagonal wraps around after
``cols`` rows, as ``numpy.fill_diagonal(a, value, wrap=True)`` -- and ``1 + n
+ n**2 + ...`` for an n x n x ... tensor.  The dtype is ``dtype`` (FLOAT,
DOUBLE, BOOL, INT8/16/32/64, UINT8/16), or without it FLOAT for a float (or
absent) ``value`` and INT64 for an integer one.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators.fill import (SHAPE_ARGS, SHAPE_INPUT, TP, _constant_dtype_and_value,
                                       fill_shape, fill_shapes)
from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, once_per_op,
                                register_kernel, register_schema)
from caffe2lite.runtime.serialization import numpy_dtype

DIAGONAL_DTYPES = (TP.FLOAT, TP.DOUBLE, TP.BOOL, TP.INT8, TP.INT16, TP.INT32, TP.INT64,
                   TP.UINT8, TP.UINT16)


@once_per_op
def _dtype_and_value(ctx):
    """(numpy dtype, value): ConstantFill's reading of value/dtype, without STRING."""
    code = ctx.args["dtype"]
    if code is not None and code != TP.UNDEFINED and code not in DIAGONAL_DTYPES:
        name = TP.Name(code) if code in TP.values() else "unknown"
        raise ArgumentError(f"{ctx.where}: unexpected 'dtype' argument value {code} "
                            f"({name}); DiagonalFill takes "
                            f"{[TP.Name(d) for d in DIAGONAL_DTYPES]}")
    code, value = _constant_dtype_and_value(ctx)
    return numpy_dtype(code), value


def _diagonal_step(ctx, shape) -> int:
    """Caffe2's GetStepSize: the flat distance between two diagonal elements."""
    if len(shape) < 2:
        ctx.fail(f"the output shape {list(shape)} must have at least 2 dimensions")
    if len(shape) == 2:
        return shape[1] + 1
    if any(d != shape[0] for d in shape):
        ctx.fail(f"all dimensions of the output shape {list(shape)} must be of equal length "
                 f"when it has more than 2")
    return 1 + int(np.sum(np.cumprod(shape[:-1], dtype=np.int64)))


register_schema(OpSchema(
    "DiagonalFill", num_inputs=(0, 1), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=fill_shapes(lambda ctx: _dtype_and_value(ctx)[0]),
    inputs=[SHAPE_INPUT], outputs=[("output", "zeros with 'value' on the diagonal")],
    args=[Arg("value", "any", None, "the diagonal's value (default 0; an integer makes the "
              "output INT64 when 'dtype' is unset)"),
          Arg("dtype", "int", None, "TensorProto.DataType of the output (default FLOAT, or "
              "inferred from 'value'): FLOAT, DOUBLE, BOOL, INT8, INT16, INT32, INT64, UINT8 "
              "or UINT16")] + list(SHAPE_ARGS),
    doc="Zeros of the filler shape (>= 2-D; all dimensions equal above 2) with 'value' on "
        "the diagonal: numpy.fill_diagonal(numpy.zeros(shape, dtype), value, wrap=True).",
    gradient=NO_GRADIENT))


@register_kernel("DiagonalFill", devices=("CPU", "CUDA"))
def diagonal_fill(ctx, *inputs):
    dtype, value = _dtype_and_value(ctx)
    shape = fill_shape(ctx, inputs)
    step = _diagonal_step(ctx, shape)
    out = ctx.xp.zeros(shape, dtype=dtype)
    out.reshape(-1)[::step] = value
    return (out,)
