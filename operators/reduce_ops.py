"""ReduceMin, ReduceMax, ReduceSum, ReduceMean, ReduceL1, ReduceL2 over chosen axes (Caffe2's reduce_ops).

``axes`` (default: all) are reduced; ``keepdims`` (default 1) keeps them as
size-1 dims, otherwise they are dropped (all dropped: a 0-d result).  Negative
axes count from the end.  NumPy: ``numpy.sum(X, axis=axes, keepdims=keepdims)``
and likewise; L1 is ``abs(X).sum``, L2 ``sqrt((X * X).sum)``.  Min and Max
over no elements give the dtype's highest / lowest value, as Caffe2's
reduction started from them.

Each has ``<Op>Gradient(dY, X, Y) -> dX`` (Caffe2's GetReduceGradient):
Sum broadcasts dY, Mean divides it by the count, Min / Max pass it to every
element equal to the result (ties all get it), L1 gives ``sign(X) * dY`` with
|X| <= 1e-12 counting as 0, L2 gives ``dY * X / Y`` (dY itself where Y < 1e-12).
"""

import numpy as np

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import Arg, OpSchema, TensorSpec, register_kernel, register_schema

EPS = 1e-12
ALL_NUMERIC = (np.int32, np.int64, np.float32, np.float64)
FLOATS = (np.float32, np.float64)

REDUCE_ARGS = [
    Arg("axes", "ints", [], "the axes to reduce (negative ones count from the end); "
                            "default: all"),
    Arg("keepdims", "int", 1, "1 keeps each reduced axis as a dim of size 1, 0 drops it"),
]


def _extreme_forward(name, start):
    """Min / Max; over zero elements the result is the dtype's `start` value."""
    def forward(xp, x, axes):
        if any(x.shape[a] == 0 for a in axes):
            info = np.finfo(x.dtype) if x.dtype.kind == "f" else np.iinfo(x.dtype)
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
            return xp.full(shape, getattr(info, start), x.dtype)
        return getattr(x, name)(axis=axes, keepdims=True)
    return forward


def _mean(xp, x, axes):
    count = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(invalid="ignore", divide="ignore"):  # over nothing: NaN, as 0 / 0
        return x.sum(axis=axes, keepdims=True) / x.dtype.type(count)


def _extreme_gradient(xp, dy, x, y, count):
    return xp.where(x == y, dy, 0 * dy)


def _l1_gradient(xp, dy, x, y, count):
    return xp.where(x > EPS, dy, xp.where(x < -EPS, -dy, 0 * dy))


