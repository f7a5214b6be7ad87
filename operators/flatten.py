"""Flatten, FlattenToVec and ResizeLike: the same values under a new shape.

Flatten(axis=1) gives the 2-D (prod(dims[:axis]), prod(dims[axis:])) and
FlattenToVec the 1-D (size,).  Caffe2 made both gradients one op,
``ResizeLike(dY, X) -> dX``: dY given X's shape.  ResizeLike itself needs
the element counts to match (where Caffe2 would resize and leave garbage).
Outputs never alias their input: blobs own their storage.
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                gradient_maker, make_operator, register_kernel, register_schema)


def _is_tensor(ctx, x, index=0):
    if getattr(x, "dtype", None) is None or getattr(x, "shape", None) is None:
        ctx.fail(f"{ctx.input_label(index)} must be a tensor, got {type(x).__name__}")


@gradient_maker(copy_arguments=False)
def resize_like_maker(op_def, g_output):
    """ResizeLike(dY, X) -> dX (Caffe2's GetFlattenGradient / GetFlattenToVecGradient).

    Caffe2 also copied Flatten's 'axis' onto the ResizeLike, which never read it; it
    is left off here, so strict argument checking does not refuse the gradient op.
    """
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None]
    dx = grad_name(op_def.input[0])
    return [make_operator("ResizeLike", [dy, op_def.input[0]], [dx])], [dx]


def flatten_shape(ctx, shape) -> tuple:
    axis = ctx.args["axis"]
    if not 0 <= axis <= len(shape):
        ctx.fail(f"argument 'axis' must be in [0, {len(shape)}] for "
                 f"{ctx.input_label(0)} of shape {tuple(shape)}, got {axis}")
    return (int(np.prod(shape[:axis], dtype=np.int64)),
            int(np.prod(shape[axis:], dtype=np.int64)))


def _flatten_shapes(ctx, x):
    return (None,) if x is None else (TensorSpec(flatten_shape(ctx, x.shape), x.dtype),)


register_schema(OpSchema(
    "Flatten", num_inputs=1, num_outputs=1, infer_shapes=_flatten_shapes,
    inputs=[("input", "tensor of rank >= axis")],
    outputs=[("output", "2-D: (prod(dims[:axis]), prod(dims[axis:]))")],
    args=[Arg("axis", "int", 1, "dims before it form the outer dimension of the output")],
    doc="Flattens input into a 2-D matrix: input.reshape(prod(dims[:axis]), -1).",
    gradient=resize_like_maker))


@register_kernel("Flatten", devices=("CPU", "CUDA"))
def flatten(ctx, x):
    _is_tensor(ctx, x)
    return (x.reshape(flatten_shape(ctx, x.shape)).copy(),)


def _flatten_to_vec_check(ctx, x):
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a 0-d tensor")


def _flatten_to_vec_shapes(ctx, x):
    if x is None:
        return (None,)
    _flatten_to_vec_check(ctx, x)
    return (TensorSpec((x.size,), x.dtype),)


register_schema(OpSchema(
    "FlattenToVec", num_inputs=1, num_outputs=1, infer_shapes=_flatten_to_vec_shapes,
    inputs=[("input", "tensor of rank >= 1")], outputs=[("output", "1-D: (size,)")],
    doc="Flattens input into a 1-D vector: input.reshape(-1).",
    gradient=resize_like_maker))


@register_kernel("FlattenToVec", devices=("CPU", "CUDA"))
def flatten_to_vec(ctx, x):
    _is_tensor(ctx, x)
    _flatten_to_vec_check(ctx, x)
    return (x.reshape(-1).copy(),)


def _resize_like_shapes(ctx, data, like):
    if data is None or like is None:
        return (None,)
    return (TensorSpec(like.shape, data.dtype),)


register_schema(OpSchema(
    "ResizeLike", num_inputs=2, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=_resize_like_shapes,
    inputs=[("data", "tensor to reshape"), ("shape_tensor", "tensor whose shape to take")],
    outputs=[("output", "data.reshape(shape_tensor.shape)")],
    doc="output = data reshaped to the shape of the second input; both must hold the same "
        "number of elements."))


@register_kernel("ResizeLike", devices=("CPU", "CUDA"))
def resize_like(ctx, data, like):
    _is_tensor(ctx, data)
    _is_tensor(ctx, like, 1)
    if data.size != like.size:
        ctx.fail(f"{ctx.input_label(0)} of shape {tuple(data.shape)} has {data.size} "
                 f"elements, {ctx.input_label(1)} of shape {tuple(like.shape)} has "
                 f"{like.size}: ResizeLike needs the same number")
    in_place = ctx.op_def.output[0] == ctx.op_def.input[0]
    y = data.reshape(like.shape)
    return (y if in_place else y.copy(),)
