"""ReduceFront{Sum,Mean,Max} and ReduceBack{Sum,Mean,Max}: reduce the first or last
``num_reduce_dim`` dims (Caffe2's reduce_front_back_*_ops).

Front: X is viewed as (rows, cols) with rows = prod(X.shape[:num_reduce_dim]),
Y = reduce over rows, shape X.shape[num_reduce_dim:].  Back: rows =
prod(X.shape[:ndim - num_reduce_dim]), Y = reduce over cols, shape
X.shape[:ndim - num_reduce_dim].  An optional int32 ``lengths`` input (one per
kept element; num_reduce_dim must be 1) reduces only the first lengths[j]
reduced entries of each: ``Y[j] = X[:lengths[j], j].sum()`` (front).

Nothing to reduce gives 0; a Max over a zero length gives the dtype's lowest
value and a Mean over one gives 0.  Gradients (Caffe2's makers):
``<Op>Gradient(dY, X, [lengths])`` for Sum and Mean -- X may also be given as its
shape, an int64 vector, as older Caffe2 nets did -- and ``<Op>Gradient(dY, X, Y,
[lengths])`` for Max, which passes dY to the elements equal to the maximum.
"""

from math import prod

import numpy as np

from caffe2lite.operators._segments import check_index_dtype, check_vector
from caffe2lite.operators.binary_elementwise import dtype_names, truncating_divide
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

SUM_DTYPES = (np.int32, np.int64, np.float32, np.float64)
MAX_DTYPES = (np.float32, np.float64)
ARGS = [Arg("num_reduce_dim", "int", 1, "how many leading (Front) or trailing (Back) dims "
                                        "to reduce")]


def _layout(ctx, shape, front):
    """(rows, cols, Y's shape, reduced axis of the (rows, cols) view)."""
    k = ctx.args["num_reduce_dim"]
    if not 0 <= k <= len(shape):
        ctx.fail(f"argument 'num_reduce_dim' = {k} must be in [0, {len(shape)}] for the data "
                 f"of shape {tuple(shape)}")
    split = k if front else len(shape) - k
    kept = tuple(shape[split:]) if front else tuple(shape[:split])
    return prod(shape[:split]), prod(shape[split:]), kept, 0 if front else 1


def _mask(ctx, xp, lengths, rows, cols, axis, i):
    """Which entries of the (rows, cols) view are reduced: all, or the first lengths[j]."""
    if lengths is None:
        return None
    check_index_dtype(ctx, lengths, i)
    check_vector(ctx, lengths, i)
    if ctx.args["num_reduce_dim"] != 1:
        ctx.fail(f"Given lengths input, the number of reduce dimensions should be one. "
                 f"({ctx.input_label(i)}; argument 'num_reduce_dim' = "
                 f"{ctx.args['num_reduce_dim']})")
    batch, depth = (cols, rows) if axis == 0 else (rows, cols)
    if lengths.shape[0] != batch:
        ctx.fail(f"{ctx.input_label(i)} has {lengths.shape[0]} lengths; the batch (the kept "
                 f"elements) has {batch}")
    if lengths.size and bool(((lengths < 0) | (lengths > depth)).any()):
        ctx.fail(f"{ctx.input_label(i)} must lie in [0, {depth}], the reduced size")
    positions = xp.arange(depth)
    return (positions[:, None] < lengths[None, :]) if axis == 0 else \
        (positions[None, :] < lengths[:, None])


def _count(xp, mask, rows, cols, axis, dtype):
    """How many entries each kept element reduces, in ``dtype``, as a broadcastable row."""
    if mask is None:
        return dtype.type(rows if axis == 0 else cols)
    return mask.sum(axis=axis, keepdims=True).astype(dtype)


def _sum(xp, x, mask, axis):
    return (x if mask is None else xp.where(mask, x, 0)).sum(axis=axis, keepdims=True)


def _forward_sum(ctx, xp, x, mask, axis, mean):
    total = _sum(xp, x, mask, axis).astype(x.dtype, copy=False)
    if not mean:
        return total
    count = _count(xp, mask, *x.shape, axis, x.dtype)
    safe = xp.maximum(count, 1) if mask is not None else max(count, 1)
    if x.dtype.kind == "f":
        return total / safe
    return truncating_divide(ctx, total, xp.asarray(safe, dtype=x.dtype))


def _forward_max(ctx, xp, x, mask, axis, mean):
    if x.shape[axis] == 0:
        return xp.zeros((1, x.shape[1]) if axis == 0 else (x.shape[0], 1), x.dtype)
    if mask is not None:
        x = xp.where(mask, x, np.finfo(x.dtype).min)
    return x.max(axis=axis, keepdims=True)


