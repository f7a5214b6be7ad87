"""Adam, SparseAdam, RowWiseSparseAdam and SmartDecaySparseAdam (caffe2/sgd/adam_op.h).

With t = iter + 1 and correction = sqrt(1 - beta2^t) / (1 - beta1^t):

    m1 = beta1 * m1 + (1 - beta1) * grad
    m2 = beta2 * m2 + (1 - beta2) * grad^2
    grad_o = correction * m1 / (sqrt(m2) + epsilon)
    param = param + lr * grad_o

(lr is negative for descent, as the optimizer builds it).  The optional 4th
output is grad_o.  The sparse ops update the rows ``indices`` name in place,
in index order (a repeated row twice).  RowWiseSparseAdam keeps one second
moment per row, moved by the mean of the row's squared gradient.
SparseAdam with ``enableRAdam`` rectifies the step (Liu et al. 2019): with
rho_inf = 2 / (1 - beta2) - 1 and rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t),
the step is r_t * correction * m1 / (sqrt(m2) + epsilon) when rho_t >= 5,
r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
else m1 / (1 - beta1^t).  SmartDecaySparseAdam catches a row up on the
k = t - last_seen[row] iterations it was not seen: m2 decays by beta2^k, m1
by beta1 each missed step (adding the gradient at the last one) with the
parameter moved by every step's m1 / (sqrt(m2) + epsilon), and last_seen
becomes t; no bias correction.  Arithmetic is float32 per element, the
scalar corrections in double, as in Caffe2.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import check_same_size, checked_scalar_rate, checked_tables
from caffe2lite.operators._train_common import (check_float32, check_index_vector, inputs_on_host,
                                                iteration, occurrence_rounds, owned)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
_ARGS = [Arg("beta1", "float", 0.9, "first moment decay"),
         Arg("beta2", "float", 0.999, "second moment decay"),
         Arg("epsilon", "float", 1e-5, "added to sqrt(second moment)")]
_OUT = [("output_param", "updated parameters"), ("output_moment_1", "updated first moment"),
        ("output_moment_2", "updated second moment"),
        ("output_grad", "(optional) the effective gradient grad_o")]
_SPARSE_IN = [("param", "table; rows are updated in place"),
              ("moment_1", "first moment, same size as param"),
              ("moment_2", "second moment"), ("indices", "int32/int64 rows to update"),
              ("grad", "gradient rows: indices.shape + param.shape[1:]"),
              ("lr", "learning rate, 1 element"), ("iter", "int64 iteration (on the CPU)")]

register_schema(OpSchema(
    "Adam", num_inputs=6, num_outputs=(3, 4), allow_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2, 3), infer_device=inputs_on_host(5),
    inputs=[("param", "parameters"), ("moment_1", "first moment"), ("moment_2", "second moment"),
            ("grad", "gradient"), ("lr", "learning rate, 1 element"),
            ("iter", "int64 iteration (on the CPU)")],
    outputs=_OUT, args=_ARGS,
    doc="Dense Adam: m1, m2 moving averages; param += lr * sqrt(1 - beta2^t) / (1 - beta1^t) "
        "* m1 / (sqrt(m2) + epsilon), t = iter + 1.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseAdam", num_inputs=7, num_outputs=(3, 4), enforce_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2, 4), infer_device=inputs_on_host(6),
    inputs=_SPARSE_IN, outputs=_OUT,
    args=_ARGS + [Arg("enableRAdam", "bool", False, "rectified Adam (RAdam) steps")],
    doc="Adam on the rows named by indices, in index order; param and moments in place.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "RowWiseSparseAdam", num_inputs=7, num_outputs=(3, 4),
    enforce_inplace={(0, 0), (1, 1), (2, 2)}, infer_shapes=same_as(0, 1, 2, 4),
    infer_device=inputs_on_host(6),
    inputs=_SPARSE_IN[:2] + [("moment_2", "1-D: one second moment per row of param")]
    + _SPARSE_IN[3:], outputs=_OUT, args=_ARGS,
    doc="SparseAdam with one second moment per row: m2[r] moves by mean(grad_row^2).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SmartDecaySparseAdam", num_inputs=8, num_outputs=4,
    enforce_inplace={(0, 0), (1, 1), (2, 2), (3, 3)}, infer_shapes=same_as(0, 1, 2, 3),
    infer_device=inputs_on_host(7),
    inputs=_SPARSE_IN[:3] + [("last_seen", "int64: the iteration t each row was last "
                                           "updated at")] + _SPARSE_IN[3:],
    outputs=_OUT[:3] + [("output_last_seen", "last_seen, updated in place")], args=_ARGS,
    doc="Sparse Adam that catches each row up on the iterations it was not seen "
        "(no bias correction).",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _corrections(ctx, it):
    """(t, beta1, beta2, epsilon, correction) with Caffe2's double-precision correction."""
    t = it + 1
    beta1, beta2 = float(F32(ctx.args["beta1"])), float(F32(ctx.args["beta2"]))
    correction = np.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    return t, F32(beta1), F32(beta2), F32(ctx.args["epsilon"]), F32(correction)


