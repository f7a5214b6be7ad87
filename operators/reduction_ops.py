"""Whole-tensor and row/column reductions (Caffe2's reduction_ops.cc).

* SumElements: the 0-d sum of X (``average=1``: the mean); gradient
  SumElementsGradient(X, dY) spreads dY (divided by X.size for the mean).
* SumSqrElements: the 0-d sum of X * X (``average=1``: the mean); no gradient.
* SumElementsInt: the 0-d int32 sum of an int32 X; no gradient.
* RowwiseMax / ColwiseMax: X of shape (B, M, N) to (B, M) = max over N, or to
  (B, N) = max over M; their gradients (X, Y, dY) pass dY to the elements equal
  to the maximum.
"""

import numpy as np

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

AVERAGE = [Arg("average", "bool", False, "divide the sum by the number of elements")]


def _scalar_shape(dtype=None):
    def infer(ctx, x, *rest):
        return (TensorSpec((), dtype or x.dtype) if x is not None else None,)
    return infer


register_schema(OpSchema(
    "SumElements", num_inputs=1, num_outputs=1, args=AVERAGE, infer_shapes=_scalar_shape(),
    inputs=[("X", "float tensor to sum up")],
    outputs=[("sum", "0-d: X.sum(), or X.mean() with average")],
    doc="Sums the elements of X into a 0-d tensor (numpy.sum(X)); with average=1, the mean.",
    gradient=single_gradient_def("SumElementsGradient", ["I0", "GO0"], ["GI0"])))

register_schema(OpSchema(
    "SumElementsGradient", num_inputs=2, num_outputs=1, args=AVERAGE,
    infer_shapes=lambda ctx, x, dy: (x,),
    inputs=[("X", "SumElements' input"), ("dY", "gradient of the sum, one element")],
    outputs=[("dX", "X's shape, every element dY (dY / X.size with average)")],
    doc="Gradient of SumElements."))

register_schema(OpSchema(
    "SumSqrElements", num_inputs=1, num_outputs=1, args=AVERAGE, infer_shapes=_scalar_shape(),
    inputs=[("X", "float tensor")], outputs=[("sum", "0-d: (X * X).sum(), or the mean")],
    doc="Sums the squares of the elements of X into a 0-d tensor; with average=1, their mean."))

register_schema(OpSchema(
    "SumElementsInt", num_inputs=1, num_outputs=1, infer_shapes=_scalar_shape(np.int32),
    gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("X", "int32 tensor")], outputs=[("sum", "0-d int32: X.sum()")],
    doc="Sums the int32 elements of X into a 0-d int32 tensor."))


def _mean_or_sum(ctx, total, size, dtype):
    if not ctx.args["average"]:
        return total.astype(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / dtype.type(size)).astype(dtype)


@register_kernel("SumElements", devices=("CPU", "CUDA"))
def sum_elements(ctx, x):
    check_float(ctx, 0, x)
    return (_mean_or_sum(ctx, x.sum(), x.size, x.dtype),)


@register_kernel("SumSqrElements", devices=("CPU", "CUDA"))
def sum_sqr_elements(ctx, x):
    check_float(ctx, 0, x)
    return (_mean_or_sum(ctx, (x * x).sum(), x.size, x.dtype),)


@register_kernel("SumElementsInt", devices=("CPU", "CUDA"))
def sum_elements_int(ctx, x):
    if x.dtype != np.int32:
        ctx.fail(f"{ctx.input_label(0)} has {x.dtype}; SumElementsInt sums int32 only")
    return (x.sum(dtype=np.int32).reshape(()),)


@register_kernel("SumElementsGradient", devices=("CPU", "CUDA"))
def sum_elements_gradient(ctx, x, dy):
    check_float(ctx, 1, dy)
    if dy.size != 1:
        ctx.fail(f"{ctx.input_label(1)} {tuple(dy.shape)} must hold the one gradient of the sum")
    g = dy.reshape(())
    if ctx.args["average"] and x.size:
        g = g / dy.dtype.type(x.size)
    return (ctx.xp.full(x.shape, g, dy.dtype),)


# -- RowwiseMax / ColwiseMax: (B, M, N) -> (B, M) / (B, N) ---------------------------
def _batch_matrices(ctx, x):
    check_float(ctx, 0, x)
    if x.ndim != 3:
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} must be 3-D: (batch, rows, columns)")


for _type, _axis, _what in (("RowwiseMax", 2, "(B, M): the max of each row"),
                            ("ColwiseMax", 1, "(B, N): the max of each column")):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1,
        infer_shapes=lambda ctx, x, axis=_axis: (
            TensorSpec(x.shape[:axis] + x.shape[axis + 1:], x.dtype)
            if x is not None and x.ndim == 3 else None,),
        inputs=[("X", "float tensor (B, M, N)")], outputs=[("Y", _what)],
        doc=f"Y = numpy.max(X, axis={_axis}) for X of shape (B, M, N): {_what}.",
        gradient=single_gradient_def(_type + "Gradient", ["I0", "O0", "GO0"], ["GI0"])))
    register_schema(OpSchema(
        _type + "Gradient", num_inputs=3, num_outputs=1, infer_shapes=lambda ctx, x, y, dy: (x,),
        inputs=[("X", f"{_type}'s input"), ("Y", f"{_type}'s output"),
                ("dY", "gradient of Y")],
        outputs=[("dX", "dY where X equals its maximum, else 0")],
        doc=f"Gradient of {_type}."))

    def _forward(ctx, x, axis=_axis):
        _batch_matrices(ctx, x)
        if x.shape[axis] == 0:
            ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} has nothing to take the max of")
        return (x.max(axis=axis),)

    def _gradient(ctx, x, y, dy, axis=_axis):
        _batch_matrices(ctx, x)
        want = x.shape[:axis] + x.shape[axis + 1:]
        for i, v in ((1, y), (2, dy)):
            if tuple(v.shape) != want:
                ctx.fail(f"{ctx.input_label(i)} {tuple(v.shape)} must have shape {want}")
            check_float(ctx, i, v, 0, x)
        hit = x == ctx.xp.expand_dims(y, axis)
        return (ctx.xp.where(hit, ctx.xp.expand_dims(dy, axis), 0).astype(x.dtype),)

    register_kernel(_type, devices=("CPU", "CUDA"))(_forward)
    register_kernel(_type + "Gradient", devices=("CPU", "CUDA"))(_gradient)
