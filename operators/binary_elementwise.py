"""Binary arithmetic with Caffe2's two broadcasting modes: Add, Mul and their gradients.

* ``broadcast=1`` (Caffe2's legacy mode): the output has A's shape; B is a
  one-element tensor, or its shape, without leading/trailing 1s, equals a
  contiguous run of A's dims starting at ``axis`` (default: suffix
  matching; ``axis_str`` names the axis by a letter of ``order``).
* ``broadcast=0`` (default): NumPy-style multidirectional broadcasting.

Both inputs must share a dtype (int32, int64, float32 or float64).  The
gradient ops (``AddGradient``, ``MulGradient``: inputs dC, A, B; outputs dA,
dB) take the same arguments, which the gradient engine copies from the
forward op, and sum dC over the broadcast dimensions.  Adding an op here
takes one row in ``BINARY_OPS``.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.core import CreateOperator
from caffe2lite.errors import ArgumentError, GradientError
from caffe2lite.gradients import dense_output_grad, grad_name
from caffe2lite.registry import register_kernel, register_schema
from caffe2lite.schema import Arg, OpSchema
from caffe2lite.shape_inference import TensorSpec, same_as

NUMERIC_DTYPES = (np.int32, np.int64, np.float32, np.float64)

BROADCAST_ARGS = (
    Arg("broadcast", "bool", False, "1 enables Caffe2's legacy broadcasting of B to A's "
        "shape; 0 (default) broadcasts NumPy-style"),
    Arg("axis", "int", -1, "legacy broadcasting: the dim of A where B's dims start "
        "(default: B matches A's trailing dims)"),
    Arg("axis_str", "string", "", "legacy broadcasting: the axis as one letter of 'order' "
        "(cannot be used with 'axis')"),
    Arg("order", "string", "NCHW", "the layout 'axis_str' refers to"),
)


def legacy_b_shape(ctx, a_shape, b_shape, first=0) -> tuple:
    """B's shape padded with 1s to A's rank under legacy broadcasting (Caffe2's
    ComputeLegacyBroadcastSizes); raises naming the blobs when B does not fit."""
    nd = len(a_shape)
    if int(np.prod(b_shape, dtype=np.int64)) == 1:
        return (1,) * nd
    if len(b_shape) > nd:
        ctx.fail(f"with broadcast=1, {ctx.input_label(first + 1)} of "
                 f"shape {tuple(b_shape)} must not have more dims than "
                 f"{ctx.input_label(first)} of shape {tuple(a_shape)}")
    axis = _legacy_axis(ctx)
    if axis == -1:
        axis = nd - len(b_shape)
    if not 0 <= axis <= nd - len(b_shape):
        ctx.fail(f"broadcast axis must be in [0, "
                 f"{nd - len(b_shape)}] for A of shape {tuple(a_shape)} and B of "
                 f"shape {tuple(b_shape)}, got axis={axis}")
    start, end = 0, len(b_shape) - 1
    while start < len(b_shape) and b_shape[start] == 1:
        start += 1
    while end >= start and b_shape[end] == 1:
        end -= 1
    view = [1] * nd
    for i in range(start, end + 1):
        if a_shape[axis + i] != b_shape[i]:
            ctx.fail(f"broadcast dimension mismatch: "
                     f"{ctx.input_label(first + 1)} of shape {tuple(b_shape)} placed "
                     f"at axis {axis} of {ctx.input_label(first)} of shape "
                     f"{tuple(a_shape)}: dim {i} is "
                     f"{b_shape[i]}, A has {a_shape[axis + i]}")
        view[axis + i] = b_shape[i]
    return tuple(view)


def _legacy_axis(ctx) -> int:
    axis, axis_str, order = ctx.args["axis"], ctx.args["axis_str"], ctx.args["order"]
    if axis != -1:
        if axis_str:
            raise ArgumentError(f"{ctx.where}: arguments 'axis' and 'axis_str' cannot be "
                                f"used together")
        return axis
    if axis_str:
        if len(axis_str) != 1 or axis_str not in order:
            raise ArgumentError(f"{ctx.where}: argument 'axis_str' must be one letter of "
                                f"order '{order}', got '{axis_str}'")
        return order.index(axis_str)
    return -1


def numpy_broadcast_shape(ctx, a_shape, b_shape, first=0) -> tuple:
    """The NumPy broadcast of two shapes, or an error naming both blobs."""
    nd = max(len(a_shape), len(b_shape))
    a = (1,) * (nd - len(a_shape)) + tuple(a_shape)
    b = (1,) * (nd - len(b_shape)) + tuple(b_shape)
    out = []
    for da, db in zip(a, b):
        if da != db and da != 1 and db != 1:
            ctx.fail(f"{ctx.input_label(first)} of shape "
                     f"{tuple(a_shape)} and {ctx.input_label(first + 1)} of shape "
                     f"{tuple(b_shape)} cannot be "
                     f"broadcast together (pass broadcast=1 for Caffe2's legacy "
                     f"rule)")
        out.append(db if da == 1 else da)
    return tuple(out)


def _check_args(ctx):
    if not ctx.args["broadcast"] and (ctx.args["axis"] != -1 or ctx.args["axis_str"]):
        raise ArgumentError(f"{ctx.where}: do not set 'axis' or 'axis_str' unless "
                            f"broadcast=1")


def _check_operands(ctx, a, b, first=0):
    """Both operands numeric tensors of one dtype (inputs first, first + 1)."""
    for i, x in ((first, a), (first + 1, b)):
        if getattr(x, "dtype", None) not in NUMERIC_DTYPES:
            ctx.fail(f"{ctx.input_label(i)} has "
                     f"{getattr(x, 'dtype', type(x).__name__)}; {ctx.op_def.type} "
                     f"supports int32, int64, float32 and float64")
    if a.dtype != b.dtype:
        ctx.fail(f"{ctx.input_label(first)} is {a.dtype} but "
                 f"{ctx.input_label(first + 1)} is {b.dtype}; both must have one dtype")


def broadcast_operands(ctx, a, b, first=0):
    """(a, b viewed for broadcasting, output shape) under the op's broadcast mode."""
    _check_args(ctx)
    _check_operands(ctx, a, b, first)
    if ctx.args["broadcast"]:
        return a, b.reshape(legacy_b_shape(ctx, a.shape, b.shape, first)), tuple(a.shape)
    return a, b, numpy_broadcast_shape(ctx, a.shape, b.shape, first)


