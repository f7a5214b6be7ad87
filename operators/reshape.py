"""Reshape: data reshaped to a new shape, plus the old shape (Caffe2's reshape_op).

The new shape comes from the ``shape`` argument or from a second input (a
1-D int32/int64 tensor), never both.  In it, 0 keeps the input's dimension
at the same index (for a non-empty input, as in Caffe2) and one -1 is
inferred from the remaining size, so ``numpy.reshape`` plus the 0 rule.
``old_shape`` (int64, or the shape input's dtype) lets the gradient reshape
dY back.  Where Caffe2 would resize an empty input to a non-empty shape
(leaving garbage), this is an error.
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                gradient_maker, make_operator, register_kernel, register_schema,
                                rewrites)


@gradient_maker(copy_arguments=False)  # `shape` is not what the backward reshape needs
def reshape_gradient_maker(op_def, g_output):
    """Reshape(dY, old_shape) -> dX (Caffe2's GetReshapeGradient)."""
    x = op_def.input[0]
    grad_op = make_operator("Reshape", [dense_output_grad(op_def, g_output), op_def.output[1]],
                            [grad_name(x), f"_{grad_name(x)}_dims"])
    return [grad_op], [grad_name(x)] + [None] * (len(op_def.input) - 1)


def _reshape_shapes(ctx, X, *new_shape_input):
    """Shapes from the ``shape`` argument; a shape given as a blob is a value, so unknown."""
    if X is None or new_shape_input or ctx.args["shape"] is None:
        return None, None
    target = _target_shape(ctx, X, list(ctx.args["shape"]))
    return TensorSpec(target, X.dtype), TensorSpec((X.ndim,), np.int64)


register_schema(OpSchema(
    "Reshape", num_inputs=(1, 2), num_outputs=2, allow_inplace={(0, 0)},
    args=[Arg("shape", "ints", None, "new shape; 0 copies the input dimension at that index, "
                                     "one -1 is inferred")],
    inputs=[("data", "tensor to reshape"),
            ("new_shape", "optional 1-D int tensor: the new shape (instead of the argument)")],
    outputs=[("reshaped", "data with the new shape"), ("old_shape", "int64 shape of data")],
    doc="Reshape data (numpy.reshape, where 0 keeps the input dimension at that index) and "
        "output its former shape.",
    gradient=reshape_gradient_maker, infer_shapes=_reshape_shapes))


def _requested_shape(ctx, new_shape_input):
    """The shape asked for, and the dtype old_shape takes (that of the shape input, or int64)."""
    if not new_shape_input:
        if ctx.args["shape"] is None:
            ctx.fail("Argument `shape` is missing (give it or a second input).")
        return list(ctx.args["shape"]), np.int64
    if ctx.args["shape"] is not None:
        ctx.fail("New shape is specified by the input blob, do not pass in the argument `shape`.")
    raw = np.asarray(ctx.device.to_host(new_shape_input[0]))
    if raw.ndim != 1:
        ctx.fail(f"Shape should be 1-D; {ctx.input_label(1)} has shape {raw.shape}")
    if raw.dtype not in (np.int32, np.int64):
        ctx.fail_input(1, f"must be int32 or int64, got {raw.dtype}")
    return raw.tolist(), raw.dtype


def _target_shape(ctx, X, shape):
    """Caffe2's rules: 0 copies the input dim (non-empty input only), one -1 is inferred."""
    total = X.size
    if total:
        shape = [X.shape[i] if d == 0 and i < X.ndim else d for i, d in enumerate(shape)]
    if not all(d >= -1 for d in shape):
        ctx.fail(f"The dimensions in argument `shape` {shape} must "
                 f"not be a negative number (other than -1).")
    if shape.count(-1) > 1:
        ctx.fail(f"Argument `shape` {shape} has more than one missing dimension.")
    size = int(np.prod([d for d in shape if d != -1]))
    unknown = shape.index(-1) if -1 in shape else None
    if total:
        if size == 0:
            ctx.fail(f"Can not reshape a non-zero size ({total}) tensor to zero "
                     f"size (shape {shape}).")
        if unknown is not None:
            if total % size != 0:
                ctx.fail(f"Argument `shape` {shape} does not agree with the "
                         f"input data. ({total} vs {size}; {ctx.input_label(0)})")
            shape[unknown] = total // size
    elif unknown is not None:
        shape[unknown] = 0  # an empty input: the unknown dimension is 0
    if int(np.prod(shape)) != total:
        ctx.fail(f"Argument `shape` {shape} does not agree with the input data. ({total} != "
                 f"{int(np.prod(shape))} elements; {ctx.input_label(0)} has shape "
                 f"{tuple(X.shape)})")
    return tuple(shape)


@register_kernel("Reshape", devices=("CPU", "CUDA"))
def reshape(ctx, X, *new_shape_input):
    requested, shape_dtype = _requested_shape(ctx, new_shape_input)
    Y = X.reshape(_target_shape(ctx, X, requested))
    in_place = ctx.op_def.input[0] == ctx.op_def.output[0]
    return (Y if in_place else Y.copy()), np.asarray(X.shape, dtype=shape_dtype)


rewrites.register_pure("Reshape")  # runtime/rewrites.py: constant folding
