"""Wngrad and SparseWngrad (Wu, Ward and Bottou 2018; caffe2/sgd/wngrad_op.h).

One scalar ``seq_b`` per parameter:

    param' = param + lr * grad / (seq_b + epsilon)
    seq_b' = seq_b + ||grad||^2 / (seq_b + epsilon)

The dense op optionally outputs the effective rate lr / (seq_b + epsilon) and
the update; the sparse op moves the rows ``indices`` name (all with the old
seq_b) and, as Caffe2's did, divides the squared norm by seq_b without
epsilon.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import checked_scalar_rate, checked_tables
from caffe2lite.operators._train_common import check_float32
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
_EPSILON = Arg("epsilon", "float", 1e-5, "added to seq_b in the divisions")

register_schema(OpSchema(
    "Wngrad", num_inputs=4, num_outputs=(2, 4), allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1, 1, 2),
    inputs=[("param", "parameters"), ("seq_b", "1-element history"), ("grad", "gradient"),
            ("lr", "learning rate, 1 element")],
    outputs=[("output_param", "updated parameters"), ("output_seq_b", "updated seq_b"),
             ("output_effective_lr", "(optional) lr / (seq_b + epsilon)"),
             ("output_update", "(optional) the update added to param")],
    args=[_EPSILON], doc="Dense WNGrad update.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseWngrad", num_inputs=5, num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[("param", "table; rows are updated in place"), ("seq_b", "1-element history"),
            ("indices", "int32/int64 rows to update"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("lr", "learning rate, 1 element")],
    outputs=[("output_param", "param, in place"), ("output_seq_b", "seq_b, in place")],
    args=[_EPSILON], doc="WNGrad on the rows named by indices.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _seq_b(ctx, i, seq_b):
    check_float32(ctx, i, seq_b)
    if seq_b.size != 1:
        ctx.fail(f"{ctx.input_label(i)} must hold 1 element, got shape {tuple(seq_b.shape)}")
    return seq_b.reshape(-1)[0]


@register_kernel("Wngrad", devices=("CPU", "CUDA"))
def wngrad(ctx, param, seq_b, grad, lr):
    check_float32(ctx, 0, param)
    check_float32(ctx, 2, grad)
    if grad.size != param.size:
        ctx.fail(f"{ctx.input_label(2)} has {grad.size} elements, expected {param.size}")
    b = _seq_b(ctx, 1, seq_b)
    rate = checked_scalar_rate(ctx, 3, lr, F32)
    eps = F32(ctx.args["epsilon"])
    effective = rate / (b + eps)
    g = grad.reshape(param.shape)
    update = effective * g if len(ctx.op_def.output) > 2 else rate * g / (b + eps)
    new_b = (b + (g * g).sum(dtype=F32) / (b + eps)).reshape(seq_b.shape)
    outputs = (param + update, new_b)
    if len(ctx.op_def.output) >= 3:
        outputs += (effective.reshape(seq_b.shape),)
    if len(ctx.op_def.output) == 4:
        outputs += (update.reshape(grad.shape),)
    return outputs


@register_kernel("SparseWngrad", devices=("CPU", "CUDA"))
def sparse_wngrad(ctx, param, seq_b, indices, grad, lr):
    tables = checked_tables(ctx, [(0, param)], 2, 3, indices, grad)
    b = _seq_b(ctx, 1, seq_b)
    rate = checked_scalar_rate(ctx, 4, lr, F32)
    eps = F32(ctx.args["epsilon"])
    (table,), g = tables.views, tables.grad
    if tables.idx.size == 0:
        return tables.outputs[0], seq_b
    # every row moves with the old seq_b, so repeated rows simply add up (in order)
    ctx.xp.add.at(table, tables.idx, rate * g / (b + eps))
    new_b = ctx.xp.asarray(b + (g * g).sum(dtype=F32) / b, dtype=F32).reshape(seq_b.shape)
    return tables.outputs[0], new_b
