"""FlexibleTopK and FlexibleTopKGradient: a different k for every row.

X has shape (a_1, ..., a_n, r) and K (int64) one k per row of X flattened to
(a_1 * ... * a_n, r).  Outputs: the values and the column indices (int64) of each row's
k largest, rows one after another (length sum(K)); equal values keep the lower index
first.  One stable sort of all rows at once."""

import numpy as np

from caffe2lite.runtime import (OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)


def flexible_top_k_gradient_maker(op_def, g_output):
    grad = grad_name(op_def.input[0])
    op = make_operator("FlexibleTopKGradient",
                       [op_def.input[0], op_def.input[1], dense_output_grad(op_def, g_output),
                        op_def.output[1]], [grad])
    return [op], [grad, None]


register_schema(OpSchema(
    "FlexibleTopK", num_inputs=2, num_outputs=2,
    inputs=[("X", "(a_1, ..., a_n, r) float32"), ("K", "int64, one k (1..r) per row")],
    outputs=[("Flatten values", "(sum(K),)"), ("Flatten indices", "(sum(K),) int64")],
    doc="The K[i] largest values of each row i of X, with their indices, concatenated.",
    gradient=flexible_top_k_gradient_maker))

register_schema(OpSchema(
    "FlexibleTopKGradient", num_inputs=4, num_outputs=1,
    inputs=[("X", ""), ("K", ""), ("dValues", ""), ("Indices", "")],
    outputs=[("dX", "dValues scattered to their positions, 0 elsewhere")],
    doc="Gradient of FlexibleTopK."))


def _rows(ctx, x, k):
    if getattr(x, "ndim", 0) < 1 or x.dtype != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be a float32 tensor of at least 1 dimension")
    if getattr(k, "dtype", None) != np.int64:
        ctx.fail(f"{ctx.input_label(1)} must be int64")
    width = x.shape[-1]
    rows = x.size // width if width else int(np.prod(x.shape[:-1]))
    if k.size != rows:
        ctx.fail(f"first n-1 dims of input data and K does not match: {ctx.input_label(0)} "
                 f"has {rows} rows, {ctx.input_label(1)} {k.size} values")
    k = k.reshape(-1)
    if np.any(k <= 0) or np.any(k > width):
        ctx.fail(f"{ctx.input_label(1)} values should be in 1..{width} (the last dimension)")
    return rows, width, k


@register_kernel("FlexibleTopK")
def flexible_top_k(ctx, x, k):
    rows, width, k = _rows(ctx, x, k)
    flat = x.reshape(rows, width)
    order = np.argsort(-flat, axis=1, kind="stable")
    chosen = np.arange(width) < k[:, None]
    return np.take_along_axis(flat, order, axis=1)[chosen], order[chosen].astype(np.int64)


@register_kernel("FlexibleTopKGradient")
def flexible_top_k_gradient(ctx, x, k, d_values, indices):
    rows, width, k = _rows(ctx, x, k)
    if d_values.shape != (int(k.sum()),) or indices.shape != d_values.shape:
        ctx.fail(f"{ctx.input_label(2)} and {ctx.input_label(3)} must hold sum(K) = "
                 f"{int(k.sum())} entries")
    if indices.size and (indices.min() < 0 or indices.max() >= width):
        ctx.fail(f"{ctx.input_label(3)} must be columns 0..{width - 1}")
    dx = np.zeros((rows, width), x.dtype)
    dx[np.repeat(np.arange(rows), k), indices] = d_values
    return (dx.reshape(x.shape),)
