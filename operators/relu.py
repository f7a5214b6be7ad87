"""Relu and ReluGradient: Y = max(X, 0), elementwise (numpy.maximum(X, 0))."""

import numpy as np

from caffe2lite.operators import _native_dense
from caffe2lite.runtime import (OpSchema, grad_name, make_operator, pointwise_cost,
                                register_kernel, register_schema, rewrites, same_as)


def relu_gradient_maker(op_def, g_output):
    """dX = dY where Y > 0 (computed from the output, as Caffe2's ReluGradient)."""
    grad_op = make_operator("ReluGradient", [op_def.output[0], g_output[0]],
                            [grad_name(op_def.input[0])])
    return [grad_op], [grad_name(op_def.input[0])]


register_schema(OpSchema(
    "Relu", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0), cost=pointwise_cost(0),  # Caffe2's CostInferenceForRelu
    inputs=[("X", "input tensor")], outputs=[("Y", "max(X, 0), same shape and dtype")],
    doc="Rectified linear unit: Y = max(X, 0) elementwise.",
    gradient=relu_gradient_maker))

register_schema(OpSchema(
    "ReluGradient", num_inputs=2, num_outputs=1, allow_inplace={(1, 0)},
    infer_shapes=same_as(1),
    inputs=[("Y", "output of Relu"), ("dY", "gradient of Y")],
    outputs=[("dX", "dY where Y > 0, else 0")],
    doc="Gradient of Relu, computed from its output."))


NUMERIC_KINDS = "biuf"  # bool, ints, floats: what max(X, 0) is defined on


# dtype -> its zero as a 0-d NumPy array: making a scalar per call (x.dtype.type(0))
# was a third of the op's cost on a small tensor, and NumPy takes a 0-d array of the
# same dtype faster than a scalar (tools/bench_dispatch.py).
_ZEROS: dict = {}


@register_kernel("Relu", devices=("CPU", "CUDA"))
def relu(ctx, x):
    # Relu is the op of the dispatch benchmark: no up-front dtype check (77 ns, 4% of
    # its cost); maximum() itself refuses what has no order against 0 (strings, bytes).
    xp = ctx.xp
    try:
        return (xp.maximum(x, _ZEROS[x.dtype] if xp is np else x.dtype.type(0)),)
    except KeyError:  # the first input of this dtype
        _ZEROS[x.dtype] = np.zeros((), x.dtype)
        return relu(ctx, x)
    except (TypeError, AttributeError):
        ctx.fail(f"{ctx.input_label(0)} must be a numeric tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}")


@register_kernel("ReluGradient", devices=("CPU", "CUDA"))
def relu_gradient(ctx, y, dy):
    ctx.check_same_shape(0, y, 1, dy)
    for i, arr in ((0, y), (1, dy)):
        if arr.dtype.kind not in NUMERIC_KINDS:
            ctx.fail_input(i, f"must be a numeric tensor, got {arr.dtype}")
    if ctx.xp is np and dy.ndim and dy.dtype in _SAME_SIZE_INT and y.dtype.kind == "f":
        native = _native_dense.relu_gradient(y, dy)
        return (native if native is not None else _pass_where_positive(y, dy),)
    return (ctx.xp.where(y > 0, dy, dy.dtype.type(0)),)


# float dtype -> the integer dtype of its size, to select dY's bits with a mask.
_SAME_SIZE_INT = {np.dtype(np.float32): np.dtype(np.int32),
                  np.dtype(np.float64): np.dtype(np.int64)}


def _pass_where_positive(y, dy):
    """``np.where(y > 0, dy, 0)`` bit for bit (dY's bits where y > 0, +0.0 elsewhere,
    NaN in y counting as not positive), as a mask of all-ones/all-zeros words ANDed
    with dY's bits: NumPy's where() picks element by element with a branch and ran
    8x slower on the main job's (8192, 32) gradients."""
    ints = _SAME_SIZE_INT[dy.dtype]
    mask = np.subtract(0, np.greater(y, 0), dtype=ints)  # True -> -1: every bit set
    return np.bitwise_and(dy.view(ints), mask, out=mask).view(dy.dtype)


def relu_in_place(y):
    """Relu on a fresh float array, in place: the kernel's np.maximum against the same
    zero, so the same bits (a fused Conv + Relu step, runtime/rewrites.py)."""
    zero = _ZEROS.get(y.dtype)
    if zero is None:
        zero = _ZEROS[y.dtype] = np.zeros((), y.dtype)
    np.maximum(y, zero, out=y)


rewrites.register_activation("Relu", relu_in_place)
rewrites.register_pure("Relu")