def _moments(g, m1, m2, beta1, beta2):
    return m1 * beta1 + g * (F32(1) - beta1), m2 * beta2 + g * g * (F32(1) - beta2)


@register_kernel("Adam", devices=("CPU", "CUDA"))
def adam(ctx, param, m1, m2, grad, lr, it):
    for i, value in ((0, param), (1, m1), (2, m2), (3, grad)):
        check_float32(ctx, i, value)
    check_same_size(ctx, 3, grad, [(0, param), (1, m1), (2, m2)])
    rate = checked_scalar_rate(ctx, 4, lr, F32)
    _, beta1, beta2, eps, correction = _corrections(ctx, iteration(ctx, 5, it))
    new_m1, new_m2 = _moments(grad.reshape(m1.shape), m1, m2.reshape(m1.shape), beta1, beta2)
    step = correction * new_m1 / (ctx.xp.sqrt(new_m2) + eps)
    outputs = (param + (rate * step).reshape(param.shape), new_m1,
               new_m2.reshape(m2.shape))
    return outputs + ((step.reshape(grad.shape),) if len(ctx.op_def.output) == 4 else ())


def _radam_terms(ctx, it):
    """(beta1 correction, rho_t, r_correction) of SparseAdam's RAdam mode."""
    t = it + 1
    beta1, beta2 = float(F32(ctx.args["beta1"])), float(F32(ctx.args["beta2"]))
    rho_inf = float(F32(F32(2) / (F32(1) - F32(beta2)) - F32(1)))
    rho_t = rho_inf - 2.0 * t * beta2 ** t / (1.0 - beta2 ** t)
    r_correction = float(F32(np.sqrt(rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0)))))
    return 1.0 / (1.0 - beta1 ** t), rho_t, r_correction


def _sparse_adam(ctx, param, m1, m2, indices, grad, lr, it, row_wise):
    tables = checked_tables(ctx, [(0, param), (1, m1), (2, m2)], 3, 4, indices, grad,
                            per_row=(2,) if row_wise else ())
    rate = checked_scalar_rate(ctx, 5, lr, F32)
    it = iteration(ctx, 6, it)
    _, beta1, beta2, eps, correction = _corrections(ctx, it)
    scale = correction
    radam = not row_wise and ctx.args["enableRAdam"]
    if radam:
        beta1_correction, rho_t, r_correction = _radam_terms(ctx, it)
        if rho_t >= 5.0:
            r_t = F32(np.sqrt((rho_t - 4.0) * (rho_t - 2.0) / rho_t) * r_correction)
            scale = r_t * correction
    xp, (table, mom1, mom2), g = ctx.xp, tables.views, tables.grad
    grad_out = xp.empty_like(g) if len(ctx.op_def.output) == 4 else None
    for pos in occurrence_rounds(xp, tables.idx):
        r, gp = tables.idx[pos], g[pos]
        new_m1 = mom1[r] * beta1 + gp * (F32(1) - beta1)
        if row_wise:
            new_m2 = mom2[r] * beta2 + ((gp * gp).sum(axis=1) / F32(tables.block)) \
                * (F32(1) - beta2)
            denom = (xp.sqrt(new_m2) + eps)[:, None]
        else:
            new_m2 = mom2[r] * beta2 + gp * gp * (F32(1) - beta2)
            denom = xp.sqrt(new_m2) + eps
        if radam and rho_t < 5.0:
            step = F32(beta1_correction) * new_m1
        else:
            step = scale * new_m1 / denom
        mom1[r], mom2[r] = new_m1, new_m2
        table[r] = table[r] + rate * step
        if grad_out is not None:
            grad_out[pos] = step
    outputs = tuple(tables.outputs)
    return outputs + ((grad_out.reshape(grad.shape),) if grad_out is not None else ())


