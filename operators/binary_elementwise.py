"""Binary arithmetic with Caffe2's two broadcasting modes: Add, Sub, Mul, Div and gradients.

* ``broadcast=1`` (Caffe2's legacy mode): the output has A's shape; B is a
  one-element tensor, or its shape, without leading/trailing 1s, equals a
  contiguous run of A's dims starting at ``axis`` (default: suffix
  matching; ``axis_str`` names the axis by a letter of ``order``).
* ``broadcast=0`` (default): NumPy-style multidirectional broadcasting.

Both inputs must share a dtype (int32, int64, float32 or float64).  The
gradient ops (``AddGradient``, ``SubGradient``, ``MulGradient``: inputs dC,
A, B; outputs dA, dB) take the same arguments, which the gradient engine
copies from the forward op, and sum dC over the broadcast dimensions.
Adding an op here takes one row in ``BINARY_OPS``.

Div on integers truncates toward zero (C++ ``/``, which Caffe2's DivFunctor
used), not NumPy's floor division; an integer division by zero, undefined
behaviour in Caffe2, is an error here.  ``DivGradient`` takes the newest
Caffe2 layout, inputs (dC, A, B, C) -- C the forward output -- and also the
legacy 3-input layout (B, C, dC) that Caffe2's DivGradient kept accepting;
both give dA = dC / B and dB = -dC * C / B, reduced to B's shape.

The comparison and logical ops (operators/comparison_ops.py) reuse the
broadcasting helpers here with their own dtype sets.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import (Arg, ArgumentError, GradientError, OpSchema, TensorSpec,
                                dense_output_grad, grad_name, make_operator, pointwise_cost,
                                register_kernel, register_schema, rewrites, same_as)

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
        ctx.fail(f"broadcast axis must be in [0, {nd - len(b_shape)}] for "
                 f"{ctx.input_label(first)} of shape {tuple(a_shape)} and "
                 f"{ctx.input_label(first + 1)} of shape {tuple(b_shape)}, got axis={axis}")
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


def dtype_names(dtypes) -> str:
    """'int32, int64 and float32': a dtype set as error messages list it."""
    names = [np.dtype(d).name for d in dtypes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _check_operands(ctx, a, b, first=0, dtypes=NUMERIC_DTYPES):
    """Both operands tensors of one dtype out of ``dtypes`` (inputs first, first + 1)."""
    for i, x in ((first, a), (first + 1, b)):
        if getattr(x, "dtype", None) not in dtypes:
            ctx.fail(f"{ctx.input_label(i)} has "
                     f"{getattr(x, 'dtype', type(x).__name__)}; {ctx.op_def.type} "
                     f"supports {dtype_names(dtypes)}")
    if a.dtype != b.dtype:
        ctx.fail(f"{ctx.input_label(first)} is {a.dtype} but "
                 f"{ctx.input_label(first + 1)} is {b.dtype}; both must have one dtype")


def broadcast_operands(ctx, a, b, first=0, dtypes=NUMERIC_DTYPES):
    """(a, b viewed for broadcasting, output shape) under the op's broadcast mode."""
    _check_args(ctx)
    _check_operands(ctx, a, b, first, dtypes)
    if ctx.args["broadcast"]:
        return a, b.reshape(legacy_b_shape(ctx, a.shape, b.shape, first)), tuple(a.shape)
    return a, b, numpy_broadcast_shape(ctx, a.shape, b.shape, first)


def broadcast_shapes_for(dtypes=NUMERIC_DTYPES, out_dtype=None):
    """Shape function of a broadcasting binary op: C's shape (A's under broadcast=1)
    and ``out_dtype`` (default: A's dtype)."""
    def infer(ctx, a, b):
        if a is None or b is None:
            return (None,)
        _check_args(ctx)
        _check_operands(ctx, a, b, 0, dtypes)
        dtype = a.dtype if out_dtype is None else out_dtype
        if ctx.args["broadcast"]:
            legacy_b_shape(ctx, a.shape, b.shape)  # fails when B does not fit A
            return (TensorSpec(a.shape, dtype),)
        return (TensorSpec(numpy_broadcast_shape(ctx, a.shape, b.shape), dtype),)
    return infer


broadcast_shapes = broadcast_shapes_for()


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
        return (fn(ctx, a, bv).astype(a.dtype, copy=False),)
    return kernel


def _is_int(x) -> bool:
    return x.dtype.kind in "iu"


