"""Moments and BatchMoments with their gradients (Caffe2's moments_op, batch_moments_op).

* Moments: the mean and the (population) variance of X over ``axes`` (default
  all), kept as size-1 dims unless ``keepdims=0`` -- numpy.mean / numpy.var.
  MomentsGradient(dmean, dvariance, X, mean) -> dX = (dmean + 2 (X - mean)
  dvariance) / n, n the number of elements reduced into each value.
* BatchMoments: per channel (axis 1 for NCHW, last for NHWC) over the batch
  and every spatial position, mu = mean(X) and var = mean(X * X) -- the second
  moment, not the variance, as Caffe2 computed it.  BatchMomentsGradient(dmu,
  dvar, X) -> dX = (dmu + 2 X dvar) / (N * HxW).
"""

from math import prod

import numpy as np

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._storage_order import ORDER_ARG, batch_channel_axis
from caffe2lite.operators._train_common import check_float
from caffe2lite.operators.reduce_ops import REDUCE_ARGS, output_shape, reduced_axes
from caffe2lite.runtime import OpSchema, TensorSpec, register_kernel, register_schema


def _moments_shapes(ctx, x):
    if x is None:
        return (None, None)
    spec = TensorSpec(output_shape(x.shape, reduced_axes(ctx, x.ndim), ctx.args["keepdims"]),
                      x.dtype)
    return (spec, spec)


register_schema(OpSchema(
    "Moments", num_inputs=1, num_outputs=2, args=REDUCE_ARGS, infer_shapes=_moments_shapes,
    inputs=[("data", "float tensor")],
    outputs=[("mean", "numpy.mean(X, axes, keepdims)"),
             ("variance", "numpy.var(X, axes, keepdims)")],
    doc="The mean and the population variance of X over 'axes' (all by default). An output "
        "without a gradient contributes none to the gradient (a zero one is filled in).",
    gradient=single_gradient_def("MomentsGradient", ["GO0", "GO1", "I0", "O0"], ["GI0"],
                                 zeros_for_missing=True)))

register_schema(OpSchema(
    "MomentsGradient", num_inputs=4, num_outputs=1, args=REDUCE_ARGS,
    infer_shapes=lambda ctx, dmean, dvar, x, mean: (x,),
    inputs=[("dmean", "gradient of the mean"), ("dvariance", "gradient of the variance"),
            ("X", "Moments' input"), ("mean", "Moments' mean")],
    outputs=[("dX", "(dmean + 2 (X - mean) dvariance) / n")],
    doc="Gradient of Moments."))


@register_kernel("Moments", devices=("CPU", "CUDA"))
def moments(ctx, x):
    check_float(ctx, 0, x)
    axes = reduced_axes(ctx, x.ndim)
    n = x.dtype.type(prod(x.shape[a] for a in axes))
    with np.errstate(invalid="ignore", divide="ignore"):  # over nothing: NaN, as 0 / 0
        mean = x.sum(axis=axes, keepdims=True) / n
        variance = ((x - mean) ** 2).sum(axis=axes, keepdims=True) / n
    shape = output_shape(x.shape, axes, ctx.args["keepdims"])
    return mean.reshape(shape), variance.reshape(shape)


@register_kernel("MomentsGradient", devices=("CPU", "CUDA"))
def moments_gradient(ctx, dmean, dvar, x, mean):
    check_float(ctx, 2, x)
    axes = reduced_axes(ctx, x.ndim)
    kept = output_shape(x.shape, axes, True)
    for i, v in ((0, dmean), (1, dvar), (3, mean)):
        check_float(ctx, i, v, 2, x)
        if v.size != prod(kept):
            ctx.fail(f"{ctx.input_label(i)} {tuple(v.shape)} is not X's reduced shape {kept}")
    n = prod(x.shape) // max(prod(kept), 1)
    dx = (dmean.reshape(kept) + 2 * (x - mean.reshape(kept)) * dvar.reshape(kept)) / max(n, 1)
    return (dx.astype(x.dtype, copy=False),)


def _channels(ctx, x) -> int:
    return x.shape[batch_channel_axis(ctx, x)]


def _batch_layout(ctx, x):
    """(X viewed as (N, C, HxW), or (N * HxW, C) for NHWC; the axes to reduce; C)."""
    axis = batch_channel_axis(ctx, x)
    c = x.shape[axis]
    if axis == 1:
        return x.reshape(x.shape[0], c, prod(x.shape[2:])), (0, 2), c
    return x.reshape(prod(x.shape[:-1]), c), (0,), c


register_schema(OpSchema(
    "BatchMoments", num_inputs=1, num_outputs=2, args=[ORDER_ARG],
    infer_shapes=lambda ctx, x: (TensorSpec((_channels(ctx, x),), x.dtype),) * 2
    if x is not None else (None, None),
    inputs=[("X", "float tensor (N, C, ...) or (N, ..., C)")],
    outputs=[("mu", "(C,): the mean per channel"), ("var", "(C,): the mean of X * X per channel")],
    doc="Per-channel first and second moments over the batch and spatial positions: "
        "mu = mean(X), var = mean(X * X) (not the variance).",
    gradient=single_gradient_def("BatchMomentsGradient", ["GO0", "GO1", "I0"], ["GI0"],
                                 zeros_for_missing=True)))

register_schema(OpSchema(
    "BatchMomentsGradient", num_inputs=3, num_outputs=1, args=[ORDER_ARG],
    infer_shapes=lambda ctx, dmu, dvar, x: (x,),
    inputs=[("dmu", "gradient of mu"), ("dvar", "gradient of var"), ("X", "BatchMoments' X")],
    outputs=[("dX", "(dmu + 2 X dvar) / (N * HxW)")],
    doc="Gradient of BatchMoments."))


@register_kernel("BatchMoments", devices=("CPU", "CUDA"))
def batch_moments(ctx, x):
    check_float(ctx, 0, x)
    view, axes, c = _batch_layout(ctx, x)
    count = max(x.size // max(c, 1), 1)
    return ((view.sum(axis=axes) / count).astype(x.dtype),
            ((view * view).sum(axis=axes) / count).astype(x.dtype))


@register_kernel("BatchMomentsGradient", devices=("CPU", "CUDA"))
def batch_moments_gradient(ctx, dmu, dvar, x):
    check_float(ctx, 2, x)
    view, axes, c = _batch_layout(ctx, x)
    for i, v in ((0, dmu), (1, dvar)):
        check_float(ctx, i, v, 2, x)
        if v.size != c:
            ctx.fail(f"{ctx.input_label(i)} has {v.size} elements, expected one per channel ({c})")
    shape = (1, c, 1) if axes == (0, 2) else (1, c)
    count = max(x.size // max(c, 1), 1)
    dx = (dmu.reshape(shape) + 2 * view * dvar.reshape(shape)) / count
    return (dx.reshape(x.shape).astype(x.dtype, copy=False),)