def broadcast_shapes(ctx, a, b):
    """Shape function of Add/Mul: C's shape (A's under broadcast=1) and A's dtype."""
    if a is None or b is None:
        return (None,)
    _check_args(ctx)
    _check_operands(ctx, a, b)
    if ctx.args["broadcast"]:
        legacy_b_shape(ctx, a.shape, b.shape)  # fails when B does not fit A
        return (TensorSpec(a.shape, a.dtype),)
    return (TensorSpec(numpy_broadcast_shape(ctx, a.shape, b.shape), a.dtype),)


def sum_to_shape(g, shape, dtype):
    """Sum ``g`` over the dims that broadcasting added or stretched, giving ``shape``."""
    padded = (1,) * (g.ndim - len(shape)) + tuple(shape)
    axes = tuple(i for i, (gs, ts) in enumerate(zip(g.shape, padded)) if ts == 1 and gs != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True, dtype=dtype)
    return g.reshape(shape).astype(dtype, copy=False)


def _check_inplace(ctx, out_shape, a, b):
    """In place, the output must keep the shape of the input it overwrites."""
    out = ctx.op_def.output[0]
    for i, x in ((0, a), (1, b)):
        if ctx.op_def.input[i] == out and tuple(x.shape) != out_shape:
            if ctx.args["broadcast"] and i == 1:
                ctx.fail(f"with broadcast=1 only input 0 may be "
                         f"written in place, not {ctx.input_label(1)}")
            ctx.fail(f"in place on {ctx.input_label(i)} of shape "
                     f"{tuple(x.shape)}, but the result has shape {out_shape}")


def _binary_kernel(fn):
    def kernel(ctx, a, b):
        a, bv, out_shape = broadcast_operands(ctx, a, b)
        _check_inplace(ctx, out_shape, a, b)
        return (fn(a, bv).astype(a.dtype, copy=False),)
    return kernel


