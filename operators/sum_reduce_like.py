"""SumReduceLike: A summed down to B's shape under Caffe2's legacy broadcasting.

The reverse of ``Add(A, B, broadcast=1)``: C has B's shape and holds the
sums of A over the dims where B would have been broadcast (B's dims sit at
``axis`` of A, suffix-matched by default, ``axis_str`` names the axis by a
letter of ``order``; a one-element B takes the sum of everything).  Pow's
gradient uses it to reduce the exponent's gradient.
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names, legacy_b_shape, sum_to_shape
from caffe2lite.runtime import Arg, OpSchema, TensorSpec, register_kernel, register_schema

FLOATS = (np.float32, np.float64)
ARGS = (Arg("axis", "int", -1, "the dim of A where B's dims start (default: suffix)"),
        Arg("axis_str", "string", "", "the axis as one letter of 'order'"),
        Arg("order", "string", "NCHW", "the layout 'axis_str' refers to"))


def _check(ctx, a, b):
    if getattr(a, "dtype", None) not in FLOATS:
        ctx.fail(f"{ctx.input_label(0)} has {getattr(a, 'dtype', type(a).__name__)}; "
                 f"SumReduceLike supports {dtype_names(FLOATS)}")
    if getattr(b, "shape", None) is None:
        ctx.fail(f"{ctx.input_label(1)} must be a tensor")
    return legacy_b_shape(ctx, a.shape, b.shape)


def _shapes(ctx, a, b):
    if a is None or b is None:
        return (None,)
    _check(ctx, a, b)
    return (TensorSpec(b.shape, a.dtype),)


register_schema(OpSchema(
    "SumReduceLike", num_inputs=2, num_outputs=1, infer_shapes=_shapes,
    inputs=[("A", "float tensor to reduce"), ("B", "tensor whose shape C takes")],
    outputs=[("C", "A summed over the dims B would be broadcast along; B's shape")],
    args=list(ARGS),
    doc="C = A summed to B's shape, the reduction matching Add(A, B, broadcast=1)."))


@register_kernel("SumReduceLike", devices=("CPU", "CUDA"))
def sum_reduce_like(ctx, a, b):
    view = _check(ctx, a, b)
    return (sum_to_shape(a, view, a.dtype).reshape(b.shape),)
