"""Comparisons (EQ, NE, LT, LE, GT, GE), logical ops (And, Or, Xor, Not) with bool outputs,
and the bitwise ops (BitwiseAnd, BitwiseOr, BitwiseXor) on bool and integer tensors.

The binary ops broadcast exactly as Add/Mul do (``broadcast``/``axis``/
``axis_str`` legacy mode, or NumPy broadcasting; see binary_elementwise.py).
Comparisons take two tensors of one dtype: Caffe2's CPU list (bool, int32,
int64, float32, float64) plus the narrower integer types (int8, uint8,
int16, uint16), which Caffe2 refused but real nets compare (Glow's
fill_test net runs EQ on a uint8 tensor); the logical ops and Not take bool
tensors only, as Caffe2's; the bitwise ops take bool, int32 or int64 (Caffe2's
IntBoolTypes) and give A's dtype.
Caffe2 declared every one of them SHOULD_NOT_DO_GRADIENT: asking for their
gradient is an error ("One should not call gradient for operator EQ."), not
a silent stop.  Only the logical and bitwise ops may write in place (over A).
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import (BROADCAST_ARGS, broadcast_operands,
                                                     broadcast_shapes_for, dtype_names)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)

COMPARABLE_DTYPES = (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64,
                     np.float32, np.float64)
BOOL_ONLY = (np.bool_,)
INT_BOOL = (np.bool_, np.int32, np.int64)
BOOL = np.dtype(np.bool_)

# type: (xp function name, symbol, accepted dtypes, may write over A, output dtype
#        (None: A's))
BINARY_BOOL_OPS = {
    "EQ": ("equal", "==", COMPARABLE_DTYPES, False, BOOL),
    "NE": ("not_equal", "!=", COMPARABLE_DTYPES, False, BOOL),
    "LT": ("less", "<", COMPARABLE_DTYPES, False, BOOL),
    "LE": ("less_equal", "<=", COMPARABLE_DTYPES, False, BOOL),
    "GT": ("greater", ">", COMPARABLE_DTYPES, False, BOOL),
    "GE": ("greater_equal", ">=", COMPARABLE_DTYPES, False, BOOL),
    "And": ("logical_and", "and", BOOL_ONLY, True, BOOL),
    "Or": ("logical_or", "or", BOOL_ONLY, True, BOOL),
    "Xor": ("logical_xor", "xor", BOOL_ONLY, True, BOOL),
    "BitwiseAnd": ("bitwise_and", "&", INT_BOOL, True, None),
    "BitwiseOr": ("bitwise_or", "|", INT_BOOL, True, None),
    "BitwiseXor": ("bitwise_xor", "^", INT_BOOL, True, None),
}


def _register_binary(op_type, xp_name, symbol, dtypes, inplace, out_dtype):
    register_schema(OpSchema(
        op_type, num_inputs=2, num_outputs=1, allow_inplace={(0, 0)} if inplace else None,
        infer_shapes=broadcast_shapes_for(dtypes, out_dtype),
        inputs=[("A", f"first operand ({dtype_names(dtypes)})"),
                ("B", "second operand, A's dtype; broadcast to A (see 'broadcast')")],
        outputs=[("C", f"A {symbol} B elementwise, {'bool' if out_dtype else 'dtype of A'}")],
        args=list(BROADCAST_ARGS),
        doc=f"C = numpy.{xp_name}(A, B): elementwise A {symbol} B, with "
            f"Caffe2's legacy broadcasting under broadcast=1 (C has A's shape) or NumPy "
            f"broadcasting otherwise. No gradient (SHOULD_NOT_DO_GRADIENT).",
        gradient=SHOULD_NOT_DO_GRADIENT))

    def kernel(ctx, a, b):
        a, bv, out_shape = broadcast_operands(ctx, a, b, dtypes=dtypes)
        if ctx.op_def.output[0] == ctx.op_def.input[0] and tuple(a.shape) != out_shape:
            ctx.fail(f"in place on {ctx.input_label(0)} of shape {tuple(a.shape)}, but the "
                     f"result has shape {out_shape}")
        return (getattr(ctx.xp, xp_name)(a, bv),)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)


for _type, _row in BINARY_BOOL_OPS.items():
    _register_binary(_type, *_row)


def _not_shapes(ctx, x):
    if x is None:
        return (None,)
    if x.dtype != np.bool_:
        ctx.fail(f"{ctx.input_label(0)} has {x.dtype}; Not supports bool")
    return (TensorSpec(x.shape, np.bool_),)


register_schema(OpSchema(
    "Not", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=_not_shapes,
    inputs=[("X", "bool tensor")], outputs=[("Y", "numpy.logical_not(X)")],
    doc="Y = numpy.logical_not(X), elementwise on a bool tensor. No gradient "
        "(SHOULD_NOT_DO_GRADIENT).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Not", devices=("CPU", "CUDA"))
def logical_not(ctx, x):
    if getattr(x, "dtype", None) != np.bool_:
        ctx.fail(f"{ctx.input_label(0)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"Not supports bool")
    return (ctx.xp.logical_not(x),)
