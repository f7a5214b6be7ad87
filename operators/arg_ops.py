"""ArgMax and ArgMin: the index of the largest / smallest value along ``axis`` (Caffe2's arg_ops).

NumPy: ``numpy.argmax(X, axis)`` as int64, with the axis kept as a size-1 dim
unless ``keepdims=0``.  Ties go to the first index, or with
``select_last_index`` to the last.  int32, int64, float32 and float64 inputs
(Caffe2's list); no gradient (SHOULD_NOT_DO_GRADIENT).
"""

import numpy as np

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

DTYPES = (np.int32, np.int64, np.float32, np.float64)
ARGS = [Arg("axis", "int", -1, "the axis to search (negative: from the end)"),
        Arg("keepdims", "bool", True, "keep the searched axis as a dim of size 1"),
        Arg("select_last_index", "bool", False, "on ties, the last index instead of the first")]


def _axis(ctx, x):
    return canonical_axis(ctx, ctx.args["axis"], x.ndim)


def _shape(ctx, x, axis):
    return tuple(1 if i == axis else d for i, d in enumerate(x.shape)
                 if i != axis or ctx.args["keepdims"])


def _register(op_type, fn):
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, args=ARGS, gradient=SHOULD_NOT_DO_GRADIENT,
        infer_shapes=lambda ctx, x: (TensorSpec(_shape(ctx, x, _axis(ctx, x)), np.int64)
                                     if x is not None else None,),
        inputs=[("X", f"{dtype_names(DTYPES)} tensor")],
        outputs=[("Indices", f"int64: numpy.{fn}(X, axis)")],
        doc=f"Indices = numpy.{fn}(X, axis) as int64, the axis kept as size 1 unless "
            f"keepdims=0; ties resolve to the first index (the last with select_last_index)."))

    def kernel(ctx, x):
        if x.dtype not in DTYPES:
            ctx.fail(f"{ctx.input_label(0)} has {x.dtype}; {op_type} supports "
                     f"{dtype_names(DTYPES)}")
        axis = _axis(ctx, x)
        if x.shape[axis] == 0:
            ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} has nothing along axis {axis}")
        if ctx.args["select_last_index"]:
            flipped = ctx.xp.flip(x, axis=axis)
            idx = x.shape[axis] - 1 - getattr(ctx.xp, fn)(flipped, axis=axis)
        else:
            idx = getattr(ctx.xp, fn)(x, axis=axis)
        return (idx.astype(np.int64).reshape(_shape(ctx, x, axis)),)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)


_register("ArgMax", "argmax")
_register("ArgMin", "argmin")
