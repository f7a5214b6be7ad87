"""Glu: the gated linear unit (caffe2/operators/glu_op.*).

X is split in two halves along ``dim`` (default -1, the last axis; its size must be
even): Y = first half * sigmoid(second half).  Caffe2 registered it for float on
CPU, with no gradient.
"""

import numpy as np

from caffe2lite.runtime import Arg, OpSchema, TensorSpec, register_kernel, register_schema


def _split_axis(ctx, shape):
    dim = ctx.args["dim"]
    axis = len(shape) - 1 if dim == -1 else dim
    if not 0 <= axis < len(shape):
        ctx.fail(f"argument 'dim' = {dim} is out of range for {ctx.input_label(0)} of shape "
                 f"{tuple(shape)} (-1 or 0 ... rank - 1)")
    return axis


def _shapes(ctx, x):
    if x is None or x.ndim == 0:
        return (None,)
    axis = _split_axis(ctx, x.shape)
    return (TensorSpec(x.shape[:axis] + (x.shape[axis] // 2,) + x.shape[axis + 1:], x.dtype),)


register_schema(OpSchema(
    "Glu", num_inputs=1, num_outputs=1, infer_shapes=_shapes,
    inputs=[("X", "float32 input tensor")],
    outputs=[("Y", "X's shape with the split dimension halved")],
    args=[Arg("dim", "int", -1, "the dimension to split in two (-1: the last)")],
    doc="Applies gated linear unit to the input Tensor X: with X split in halves X1, X2 along "
        "dim, Y = X1 * sigmoid(X2).  The output Y is half the size of X along dim."))


@register_kernel("Glu", devices=("CPU", "CUDA"))
def glu(ctx, x):
    xp = ctx.xp
    if x.dtype != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be float32, got {x.dtype}")
    if x.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    axis = _split_axis(ctx, x.shape)
    if x.shape[axis] % 2:
        ctx.fail(f"{ctx.input_label(0)}: Split dimension {x.shape[axis]} should be divided by "
                 f"two")
    x1, x2 = xp.split(x, 2, axis=axis)
    with np.errstate(over="ignore"):
        e = xp.exp(-xp.abs(x2))  # sigmoid without overflow: e / (1 + e) below zero
        gate = xp.where(x2 >= 0, 1 / (1 + e), e / (1 + e))
    return ((x1 * gate).astype(np.float32, copy=False),)
