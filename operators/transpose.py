"""Transpose and the NCHW <-> NHWC order switches, each the other's gradient.

Transpose permutes dims by ``axes`` (default: reversed, numpy.transpose's
default); its gradient is Transpose of dY with the inverse permutation
(Caffe2's GetTransposeGradient writes inverse[axes[i]] = i).  NCHW2NHWC moves
dim 1 last and NHWC2NCHW moves the last dim to 1, on tensors of rank >= 3
(Caffe2's newer rule; 2-D images and 3-D volumes alike); each one's
gradient is the other.  Outputs are contiguous copies.
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema,
                                rewrites)

TRANSPOSE_DTYPES = (np.float32, np.float64, np.int32, np.int64)  # Caffe2's TensorTypes
ORDER_SWITCH_DTYPES = (np.float32, np.float64)


def _check_dtype(ctx, x, dtypes):
    if getattr(x, "dtype", None) not in dtypes:
        ctx.fail(f"{ctx.input_label(0)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"{ctx.op_def.type} supports {dtype_names(dtypes)}")


def transpose_axes(ctx, ndim) -> tuple:
    """The permutation to apply: 'axes' checked against the rank, or reversed dims."""
    axes = ctx.args["axes"]
    if not axes:
        return tuple(range(ndim - 1, -1, -1))
    if len(axes) != ndim:
        ctx.fail(f"argument 'axes' {list(axes)} has {len(axes)} entries, but "
                 f"{ctx.input_label(0)} has {ndim} dims")
    if sorted(axes) != list(range(ndim)):
        ctx.fail(f"argument 'axes' {list(axes)} must be a permutation of 0..{ndim - 1}")
    return tuple(axes)


def transpose_gradient_maker(op_def, g_output):
    """Transpose(dY) -> dX with the inverse of 'axes' (Caffe2's GetTransposeGradient);
    the gradient engine then copies the forward op's other arguments, as Caffe2 did."""
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None]
    axes = next((list(a.ints) for a in op_def.arg if a.name == "axes"), [])
    if axes and sorted(axes) != list(range(len(axes))):
        raise GradientError(f"op Transpose: argument 'axes' {axes} is not a permutation")
    inverse = [0] * len(axes)
    for i, axis in enumerate(axes):
        inverse[axis] = i
    extra = {"axes": inverse} if axes else {}
    dx = grad_name(op_def.input[0])
    return [make_operator("Transpose", [dy], [dx], **extra)], [dx]


def _transpose_shapes(ctx, x):
    if x is None:
        return (None,)
    _check_dtype(ctx, x, TRANSPOSE_DTYPES)
    axes = transpose_axes(ctx, x.ndim)
    return (TensorSpec(tuple(x.shape[a] for a in axes), x.dtype),)


register_schema(OpSchema(
    "Transpose", num_inputs=1, num_outputs=1, infer_shapes=_transpose_shapes,
    inputs=[("data", f"{dtype_names(TRANSPOSE_DTYPES)} tensor")],
    outputs=[("transposed", "numpy.transpose(data, axes)")],
    args=[Arg("axes", "ints", [], "the permutation of the dims (default: reversed)")],
    doc="transposed = numpy.transpose(data, axes): dim i of the output is dim axes[i] of "
        "the input; without 'axes' the dims are reversed.",
    gradient=transpose_gradient_maker))


@register_kernel("Transpose", devices=("CPU", "CUDA"))
def transpose(ctx, x):
    _check_dtype(ctx, x, TRANSPOSE_DTYPES)
    return (ctx.xp.ascontiguousarray(x.transpose(transpose_axes(ctx, x.ndim))),)


def _order_permutation(op_type, ndim):
    """NCHW2NHWC: (0, 2, ..., n-1, 1); NHWC2NCHW: (0, n-1, 1, ..., n-2)."""
    if op_type == "NCHW2NHWC":
        return (0,) + tuple(range(2, ndim)) + (1,)
    return (0, ndim - 1) + tuple(range(1, ndim - 1))


def _register_order_switch(op_type, inverse_type, src, dst):
    def check(ctx, x):
        _check_dtype(ctx, x, ORDER_SWITCH_DTYPES)
        if x.ndim < 3:
            ctx.fail(f"{ctx.input_label(0)} must have at least 3 dims ({src}), got shape "
                     f"{tuple(x.shape)}")
        return _order_permutation(op_type, x.ndim)

    def infer(ctx, x):
        if x is None:
            return (None,)
        perm = check(ctx, x)
        return (TensorSpec(tuple(x.shape[a] for a in perm), x.dtype),)

    def maker(op_def, g_output):
        dy = dense_output_grad(op_def, g_output, optional=True)
        if dy is None:
            return [], [None]
        dx = grad_name(op_def.input[0])
        return [make_operator(inverse_type, [dy], [dx])], [dx]

    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, infer_shapes=infer,
        inputs=[("data", f"{src} tensor (rank >= 3, float)")],
        outputs=[("output", f"data in {dst} order")],
        doc=f"Reorders a {src} tensor to {dst} (numpy.transpose with "
            f"{_order_permutation(op_type, 4)} for 4-D); the gradient is {inverse_type}.",
        gradient=maker))

    def kernel(ctx, x):
        return (ctx.xp.ascontiguousarray(x.transpose(check(ctx, x))),)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)


_register_order_switch("NCHW2NHWC", "NHWC2NCHW", "NCHW", "NHWC")
_register_order_switch("NHWC2NCHW", "NCHW2NHWC", "NHWC", "NCHW")


rewrites.register_pure("Transpose")  # runtime/rewrites.py: constant folding