def _gradient_kernel(grads):
    """Kernel for <Op>Gradient: grads(dC, A, B viewed) -> (dA, dB) at the output's shape."""
    def kernel(ctx, dc, a, b):
        a, bv, out_shape = broadcast_operands(ctx, a, b, first=1)
        if tuple(dc.shape) != out_shape:
            ctx.fail(f"{ctx.input_label(0)}, the output gradient, has shape "
                     f"{tuple(dc.shape)}, expected the forward output's shape {out_shape}")
        results = []
        for g, view, shape in zip(grads(dc, a, bv), (a.shape, bv.shape), (a.shape, b.shape)):
            g = sum_to_shape(g, view, dc.dtype).reshape(shape)
            # A gradient that is dC itself (Add) gets its own storage: blobs never alias.
            results.append(g.copy() if ctx.xp.may_share_memory(g, dc) else g)
        return tuple(results)
    return kernel


def _gradient_maker(grad_type, needs_inputs_intact):
    def maker(op_def, g_output):
        g = dense_output_grad(op_def, g_output, optional=True)
        if g is None:
            return [], [None, None]
        if needs_inputs_intact and op_def.output[0] in op_def.input:
            raise GradientError(f"op {op_def.type}: its gradient needs inputs "
                                f"{list(op_def.input)}, but output '{op_def.output[0]}' "
                                f"overwrites one of them (in place)")
        ga, gb = grad_name(op_def.input[0]), grad_name(op_def.input[1])
        if ga == gb:  # the same blob for A and B: its gradient is dA + dB
            return [CreateOperator(grad_type, [g, op_def.input[0], op_def.input[1]],
                                   [ga + "_autosplit_0", ga + "_autosplit_1"]),
                    CreateOperator("Sum", [ga + "_autosplit_0", ga + "_autosplit_1"],
                                   [ga])], [ga, ga]
        return [CreateOperator(grad_type, [g, op_def.input[0], op_def.input[1]],
                               [ga, gb])], [ga, gb]
    maker.__name__ = f"{grad_type}_maker"
    return maker


# op type -> (forward fn, numpy name, gradient fn (dC, A, B) -> (dA, dB) unreduced,
#             whether the gradient reads A and B's values)
BINARY_OPS = {
    "Add": (lambda a, b: a + b, "numpy.add", lambda dc, a, b: (dc, dc), False),
    "Mul": (lambda a, b: a * b, "numpy.multiply", lambda dc, a, b: (dc * b, dc * a), True),
}


def _register(op_type, fn, numpy_name, grads, needs_values):
    grad_type = f"{op_type}Gradient"
    register_schema(OpSchema(
        op_type, num_inputs=2, num_outputs=1, allow_inplace={(0, 0), (1, 0)},
        infer_shapes=broadcast_shapes,
        inputs=[("A", "first operand"),
                ("B", "second operand, same dtype as A; broadcast to A (see 'broadcast')")],
        outputs=[("C", f"{numpy_name}(A, B), dtype of A")],
        args=list(BROADCAST_ARGS),
        doc=f"C = {numpy_name}(A, B) elementwise. With broadcast=1 (Caffe2's legacy rule) "
            f"C has A's shape and B matches a contiguous run of A's dims starting at "
            f"'axis' (suffix by default) or has one element; otherwise shapes broadcast "
            f"NumPy-style.",
        gradient=_gradient_maker(grad_type, needs_values)))
    register_schema(OpSchema(
        grad_type, num_inputs=3, num_outputs=2, allow_inplace={(0, 0), (0, 1)},
        infer_shapes=same_as(1, 2),
        inputs=[("dC", f"gradient of {op_type}'s output"), ("A", f"{op_type}'s input A"),
                ("B", f"{op_type}'s input B")],
        outputs=[("dA", "gradient of A, shape of A"), ("dB", "gradient of B, shape of B")],
        args=list(BROADCAST_ARGS),
        doc=f"Gradient of {op_type}: the partial derivatives times dC, summed over the "
            f"dimensions broadcasting stretched so dA has A's shape and dB has B's."))
    for name, kernel in ((op_type, _binary_kernel(fn)), (grad_type, _gradient_kernel(grads))):
        kernel.__name__ = kernel.__qualname__ = f"{name}_kernel"
        register_kernel(name, devices=("CPU", "CUDA"))(kernel)


for _type, _row in BINARY_OPS.items():
    _register(_type, *_row)