@register_kernel("SparseAdam", devices=("CPU", "CUDA"))
def sparse_adam(ctx, param, m1, m2, indices, grad, lr, it):
    return _sparse_adam(ctx, param, m1, m2, indices, grad, lr, it, row_wise=False)


@register_kernel("RowWiseSparseAdam", devices=("CPU", "CUDA"))
def row_wise_sparse_adam(ctx, param, m1, m2, indices, grad, lr, it):
    return _sparse_adam(ctx, param, m1, m2, indices, grad, lr, it, row_wise=True)


@register_kernel("SmartDecaySparseAdam", devices=("CPU", "CUDA"))
def smart_decay_sparse_adam(ctx, param, m1, m2, last_seen, indices, grad, lr, it):
    tables = checked_tables(ctx, [(0, param), (1, m1), (2, m2)], 4, 5, indices, grad)
    rows = tables.views[0].shape[0]
    if last_seen.dtype != np.int64 or last_seen.size != rows:
        ctx.fail(f"{ctx.input_label(3)} must be int64 with one entry per row of "
                 f"{ctx.input_label(0)} ({rows}), got {last_seen.dtype} of shape "
                 f"{tuple(last_seen.shape)}")
    check_index_vector(ctx, 4, indices, rows, 0)
    rate = checked_scalar_rate(ctx, 6, lr, F32)
    t, beta1, beta2, eps, _ = _corrections(ctx, iteration(ctx, 7, it))
    xp, (table, mom1, mom2), g = ctx.xp, tables.views, tables.grad
    if tables.idx.size and bool((last_seen.reshape(rows)[tables.idx] > t).any()):
        ctx.fail(f"{ctx.input_label(3)} says a row was seen at an iteration after "
                 f"t = iter + 1 = {t}")
    seen = owned(last_seen).reshape(rows)
    for pos in occurrence_rounds(xp, tables.idx):
        r, gp = tables.idx[pos], g[pos]
        k = t - seen[r]
        missed = k[:, None].astype(F32)
        new_m2 = beta2 ** missed * mom2[r] + (F32(1) - beta2) * gp * gp
        decay = beta1 ** missed
        # m1 after each of the k steps: beta1^j * m1 (j < k), then beta1^k m1 + (1-beta1) g;
        # the parameter moves by the sum of them over sqrt(m2) + epsilon.
        sum_decay = xp.where(missed > 0, beta1 * (F32(1) - decay) / (F32(1) - beta1), F32(0)) \
            if beta1 != 1 else missed
        new_m1 = xp.where(missed > 0, decay * mom1[r] + (F32(1) - beta1) * gp, mom1[r])
        moved = sum_decay * mom1[r] + xp.where(missed > 0, (F32(1) - beta1) * gp, F32(0))
        table[r] = table[r] + rate * moved / (xp.sqrt(new_m2) + eps)
        mom1[r], mom2[r] = new_m1, new_m2
        seen[r] = t
    return tuple(tables.outputs) + (seen.reshape(last_seen.shape),)