def truncating_divide(ctx, a, b, divisor_input=1):
    """a / b as Caffe2's C++ DivFunctor: true division for floats (inf/NaN where b is
    0), division truncated toward zero for integers (an error where b is 0)."""
    xp = ctx.xp
    if not _is_int(a):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return a / b
    if bool((b == 0).any()):
        ctx.fail(f"integer division by zero: {ctx.input_label(divisor_input)} holds 0")
    q = xp.floor_divide(a, b)
    # floor and truncation differ where the quotient is negative and inexact
    return q + ((q < 0) & (q * b != a)).astype(q.dtype)


def _gradient_kernel(grads):
    """Kernel for <Op>Gradient: grads(dC, A, B viewed) -> (dA, dB) at the output's shape."""
    def kernel(ctx, dc, a, b):
        a, bv, out_shape = broadcast_operands(ctx, a, b, first=1)
        _check_output_grad(ctx, dc, a, out_shape)
        return _reduced_grads(ctx, grads(ctx, dc, a, bv), dc, a, b, bv)
    return kernel


def _check_output_grad(ctx, dc, like, out_shape, index=0):
    if getattr(dc, "dtype", None) is None or dc.dtype.kind not in "iuf":
        ctx.fail(f"{ctx.input_label(index)}, the output gradient, has "
                 f"{getattr(dc, 'dtype', type(dc).__name__)}, expected a numeric tensor")
    if tuple(dc.shape) != out_shape:
        ctx.fail(f"{ctx.input_label(index)}, the output gradient, has shape "
                 f"{tuple(dc.shape)}, expected the forward output's shape {out_shape}")


def _reduced_grads(ctx, unreduced, dc, a, b, bv):
    """(dA, dB): each unreduced gradient summed over what broadcasting stretched."""
    results = []
    for g, view, shape in zip(unreduced, (a.shape, bv.shape), (a.shape, b.shape)):
        g = sum_to_shape(g, view, dc.dtype).reshape(shape)
        # A gradient that is dC itself (Add) gets its own storage: blobs never alias.
        results.append(g.copy() if ctx.xp.may_share_memory(g, dc) else g)
    return tuple(results)


class _RelabeledInputs:
    """``ctx`` whose input_label(i) names input ``order[i]``: lets the shared checks,
    written for (A, B) at inputs (first, first + 1), serve a layout such as the legacy
    DivGradient's (B, C, dC), where C stands for A at input 1 and B is input 0."""

    def __init__(self, ctx, order):
        self._ctx, self._order = ctx, order

    def input_label(self, i):
        return self._ctx.input_label(self._order[i])

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def div_gradient(ctx, *inputs):
    """DivGradient: (dC, A, B, C) -> (dA, dB), or Caffe2's legacy (B, C, dC) -> (dA, dB).

    dA = dC / B and dB = -dC * C / B (C = A / B, the forward output), each
    reduced over the dims broadcasting stretched; integer dtypes divide with
    truncation, as the forward op.
    """
    if len(inputs) == 4:
        dc, a, b, c = inputs
        a, bv, out_shape = broadcast_operands(ctx, a, b, first=1)
        dc_index, c_index = 0, 3
    else:
        b, c, dc = inputs
        c, bv, out_shape = broadcast_operands(_RelabeledInputs(ctx, {0: 1, 1: 0}), c, b)
        a, dc_index, c_index = c, 2, 1
    _check_output_grad(ctx, dc, a, out_shape, dc_index)
    if getattr(c, "dtype", None) != a.dtype or tuple(c.shape) != out_shape:
        ctx.fail(f"{ctx.input_label(c_index)}, the forward output, has "
                 f"{getattr(c, 'dtype', '?')}{tuple(getattr(c, 'shape', ()))}, expected "
                 f"{a.dtype}{out_shape}")
    dc = dc.astype(a.dtype, copy=False)
    da = truncating_divide(ctx, dc, bv, 2 if len(inputs) == 4 else 0)
    db = -truncating_divide(ctx, dc * c, bv, 2 if len(inputs) == 4 else 0)
    return _reduced_grads(ctx, (da, db), dc, a, b, bv)


def _gradient_maker(grad_type, values_read, reads_output=False):
    """``values_read``: the inputs whose values (not only shapes) the gradient reads,
    which an in-place output must not have overwritten."""
    def maker(op_def, g_output):
        g = dense_output_grad(op_def, g_output, optional=True)
        if g is None:
            return [], [None, None]
        if op_def.output[0] in [op_def.input[i] for i in values_read]:
            raise GradientError(f"op {op_def.type}: its gradient needs the values of "
                                f"{[op_def.input[i] for i in values_read]}, but output "
                                f"'{op_def.output[0]}' overwrites one of them (in place)")
        ga, gb = grad_name(op_def.input[0]), grad_name(op_def.input[1])
        inputs = [g, op_def.input[0], op_def.input[1]] + list(op_def.output[:reads_output])
        if ga == gb:  # the same blob for A and B: its gradient is dA + dB
            return [make_operator(grad_type, inputs,
                                   [ga + "_autosplit_0", ga + "_autosplit_1"]),
                    make_operator("Sum", [ga + "_autosplit_0", ga + "_autosplit_1"],
                                  [ga])], [ga, ga]
        return [make_operator(grad_type, inputs, [ga, gb])], [ga, gb]
    maker.__name__ = f"{grad_type}_maker"
    return maker


