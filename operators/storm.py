"""Storm and SparseStorm (Cutkosky and Orabona 2019; caffe2/sgd/storm_op.h).

    grad_sq_sum' = grad_sq_sum + ||grad||^2
    effective_lr = lr * (beta + grad_sq_sum')^(-1/3)
    alpha = momentum * effective_lr^2
    moment' = grad + (1 - alpha) * (moment - grad)
    param' = param + effective_lr * moment'

As in Caffe2, the moment uses the current gradient where the paper
re-evaluates the previous one.  The sparse op updates the rows ``indices``
name (in place, in index order), with the squared norm of all its gradient
rows.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import check_same_size, checked_scalar_rate, checked_tables
from caffe2lite.operators._train_common import check_float32, occurrence_rounds
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
_ARGS = [Arg("momentum", "float", 10.0, "momentum hyperparameter (c in the paper)"),
         Arg("beta", "float", 0.1, "denominator offset of the adaptive rate (w)")]
_OUT = [("output_param", "updated parameters"), ("output_moment", "updated moment"),
        ("output_grad_sq_sum", "updated sum of squared gradients")]

register_schema(OpSchema(
    "Storm", num_inputs=5, num_outputs=3, allow_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2),
    inputs=[("param", "parameters"), ("moment", "moment history"),
            ("grad_sq_sum", "1-element sum of squared gradients"), ("grad", "gradient"),
            ("lr", "learning rate (k in the paper), 1 element")],
    outputs=_OUT, args=_ARGS, doc="Dense STORM update.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseStorm", num_inputs=6, num_outputs=3, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1, 2),
    inputs=[("param", "table; rows are updated in place"), ("moment", "moment history"),
            ("grad_sq_sum", "1-element sum of squared gradients"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("indices", "int32/int64 rows to update"),
            ("lr", "learning rate, 1 element")],
    outputs=_OUT, args=_ARGS, doc="STORM on the rows named by indices, in index order.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _rates(ctx, sq_sum_i, grad_sq_sum, grad, lr_i, lr):
    """(new grad_sq_sum, effective lr, alpha), as Caffe2 computed them."""
    check_float32(ctx, sq_sum_i, grad_sq_sum)
    if grad_sq_sum.size != 1:
        ctx.fail(f"{ctx.input_label(sq_sum_i)} must hold 1 element, got shape "
                 f"{tuple(grad_sq_sum.shape)}")
    rate = checked_scalar_rate(ctx, lr_i, lr, F32)
    new_sum = grad_sq_sum.reshape(-1)[0] + (grad * grad).sum(dtype=F32)
    nlr = F32(float(rate) * (float(F32(ctx.args["beta"])) + float(new_sum)) ** (-1.0 / 3.0))
    alpha = F32(ctx.args["momentum"]) * nlr * nlr
    return ctx.xp.asarray(new_sum, dtype=F32).reshape(grad_sq_sum.shape), nlr, alpha


def _moment(g, m, alpha):
    return g + (F32(1) - alpha) * (m - g)


@register_kernel("Storm", devices=("CPU", "CUDA"))
def storm(ctx, param, moment, grad_sq_sum, grad, lr):
    for i, value in ((0, param), (1, moment), (3, grad)):
        check_float32(ctx, i, value)
    check_same_size(ctx, 3, grad, [(0, param), (1, moment)])
    new_sum, nlr, alpha = _rates(ctx, 2, grad_sq_sum, grad, 4, lr)
    new_m = _moment(grad.reshape(moment.shape), moment, alpha)
    return param + nlr * new_m.reshape(param.shape), new_m, new_sum


@register_kernel("SparseStorm", devices=("CPU", "CUDA"))
def sparse_storm(ctx, param, moment, grad_sq_sum, grad, indices, lr):
    tables = checked_tables(ctx, [(0, param), (1, moment)], 4, 3, indices, grad)
    if tables.idx.size == 0:  # Caffe2 returned before touching grad_sq_sum
        check_float32(ctx, 2, grad_sq_sum)
        return tables.outputs[0], tables.outputs[1], grad_sq_sum
    new_sum, nlr, alpha = _rates(ctx, 2, grad_sq_sum, grad, 5, lr)
    table, moments = tables.views
    for pos in occurrence_rounds(ctx.xp, tables.idx):
        r = tables.idx[pos]
        new_m = _moment(tables.grad[pos], moments[r], alpha)
        moments[r] = new_m
        table[r] = table[r] + nlr * new_m
    return tables.outputs[0], tables.outputs[1], new_sum