def _l2_gradient(xp, dy, x, y, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.where(y < EPS, dy, dy * x / y)


# type: (formula, dtypes, forward(xp, X, axes) with keepdims, gradient(xp, dY, X, Y, count)
#        with dY and Y in keepdims form)
REDUCERS = {
    "ReduceMin": ("numpy.min", ALL_NUMERIC, _extreme_forward("min", "max"), _extreme_gradient),
    "ReduceMax": ("numpy.max", ALL_NUMERIC, _extreme_forward("max", "min"), _extreme_gradient),
    "ReduceSum": ("numpy.sum", ALL_NUMERIC, lambda xp, x, axes: x.sum(axis=axes, keepdims=True),
                  lambda xp, dy, x, y, count: xp.broadcast_to(dy, x.shape)),
    "ReduceMean": ("numpy.mean", FLOATS, _mean,
                   lambda xp, dy, x, y, count: xp.broadcast_to(dy / max(count, 1), x.shape)),
    "ReduceL1": ("the L1 norm, abs(X).sum", FLOATS,
                 lambda xp, x, axes: xp.abs(x).sum(axis=axes, keepdims=True), _l1_gradient),
    "ReduceL2": ("the L2 norm, sqrt((X * X).sum)", FLOATS,
                 lambda xp, x, axes: xp.sqrt((x * x).sum(axis=axes, keepdims=True)),
                 _l2_gradient),
}


def reduced_axes(ctx, ndim) -> tuple:
    """The 'axes' argument made non-negative, sorted and unique (all axes when empty)."""
    axes = ctx.args["axes"]
    if not axes:
        return tuple(range(ndim))
    for a in axes:
        if not -ndim <= a < ndim:
            ctx.fail(f"axis {a} in 'axes' {list(axes)} is out of range for "
                     f"{ctx.input_label(0)} of rank {ndim}")
    return tuple(sorted({a + ndim if a < 0 else a for a in axes}))


def _check_dtype(ctx, x, dtypes, i=0):
    if getattr(x, "dtype", None) not in dtypes:
        ctx.fail(f"{ctx.input_label(i)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"{ctx.op_def.type} supports {dtype_names(dtypes)}")


def output_shape(x_shape, axes, keepdims) -> tuple:
    return tuple(1 if i in axes else d for i, d in enumerate(x_shape)
                 if keepdims or i not in axes)


def _forward_kernel(forward, dtypes):
    def kernel(ctx, x):
        _check_dtype(ctx, x, dtypes)
        axes = reduced_axes(ctx, x.ndim)
        y = forward(ctx.xp, x, axes).astype(x.dtype, copy=False)
        return (y.reshape(output_shape(x.shape, axes, ctx.args["keepdims"])),)
    return kernel


def _gradient_kernel(gradient, dtypes):
    def kernel(ctx, dy, x, y):
        for i, value in enumerate((dy, x, y)):
            _check_dtype(ctx, value, dtypes, i)
        axes = reduced_axes(ctx, x.ndim)
        kept = output_shape(x.shape, axes, True)
        for i, value in ((0, dy), (2, y)):
            if value.shape not in (kept, output_shape(x.shape, axes, False)):
                ctx.fail(f"{ctx.input_label(i)} {tuple(value.shape)} is not the reduced shape "
                         f"of X {tuple(x.shape)} over axes {list(axes)}")
        count = int(np.prod([x.shape[a] for a in axes]))
        dx = gradient(ctx.xp, dy.reshape(kept).astype(x.dtype, copy=False), x,
                      y.reshape(kept), count)
        return (dx.astype(x.dtype, copy=False),)
    return kernel


def _reduce_shapes(ctx, x):
    if x is None:
        return (None,)
    axes = reduced_axes(ctx, x.ndim)
    return (TensorSpec(output_shape(x.shape, axes, ctx.args["keepdims"]), x.dtype),)


def _register(op_type, formula, dtypes, forward, gradient):
    grad_type = op_type + "Gradient"
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, args=REDUCE_ARGS, infer_shapes=_reduce_shapes,
        inputs=[("X", f"{dtype_names(dtypes)} tensor")],
        outputs=[("Y", f"{formula} of X over 'axes', X's dtype")],
        doc=f"Y = {formula}(X, axis=axes, keepdims=keepdims): reduces the given axes (all "
            f"by default), keeping them as size-1 dims unless keepdims=0.",
        gradient=single_gradient_def(grad_type, ["GO0", "I0", "O0"], ["GI0"])))
    register_schema(OpSchema(
        grad_type, num_inputs=3, num_outputs=1, args=REDUCE_ARGS,
        infer_shapes=lambda ctx, dy, x, y: (x,),
        inputs=[("dY", f"gradient of {op_type}'s output"), ("X", f"{op_type}'s input"),
                ("Y", f"{op_type}'s output")],
        outputs=[("dX", "gradient of X, X's shape")],
        doc=f"Gradient of {op_type} (same 'axes' and 'keepdims' as the forward op)."))
    register_kernel(op_type, devices=("CPU", "CUDA"))(_forward_kernel(forward, dtypes))
    register_kernel(grad_type, devices=("CPU", "CUDA"))(_gradient_kernel(gradient, dtypes))


for _type, _row in REDUCERS.items():
    _register(_type, *_row)