def _check(ctx, x, dtypes, i):
    if getattr(x, "dtype", None) not in dtypes:
        ctx.fail(f"{ctx.input_label(i)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"{ctx.op_def.type} supports {dtype_names(dtypes)}")


def _forward_kernel(front, reduce, dtypes, mean=False):
    def kernel(ctx, x, *lengths):
        _check(ctx, x, dtypes, 0)
        rows, cols, kept, axis = _layout(ctx, x.shape, front)
        x2 = x.reshape(rows, cols)
        mask = _mask(ctx, ctx.xp, lengths[0] if lengths else None, rows, cols, axis, 1)
        if rows * cols == 0:
            return (ctx.xp.zeros(kept, x.dtype),)
        y = reduce(ctx, ctx.xp, x2, mask, axis, mean)
        return (y.astype(x.dtype, copy=False).reshape(kept),)
    return kernel


def _x_shape(ctx, x_or_shape):
    """X's shape from input 1: X itself, or (Caffe2's older form) its shape as int64."""
    if x_or_shape.ndim == 1 and x_or_shape.dtype == np.int64:
        shape = tuple(int(d) for d in x_or_shape.tolist())
        if any(d < 0 for d in shape):
            ctx.fail(f"{ctx.input_label(1)}, X's shape, holds a negative dim: {list(shape)}")
        return shape
    return tuple(x_or_shape.shape)


def _check_dy(ctx, dy, kept, dtypes):
    _check(ctx, dy, dtypes, 0)
    if tuple(dy.shape) != kept:
        ctx.fail(f"{ctx.input_label(0)} {tuple(dy.shape)} must have the reduced shape {kept}")


def _sum_gradient_kernel(front, mean):
    def kernel(ctx, dy, x_or_shape, *lengths):
        xp = ctx.xp
        shape = _x_shape(ctx, x_or_shape)
        rows, cols, kept, axis = _layout(ctx, shape, front)
        _check_dy(ctx, dy, kept, SUM_DTYPES)
        mask = _mask(ctx, xp, lengths[0] if lengths else None, rows, cols, axis, 2)
        g = dy.reshape((1, cols) if axis == 0 else (rows, 1))
        if mean:
            count = _count(xp, mask, rows, cols, axis, dy.dtype)
            count = xp.maximum(count, 1) if mask is not None else max(count, 1)
            g = g / count if dy.dtype.kind == "f" else truncating_divide(
                ctx, g, xp.asarray(count, dtype=dy.dtype))
        dx = xp.broadcast_to(g, (rows, cols))
        if mask is not None:
            dx = xp.where(mask, dx, 0)
        return (dx.astype(dy.dtype).reshape(shape),)
    return kernel


def _max_gradient_kernel(front):
    def kernel(ctx, dy, x, y, *lengths):
        xp = ctx.xp
        _check(ctx, x, MAX_DTYPES, 1)
        rows, cols, kept, axis = _layout(ctx, x.shape, front)
        _check_dy(ctx, dy, kept, MAX_DTYPES)
        if tuple(y.shape) != kept or y.dtype != x.dtype:
            ctx.fail(f"{ctx.input_label(2)} {y.dtype}{tuple(y.shape)} must be the forward "
                     f"output, {x.dtype}{kept}")
        mask = _mask(ctx, xp, lengths[0] if lengths else None, rows, cols, axis, 3)
        row = (1, cols) if axis == 0 else (rows, 1)
        hit = x.reshape(rows, cols) == y.reshape(row)
        if mask is not None:
            hit = hit & mask
        return (xp.where(hit, dy.reshape(row).astype(x.dtype), 0).astype(x.dtype)
                .reshape(x.shape),)
    return kernel


def _gradient_maker(with_output):
    def maker(op_def, g_output):
        inputs = [dense_output_grad(op_def, g_output), op_def.input[0]]
        inputs += [op_def.output[0]] if with_output else []
        inputs += list(op_def.input[1:2])
        return ([make_operator(op_def.type + "Gradient", inputs, [grad_name(op_def.input[0])])],
                [grad_name(op_def.input[0]), None][:len(op_def.input)])
    return maker


def _shapes(front):
    def infer(ctx, x, *lengths):
        if x is None:
            return (None,)
        return (TensorSpec(_layout(ctx, x.shape, front)[2], x.dtype),)
    return infer


def _register(op_type, front, kind):
    is_max = kind == "Max"
    dtypes = MAX_DTYPES if is_max else SUM_DTYPES
    where = "first" if front else "last"
    register_schema(OpSchema(
        op_type, num_inputs=(1, 2), num_outputs=1, args=ARGS, infer_shapes=_shapes(front),
        inputs=[("X", f"{dtype_names(dtypes)} tensor"),
                ("lengths", "optional int32 (batch,): how many reduced entries count per "
                            "kept element (num_reduce_dim must be 1)")],
        outputs=[("Y", f"X's {kind.lower()} over its {where} num_reduce_dim dims")],
        doc=f"Y = numpy.{kind.lower()}(X, axis=<the {where} num_reduce_dim dims>); with "
            f"lengths, each kept element reduces only its first lengths[j] entries.",
        gradient=_gradient_maker(is_max)))
    grad_inputs = [("dY", f"gradient of {op_type}'s output"), ("X", f"{op_type}'s input")]
    grad_inputs += [("Y", f"{op_type}'s output")] if is_max else []
    grad_inputs[1] = grad_inputs[1] if is_max else ("X", f"{op_type}'s input, or its shape "
                                                         f"as an int64 vector")
    grad_inputs += [("lengths", "optional: the forward op's lengths")]
    register_schema(OpSchema(
        op_type + "Gradient", num_inputs=(3, 4) if is_max else (2, 3), num_outputs=1, args=ARGS,
        inputs=grad_inputs, outputs=[("dX", "gradient of X")],
        doc=f"Gradient of {op_type}."))
    if is_max:
        forward, gradient = _forward_kernel(front, _forward_max, dtypes), _max_gradient_kernel(front)
    else:
        forward = _forward_kernel(front, _forward_sum, dtypes, mean=kind == "Mean")
        gradient = _sum_gradient_kernel(front, mean=kind == "Mean")
    register_kernel(op_type, devices=("CPU", "CUDA"))(forward)
    register_kernel(op_type + "Gradient", devices=("CPU", "CUDA"))(gradient)


for _side in ("Front", "Back"):
    for _kind in ("Sum", "Mean", "Max"):
        _register(f"Reduce{_side}{_kind}", _side == "Front", _kind)