# op type -> (forward fn (ctx, A, B), numpy name, gradient: fn (ctx, dC, A, B) -> (dA, dB)
#             unreduced or a whole kernel (Div), the inputs whose values the gradient reads:
#             Div's reads B and its output C, and A only for its shape, so an in-place Div
#             on A (C keeps A's shape) still differentiates, as in Caffe2)
BINARY_OPS = {
    "Add": (lambda ctx, a, b: a + b, "numpy.add",
            lambda ctx, dc, a, b: (dc, dc), ()),
    "Sub": (lambda ctx, a, b: a - b, "numpy.subtract",
            lambda ctx, dc, a, b: (dc, -dc), ()),
    "Mul": (lambda ctx, a, b: a * b, "numpy.multiply",
            lambda ctx, dc, a, b: (dc * b, dc * a), (0, 1)),
    "Div": (truncating_divide, "numpy.divide (truncated toward 0 for integers)",
            div_gradient, (1,)),
}

# Gradient input layouts that are not (dC, A, B).
_DIV_GRADIENT_INPUTS = [("dC", "gradient of Div's output (legacy layout: B)"),
                        ("A", "Div's input A (legacy layout: C, Div's output)"),
                        ("B", "Div's input B (legacy layout: dC)"),
                        ("C", "Div's output, A / B (absent in the legacy layout)")]


def _register(op_type, fn, numpy_name, grads, needs_values):
    grad_type = f"{op_type}Gradient"
    is_div = op_type == "Div"
    register_schema(OpSchema(
        op_type, num_inputs=2, num_outputs=1, allow_inplace={(0, 0), (1, 0)},
        infer_shapes=broadcast_shapes,
        cost=pointwise_cost(1),  # Caffe2's PointwiseCostInference<1>; its gradients had none
        inputs=[("A", "first operand"),
                ("B", "second operand, same dtype as A; broadcast to A (see 'broadcast')")],
        outputs=[("C", f"{numpy_name}(A, B), dtype of A")],
        args=list(BROADCAST_ARGS),
        doc=f"C = {numpy_name}(A, B) elementwise. With broadcast=1 (Caffe2's legacy rule) "
            f"C has A's shape and B matches a contiguous run of A's dims starting at "
            f"'axis' (suffix by default) or has one element; otherwise shapes broadcast "
            f"NumPy-style.",
        gradient=_gradient_maker(grad_type, needs_values, reads_output=is_div)))
    register_schema(OpSchema(
        grad_type, num_inputs=(3, 4) if is_div else 3, num_outputs=2,
        allow_inplace={(0, 0), (0, 1)},
        infer_shapes=_div_gradient_shapes if is_div else same_as(1, 2),
        inputs=_DIV_GRADIENT_INPUTS if is_div else [
            ("dC", f"gradient of {op_type}'s output"), ("A", f"{op_type}'s input A"),
            ("B", f"{op_type}'s input B")],
        outputs=[("dA", "gradient of A, shape of A"), ("dB", "gradient of B, shape of B")],
        args=list(BROADCAST_ARGS),
        doc=f"Gradient of {op_type}: the partial derivatives times dC, summed over the "
            f"dimensions broadcasting stretched so dA has A's shape and dB has B's."))
    grad_kernel = grads if is_div else _gradient_kernel(grads)
    for name, kernel in ((op_type, _binary_kernel(fn)), (grad_type, grad_kernel)):
        kernel.__name__ = kernel.__qualname__ = f"{name}_kernel"
        register_kernel(name, devices=("CPU", "CUDA"))(kernel)


def _div_gradient_shapes(ctx, *inputs):
    """dA has A's spec (C's in the legacy layout), dB has B's."""
    if len(inputs) == 4:
        return inputs[1], inputs[2]
    return inputs[1], inputs[0]


for _type, _row in BINARY_OPS.items():
    _register(_type, *_row)


rewrites.register_pure(*BINARY_OPS)  # runtime/rewrites.py: constant folding
