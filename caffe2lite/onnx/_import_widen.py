"""ONNX -> Caffe2: element types a Caffe2 operator did not take, computed in one it did.

Caffe2 registered its arithmetic for int32, int64, float and double, its
pooling and clipping for floats, its Transpose for four types; ONNX's ops take
every number type.  Where a node's type is one Caffe2 lacked but another that
the operator takes holds every one of its values exactly (int8 .. uint16 in
int32 or float, int32 in float64, float16 in float32, bool in int32), the
mapping casts the inputs to that type, runs the Caffe2 op, and casts the result
back: exact for Max, Min, Clip, Transpose, pooling, comparisons; for Add / Sub /
Mul / Div the result is the wide one rounded (float16: float32's correctly
rounded result rounded once more, which for these ops equals float16's own) or
wrapped (integers: numpy's cast, as ONNX's reference wraps) to the narrow type.
Types Caffe2's Cast has no number for (uint32, uint64) stay refused.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from caffe2lite.onnx._import_base import op
from caffe2lite.onnx.dtypes import caffe2_type, numpy_type, onnx_type
from caffe2lite.onnx.error import Unsupported
from caffe2lite.operators.binary_elementwise import NUMERIC_DTYPES
from caffe2lite.operators.cast import CASTABLE_DTYPES
from caffe2lite.operators.comparison_ops import COMPARABLE_DTYPES
from caffe2lite.operators.transpose import TRANSPOSE_DTYPES

FLOATS = (np.float32, np.float64)
COMPARISONS = ("EQ", "NE", "LT", "LE", "GT", "GE")  # bool results: nothing to cast back

# Caffe2 op -> the element types caffe2lite's kernel takes (Caffe2's registrations).
TAKES = {
    **{name: NUMERIC_DTYPES for name in ("Add", "Sub", "Mul", "Div", "Mod", "Sum",
                                         "ReduceMax", "ReduceMin")},
    **{name: (np.bool_, np.int32, np.int64)
       for name in ("BitwiseAnd", "BitwiseOr", "BitwiseXor")},
    **{name: FLOATS for name in ("Max", "Min", "Clip", "MaxPool", "AveragePool", "PadImage",
                                 "BatchMatMul")},
    **{name: COMPARABLE_DTYPES for name in COMPARISONS},
    "Transpose": TRANSPOSE_DTYPES,
}

# Narrow type -> wider types that hold each of its values exactly, best first.
EXACT_IN = {
    np.dtype(np.bool_): (np.int32, np.int64, np.float32, np.float64),
    **{np.dtype(t): (np.int32, np.int64, np.float32, np.float64)
       for t in (np.int8, np.uint8, np.int16, np.uint16)},
    np.dtype(np.int32): (np.int64, np.float64),
    np.dtype(np.float16): (np.float32, np.float64),
}


def carrier(dtype, takes):
    """The type to compute ``dtype`` in for an op taking ``takes`` (None: as it is, or
    no exact carrier -- the op then says at run time what it takes)."""
    dtype = np.dtype(dtype)
    takes = [np.dtype(t) for t in takes]
    if dtype in takes or dtype not in CASTABLE_DTYPES:
        return None
    return next((np.dtype(t) for t in EXACT_IN.get(dtype, ()) if np.dtype(t) in takes), None)


def dtype_of(node, cx, name):
    """The NumPy dtype of value ``name``, or None where nothing tells."""
    try:
        return numpy_type(cx.elem_type(node, name))
    except Unsupported:
        return None


def widened(node, cx, build, takes, *, cast_back=True, only=None):
    """``build(node, cx)``'s ops, with the node's inputs of input 0's type (those at
    positions ``only``, when given) cast to a type in ``takes`` first and (``cast_back``)
    every output cast back to that type."""
    narrow = dtype_of(node, cx, node.inputs[0])
    wide = carrier(narrow, takes) if narrow is not None else None
    if wide is None:
        return build(node, cx)
    to_wide = caffe2_type(wide)
    ops, inputs = [], []
    for i, name in enumerate(node.inputs):
        if not name or dtype_of(node, cx, name) != narrow or (only and i not in only):
            inputs.append(name)
            continue
        if name in cx.constants:  # stays a constant: a mapping may read it as an argument
            inputs.append(cx.temp_const(node, f"wide{i}", cx.constants[name].astype(wide)))
            continue
        inputs.append(cx.temp(node, f"wide{i}"))
        cx.shapes[inputs[-1]] = (cx.shape(name), onnx_type(wide))
        ops.append(op("Cast", [name], [inputs[-1]], to=to_wide))
    outputs = [cx.temp(node, f"wide_out{i}") if o and cast_back else o
               for i, o in enumerate(node.outputs)]
    for wide_out, out in zip(outputs, node.outputs):
        if wide_out != out:
            cx.shapes[wide_out] = (cx.shape(out), onnx_type(wide))
    ops += build(replace(node, inputs=inputs, outputs=outputs), cx)
    back = caffe2_type(narrow)
    ops += [op("Cast", [w], [o], to=back) for w, o in zip(outputs, node.outputs) if w != o]
    return ops
