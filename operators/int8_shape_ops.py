"""Int8Reshape, Int8Flatten, Int8Concat: the shape ops on Int8 tensor blobs.

After ``caffe2/operators/quantized/int8_reshape_op.h``, ``int8_flatten_op.h`` and
``int8_concat_op.h``: the data moves as Reshape / Flatten / Concat move float
tensors, the quantization passes through unchanged, and Y_scale / Y_zero_point
must equal the (first) input's, as Caffe2 CHECKed.  Int8Reshape takes the new
shape from ``shape`` or a second input (0 keeps a dimension, one -1 is
inferred) and also outputs the old shape; Int8Flatten makes (prod(dims[:axis]),
prod(dims[axis:])); Int8Concat joins along ``axis`` (default 3 with order NHWC,
1 with NCHW, else 0) and outputs the split sizes as Concat does.
"""

import math

import numpy as np

from caffe2lite.operators._int8 import Y_ARGS, int8_input, same_params
from caffe2lite.operators.reshape import _requested_shape, _target_shape
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Int8Reshape", num_inputs=(1, 2), num_outputs=2, allow_inplace={(0, 0)}, cpu_fallback=True,
    args=[Arg("shape", "ints", None, "new shape; 0 copies the input dimension, one -1 is "
                                     "inferred"), *Y_ARGS],
    inputs=[("data", "Int8 tensor"), ("new_shape", "optional 1-D int tensor: the new shape")],
    outputs=[("reshaped", "Int8 tensor with the new shape"), ("old_shape", "int64 old shape")],
    doc="Reshape an Int8 tensor (Reshape's rules) and output its former shape.",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8Flatten", num_inputs=1, num_outputs=1, cpu_fallback=True,
    args=[Arg("axis", "int", 1, "dims before axis become the rows, the rest the columns"),
          *Y_ARGS],
    inputs=[("input", "Int8 tensor")], outputs=[("output", "Int8 2-D tensor")],
    doc="Flatten an Int8 tensor to 2-D at axis: (prod(dims[:axis]), prod(dims[axis:])).",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8Concat", num_inputs=(1, None), num_outputs=(1, 2), cpu_fallback=True,
    args=[Arg("axis", "int", None, "axis to join along (default: 3 for NHWC, 1 for NCHW, "
                                   "else 0)"),
          Arg("add_axis", "int", 0, "accepted for Caffe2 nets; Int8Concat does not add one"),
          Arg("order", "string", "", "NHWC or NCHW: picks the default axis"), *Y_ARGS],
    inputs=[("X0", "Int8 tensor"), ("X1...", "Int8 tensors of X0's shape off the axis")],
    outputs=[("Y", "Int8 concatenation, X0's quantization"),
             ("split", "int32 sizes along the axis")],
    doc="Concatenate Int8 tensors along an axis (their quantization is X0's).",
    gradient=NO_GRADIENT))


@register_kernel("Int8Reshape")
def int8_reshape(ctx, X, *new_shape):
    x = int8_input(ctx, 0, X)
    same_params(ctx, x)
    requested, shape_dtype = _requested_shape(ctx, new_shape)
    y = x.data.reshape(_target_shape(ctx, x.data, requested)).copy()
    return Int8Tensor(y, x.scale, x.zero_point), np.asarray(x.data.shape, dtype=shape_dtype)


@register_kernel("Int8Flatten")
def int8_flatten(ctx, X):
    x = int8_input(ctx, 0, X)
    same_params(ctx, x)
    axis = ctx.args["axis"]
    if not 0 <= axis <= x.data.ndim:
        ctx.fail(f"argument 'axis' = {axis} is out of range for a tensor of rank {x.data.ndim}")
    shape = (math.prod(x.data.shape[:axis]), math.prod(x.data.shape[axis:]))
    return Int8Tensor(x.data.reshape(shape).copy(), x.scale, x.zero_point)


@register_kernel("Int8Concat")
def int8_concat(ctx, *inputs):
    xs = [int8_input(ctx, i, v) for i, v in enumerate(inputs)]
    same_params(ctx, xs[0])
    order = ctx.args["order"]
    axis = ctx.args["axis"]
    if axis is None:
        axis = 3 if order == "NHWC" else 1 if order == "NCHW" else 0
    ndim = xs[0].data.ndim
    if order == "NHWC" and ndim != 4:
        ctx.fail(f"with order NHWC the inputs must be 4-D, got {xs[0].data.shape}")
    if not 0 <= axis < ndim or (order in ("NHWC", "NCHW") and axis > 3):
        ctx.fail(f"argument 'axis' = {axis} is out of range for rank {ndim}")
    for i, x in enumerate(xs[1:], 1):
        same = x.data.ndim == ndim and all(x.data.shape[d] == xs[0].data.shape[d]
                                           for d in range(ndim) if d != axis)
        if not same:
            ctx.fail(f"{ctx.input_label(i)} {x.data.shape} must match input 0 "
                     f"{xs[0].data.shape} off axis {axis}")
    y = np.concatenate([x.data for x in xs], axis=axis)
    split = np.array([x.data.shape[axis] for x in xs], np.int32)
    result = Int8Tensor(y, xs[0].scale, xs[0].zero_point)
    return (result, split) if len(ctx.op_def.output) == 2 else (result,)
