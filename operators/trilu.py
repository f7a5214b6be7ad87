"""Trilu: the upper or lower triangle of the last two dims (ONNX's Trilu; Caffe2 had none).

Y = numpy.triu(X, k) with ``upper`` (default), numpy.tril(X, k) otherwise; k
is the argument, or the optional 0-d int64 input ONNX passes it in.
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def trilu_gradient_maker(op_def, g_output):
    """The mask is linear: dX = Trilu(dY) with the same triangle."""
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None] * len(op_def.input)
    dx = grad_name(op_def.input[0])
    grad = make_operator("Trilu", [dy] + list(op_def.input[1:]), [dx], arg=op_def.arg)
    return [grad], [dx] + [None] * (len(op_def.input) - 1)


register_schema(OpSchema(
    "Trilu", num_inputs=(1, 2), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("X", "tensor of rank >= 2"),
            ("k", "optional: 0-d int tensor, the diagonal offset (instead of the argument)")],
    outputs=[("Y", "X with the elements outside the triangle zeroed")],
    args=[Arg("upper", "int", 1, "nonzero: keep the upper triangle (numpy.triu), else the "
                                 "lower (numpy.tril)"),
          Arg("k", "int", 0, "diagonal offset: > 0 above the main diagonal, < 0 below")],
    doc="Y = numpy.triu(X, k) (upper) or numpy.tril(X, k) over the last two dims.",
    gradient=trilu_gradient_maker))


@register_kernel("Trilu", devices=("CPU", "CUDA"))
def trilu(ctx, x, k=None):
    if getattr(x, "ndim", 0) < 2:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 2, got shape "
                 f"{tuple(getattr(x, 'shape', ()))}")
    offset = ctx.args["k"]
    if k is not None:
        if getattr(k, "size", 0) != 1 or k.dtype.kind not in "iu":
            ctx.fail(f"{ctx.input_label(1)} must be one integer, got "
                     f"{getattr(k, 'dtype', type(k).__name__)} of shape "
                     f"{tuple(getattr(k, 'shape', ()))}")
        offset = int(k.reshape(-1)[0])
    rows, cols = x.shape[-2:]
    offset = int(np.clip(offset, -rows - 1, cols + 1))  # beyond the matrix: all or nothing
    xp = ctx.xp
    keep = (xp.triu if ctx.args["upper"] else xp.tril)(xp.ones((rows, cols), bool), offset)
    return (xp.where(keep, x, xp.zeros((), x.dtype)),)
