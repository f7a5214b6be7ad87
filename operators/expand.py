"""Expand and ExpandGradient: broadcast a tensor to a shape, materialised.

Caffe2 (expand_op.h): Y = X * numpy.ones(shape) -- dims right-aligned, each pair
equal or one of them 1; a shape entry <= 0 (PyTorch's -1, "keep this dim")
counts as 1.  ``shape`` is an int64 vector input.  ExpandGradient sums dY over
the broadcast dims back to X's shape.
"""

import numpy as np

from caffe2lite.operators._axes import check_numeric
from caffe2lite.runtime import (OpSchema, check_allocation, grad_name, make_operator,
                                register_kernel, register_schema)

EXPAND_KINDS = "iuf"  # Caffe2 registered int32, int64, float and double


def expand_gradient_maker(op_def, g_output):
    """ExpandGradient(dY, X) -> dX (Caffe2's GetExpandGradient)."""
    dx = grad_name(op_def.input[0])
    return [make_operator("ExpandGradient", [g_output[0], op_def.input[0]], [dx])], [dx, None]


register_schema(OpSchema(
    "Expand", num_inputs=2, num_outputs=1,
    inputs=[("X", "numeric tensor"), ("shape", "int64 vector: the shape to broadcast to")],
    outputs=[("Y", "X broadcast to shape (dims right-aligned), a new tensor")],
    doc="Y = X * numpy.ones(shape): numpy broadcasting, with shape entries <= 0 read as 1.",
    gradient=expand_gradient_maker))

register_schema(OpSchema(
    "ExpandGradient", num_inputs=2, num_outputs=1,
    inputs=[("dY", "gradient of Expand's output"), ("X", "Expand's input (for its shape)")],
    outputs=[("dX", "dY summed over the broadcast dims, shaped like X")],
    doc="The gradient of Expand."))


def broadcast_shape(ctx, x_shape, shape):
    """Caffe2's Expand rule: right-aligned dims, equal or 1, entries <= 0 taken as 1."""
    wanted = [s if s > 0 else 1 for s in shape]
    n = max(len(wanted), len(x_shape))
    x_dims = [1] * (n - len(x_shape)) + list(x_shape)
    y_dims = [1] * (n - len(wanted)) + wanted
    if any(a != b and 1 not in (a, b) for a, b in zip(x_dims, y_dims)):
        ctx.fail(f"{ctx.input_label(0)} of shape {tuple(x_shape)} cannot be broadcast to "
                 f"{list(shape)}: dims must match or be 1, right-aligned")
    # numpy's rule, which differs from Caffe2's max(a, b) only for an empty X dim
    return tuple(b if a == 1 else a for a, b in zip(x_dims, y_dims))


@register_kernel("Expand", devices=("CPU", "CUDA"))
def expand(ctx, x, shape):
    check_numeric(ctx, 0, x, EXPAND_KINDS)
    if shape.dtype not in (np.int32, np.int64) or shape.ndim > 1:
        ctx.fail(f"{ctx.input_label(1)} must be an int64 vector, got {shape.dtype} of shape "
                 f"{tuple(shape.shape)}")
    y_shape = broadcast_shape(ctx, x.shape, [int(s) for s in shape.reshape(-1).tolist()])
    check_allocation(ctx, y_shape, x.itemsize, ctx.input_label(1))
    return (ctx.xp.array(ctx.xp.broadcast_to(x, y_shape)),)


@register_kernel("ExpandGradient", devices=("CPU", "CUDA"))
def expand_gradient(ctx, dy, x):
    check_numeric(ctx, 0, dy, EXPAND_KINDS)
    offset = dy.ndim - x.ndim
    if offset < 0 or any(d != 1 and d != e for d, e in zip(x.shape, dy.shape[offset:])):
        ctx.fail(f"{ctx.input_label(0)} {tuple(dy.shape)} is not a broadcast of "
                 f"{ctx.input_label(1)} {tuple(x.shape)}")
    axes = tuple(range(offset)) + tuple(offset + i for i, d in enumerate(x.shape) if d == 1)
    return (dy.sum(axis=axes, dtype=dy.dtype).reshape(x.shape),)
