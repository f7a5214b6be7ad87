"""Reshape: data reshaped to a new shape, plus the old shape (Caffe2's reshape_op).

The new shape comes from the ``shape`` argument or from a second input (a
1-D int tensor), never both.  In it, 0 keeps the input's dimension at the
same index and one -1 is inferred from the remaining size, so
``numpy.reshape`` plus the 0 rule.  ``old_shape`` (int64) lets the gradient
reshape dY back.
"""

import numpy as np

from caffe2lite.gradients import dense_output_grad, grad_name, gradient_maker
from caffe2lite.core import CreateOperator
from caffe2lite.registry import register_kernel, register_schema
from caffe2lite.schema import Arg, OpSchema


@gradient_maker(copy_arguments=False)  # `shape` is not what the backward reshape needs
def reshape_gradient_maker(op_def, g_output):
    """Reshape(dY, old_shape) -> dX (Caffe2's GetReshapeGradient)."""
    x = op_def.input[0]
    grad_op = CreateOperator("Reshape", [dense_output_grad(op_def, g_output), op_def.output[1]],
                             [grad_name(x), f"_{grad_name(x)}_dims"])
    return [grad_op], [grad_name(x)] + [None] * (len(op_def.input) - 1)


register_schema(OpSchema(
    "Reshape", num_inputs=(1, 2), num_outputs=2, allow_inplace={(0, 0)},
    args=[Arg("shape", "ints", None, "new shape; 0 copies the input dimension at that index, "
                                     "one -1 is inferred")],
    inputs=[("data", "tensor to reshape"),
            ("new_shape", "optional 1-D int tensor: the new shape (instead of the argument)")],
    outputs=[("reshaped", "data with the new shape"), ("old_shape", "int64 shape of data")],
    doc="Reshape data (numpy.reshape, where 0 keeps the input dimension at that index) and "
        "output its former shape.",
    gradient=reshape_gradient_maker))


def _target_shape(ctx, X, new_shape_input):
    if new_shape_input:
        ctx.enforce(ctx.args["shape"] is None, "New shape is specified by the input blob, do "
                                               "not pass in the argument `shape`.")
        raw = np.asarray(ctx.device.to_host(new_shape_input[0]))
        ctx.enforce(raw.ndim == 1 and raw.dtype.kind in "iu",
                    f"input 'new_shape' must be a 1-D int tensor, got {raw.dtype} of shape "
                    f"{raw.shape}")
        shape = raw.tolist()
    else:
        ctx.enforce(ctx.args["shape"] is not None, "Argument `shape` is missing (give it or a "
                                                   "second input).")
        shape = list(ctx.args["shape"])
    for i, d in enumerate(shape):
        if d == 0:
            ctx.enforce(i < X.ndim, f"shape[{i}] is 0 (copy the input dimension), but the input "
                                    f"has only {X.ndim} dimensions")
            shape[i] = X.shape[i]
        else:
            ctx.enforce(d >= -1, f"shape[{i}] = {d}: dimensions must be >= -1")
    ctx.enforce(shape.count(-1) <= 1, f"Argument `shape` {shape} has more than one missing "
                                      f"dimension.")
    known = int(np.prod([d for d in shape if d != -1]))
    if -1 in shape:
        ctx.enforce(known != 0 and X.size % known == 0,
                    f"cannot infer the -1 in shape {shape} for {X.size} elements "
                    f"{tuple(X.shape)}")
        shape[shape.index(-1)] = X.size // known
    else:
        ctx.enforce(known == X.size, f"Argument `shape` {shape} does not agree with the input "
                                     f"data: {known} != {X.size} elements {tuple(X.shape)}")
    return tuple(shape)


@register_kernel("Reshape", devices=("CPU", "CUDA"))
def reshape(ctx, X, *new_shape_input):
    shape = _target_shape(ctx, X, new_shape_input)
    in_place = ctx.op_def.input[0] == ctx.op_def.output[0]
    Y = X.reshape(shape)
    return (Y if in_place else Y.copy()), np.asarray(X.shape, dtype=np.int64)
