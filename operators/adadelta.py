"""Adadelta and SparseAdadelta (Zeiler 2012; caffe2/sgd/adadelta_op.h).

    moment' = decay * moment + (1 - decay) * grad^2
    step = sqrt(moment_delta + epsilon) / sqrt(moment' + epsilon) * grad
    param' = param + lr * step
    moment_delta' = decay * moment_delta + (1 - decay) * step^2

(0 < decay < 1, epsilon >= 0).  The sparse op updates the rows ``indices``
name in place, in index order.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import check_same_size, checked_scalar_rate, checked_tables
from caffe2lite.operators._train_common import check_float32, occurrence_rounds
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
_ARGS = [Arg("epsilon", "float", 1e-5, "added under both square roots"),
         Arg("decay", "float", 0.95, "decay of both moving averages, in (0, 1)")]
_OUT = [("output_param", "updated parameters"), ("output_moment", "updated moment"),
        ("output_moment_delta", "updated moment_delta")]

register_schema(OpSchema(
    "Adadelta", num_inputs=5, num_outputs=3, allow_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2),
    inputs=[("param", "parameters"), ("moment", "average of squared gradients"),
            ("moment_delta", "average of squared updates"), ("grad", "gradient"),
            ("lr", "learning rate, 1 element")],
    outputs=_OUT, args=_ARGS, doc="Dense AdaDelta update.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseAdadelta", num_inputs=6, num_outputs=3, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1, 2),
    inputs=[("param", "table; rows are updated in place"),
            ("moment", "average of squared gradients"),
            ("moment_delta", "average of squared updates"),
            ("indices", "int32/int64 rows to update"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("lr", "learning rate, 1 element")],
    outputs=_OUT, args=_ARGS, doc="AdaDelta on the rows named by indices, in index order.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _constants(ctx):
    eps, decay = F32(ctx.args["epsilon"]), F32(ctx.args["decay"])
    ctx.enforce(eps >= 0, f"argument 'epsilon' must be >= 0, got {eps}")
    ctx.enforce(0 < decay < 1, f"argument 'decay' must be in (0, 1), got {decay}")
    return eps, decay


def _step(xp, w, g, h, d, eps, decay, rate):
    new_h = decay * h + (F32(1) - decay) * g * g
    step = (xp.sqrt(d + eps) / xp.sqrt(new_h + eps)) * g
    return w + rate * step, new_h, decay * d + (F32(1) - decay) * step * step


@register_kernel("Adadelta", devices=("CPU", "CUDA"))
def adadelta(ctx, param, moment, delta, grad, lr):
    for i, value in ((0, param), (1, moment), (2, delta), (3, grad)):
        check_float32(ctx, i, value)
    check_same_size(ctx, 3, grad, [(0, param), (1, moment), (2, delta)])
    eps, decay = _constants(ctx)
    rate = checked_scalar_rate(ctx, 4, lr, F32)
    w, h, d = _step(ctx.xp, param.reshape(-1), grad.reshape(-1), moment.reshape(-1),
                    delta.reshape(-1), eps, decay, rate)
    return w.reshape(param.shape), h.reshape(moment.shape), d.reshape(delta.shape)


@register_kernel("SparseAdadelta", devices=("CPU", "CUDA"))
def sparse_adadelta(ctx, param, moment, delta, indices, grad, lr):
    tables = checked_tables(ctx, [(0, param), (1, moment), (2, delta)], 3, 4, indices, grad)
    eps, decay = _constants(ctx)
    rate = checked_scalar_rate(ctx, 5, lr, F32)
    table, hist, deltas = tables.views
    for pos in occurrence_rounds(ctx.xp, tables.idx):
        r = tables.idx[pos]
        table[r], hist[r], deltas[r] = _step(ctx.xp, table[r], tables.grad[pos], hist[r],
                                             deltas[r], eps, decay, rate)
    return tuple(tables.outputs)
