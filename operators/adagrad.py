"""Adagrad, SparseAdagrad and RowWiseSparseAdagrad: Caffe2's AdaGrad updates.

Caffe2 scripts pass a negative learning rate (LearningRate with a negative
base_lr), so the update is *added*: ``param + lr * g / (sqrt(moment) + eps)``.
Arithmetic follows caffe2/sgd/adagrad_op.h term by term (``fma(weight_decay,
param, grad)`` becomes ``grad + weight_decay * param``; with the default
weight_decay of 0 the two are identical).

The sparse variants update the rows named by ``indices`` in place.  Caffe2
walked the indices in order, so a duplicated index is updated twice, the second
time from the moment and parameter the first update wrote.  That is reproduced
exactly (bit for bit on CPU): one vectorised round per repetition, and for a
row repeated more than sqrt(len(indices)) times one cumulative sum over its
occurrences (the moment and, without weight decay, the parameter are running
sums), so Zipf-like batches where one id dominates stay fast.  On NumPy,
SparseAdagrad first sets aside the rows named only once -- usually nearly all
-- and updates them in one cache-chunked pass (_update_distinct_rows); the
rounds then cover only the repeated rows.
"""

import numpy as np

from caffe2lite.registry import register_kernel, register_schema, set_per_op_engine_pref
from caffe2lite.schema import SHOULD_NOT_DO_GRADIENT, Arg, OpSchema
from caffe2lite.shape_inference import same_as
from operators import _native_adagrad
from operators._parallel import for_each_range
from operators._train_common import (check_float, check_index_vector, check_rows, check_scalar,
                                     host_int, occurrence_plan, owned, running_sum, split_repeated)

_EPSILON = Arg("epsilon", "float", 1e-5, "added to sqrt(moment) in the denominator")
_WEIGHT_DECAY = Arg("weight_decay", "float", 0.0, "L2 penalty: grad + weight_decay * param")

register_schema(OpSchema(
    "Adagrad", num_inputs=4, num_outputs=(2, 4), allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1, 0, 0),
    inputs=[("param", "parameters to update"), ("moment", "squared-gradient history"),
            ("grad", "gradient, same size as param"), ("lr", "learning rate, 1 element")],
    outputs=[("output_param", "updated parameters"), ("output_moment", "updated moment"),
             ("output_effective_lr", "(optional) lr / (sqrt(new moment) + epsilon)"),
             ("output_update", "(optional) the update added to param")],
    args=[_EPSILON, Arg("decay", "float", 1.0, "moment = decay * moment + grad^2"),
          _WEIGHT_DECAY],
    doc="Dense AdaGrad: g = grad + weight_decay*param; moment = decay*moment + g*g; "
        "param = param + lr*g / (sqrt(moment) + epsilon).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseAdagrad", num_inputs=5, num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[("param", "table; rows are updated"), ("moment", "history, same size as param"),
            ("indices", "int32/int64 rows of param to update"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("lr", "learning rate, 1 element")],
    outputs=[("output_param", "param, updated in place"),
             ("output_moment_1", "moment, updated in place")],
    args=[_EPSILON, _WEIGHT_DECAY,
          Arg("decay", "float", 1.0, "must be 1: Caffe2 rejected decay for SparseAdagrad")],
    doc="AdaGrad on the rows named by indices, applied in index order (a duplicated row is "
        "updated twice). Both outputs must be the input blobs.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "RowWiseSparseAdagrad", num_inputs=(5, 6), num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[("param", "table; rows are updated"),
            ("moment", "1-D history with one value per row of param"),
            ("indices", "int32/int64 rows of param to update"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("lr", "learning rate, 1 element"),
            ("counter", "(optional) only read when counter_halflife != -1")],
    outputs=[("output_param", "param, updated in place"),
             ("output_moment_1", "moment, updated in place")],
    args=[_EPSILON, _WEIGHT_DECAY,
          Arg("counter_halflife", "int", -1, "frequency-adjusted weight decay; only -1 "
                                             "(off) is supported")],
    doc="Row-wise AdaGrad: moment[r] += mean(g*g over the row); "
        "param[r] += g * lr / (sqrt(moment[r]) + epsilon), in index order.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _check_dense(ctx, param, moment, grad, lr):
    check_float(ctx, 0, param)
    check_float(ctx, 1, moment, 0, param)
    check_float(ctx, 2, grad, 0, param)
    if not (grad.size == moment.size == param.size):
        ctx.fail(f"{ctx.input_label(2)} has {grad.size} elements, {ctx.input_label(1)} "
                 f"{moment.size} and {ctx.input_label(0)} {param.size}: all three must be equal")
    return check_scalar(ctx, 3, lr, "learning rate").astype(param.dtype)


@register_kernel("Adagrad", devices=("CPU", "CUDA"))
@register_kernel("Adagrad", devices=("CPU",), engine="NUMPY")
def adagrad(ctx, param, moment, grad, lr):
    rate = _check_dense(ctx, param, moment, grad, lr)
    eps, decay, wd = ctx.args["epsilon"], ctx.args["decay"], ctx.args["weight_decay"]
    g = grad.reshape(param.shape)
    if wd:
        g = g + param.dtype.type(wd) * param
    new_moment = moment.dtype.type(decay) * moment.reshape(param.shape) + g * g
    denom = ctx.xp.sqrt(new_moment) + param.dtype.type(eps)
    n_out = len(ctx.op_def.output)
    if n_out == 2:
        return param + rate * g / denom, new_moment.reshape(moment.shape)
    effective_lr = rate / denom
    update = effective_lr * g
    outputs = (param + update, new_moment.reshape(moment.shape), effective_lr.reshape(grad.shape))
    return outputs + ((update.reshape(grad.shape),) if n_out == 4 else ())


def _check_sparse(ctx, param, moment, indices, grad, lr, check_range=True):
    """Shared checks of the sparse variants; returns (rows, block, flat indices, rate, grad 2-D).

    ``check_range=False`` leaves the index range to the caller (the NATIVE engine
    checks it in C, before it writes).
    """
    check_float(ctx, 0, param)
    check_float(ctx, 1, moment, 0, param)
    check_float(ctx, 3, grad, 0, param)
    rows, block = check_rows(ctx, 0, param)
    rate = check_scalar(ctx, 4, lr, "learning rate").astype(param.dtype)
    idx = check_index_vector(ctx, 2, indices, rows if check_range else None, 0)
    if not (grad.shape[indices.ndim:] == param.shape[1:] and grad.size == idx.size * block):
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(grad.shape)}, expected indices.shape + "
                 f"param.shape[1:] = {tuple(indices.shape) + tuple(param.shape[1:])}")
    return rows, block, idx, rate, grad.reshape(idx.size, block)


def checked_sparse_adagrad(ctx, param, moment, indices, grad, lr, check_range=True):
    """Every check of SparseAdagrad / RowWiseSparseAdagrad, before anything is written.

    Returns (param, moment, table, history, flat indices, grad rows, rate, eps, wd):
    param and moment as arrays the kernel may update in place, table/history
    their 2-D (1-D for a row-wise moment) views.
    """
    rows, block, idx, rate, g2 = _check_sparse(ctx, param, moment, indices, grad, lr,
                                               check_range)
    if ctx.op_def.type.startswith("RowWise"):
        if moment.size != rows:
            ctx.fail(f"{ctx.input_label(1)} has {moment.size} elements, expected "
                     f"one per row of {ctx.input_label(0)} ({rows})")
        if ctx.args["counter_halflife"] != -1:
            ctx.fail(f"argument 'counter_halflife' = {ctx.args['counter_halflife']}: frequency-"
                     f"adjusted weight decay is not supported by caffe2lite (use -1)")
    else:
        if moment.size != param.size:
            ctx.fail(f"{ctx.input_label(1)} has {moment.size} elements, "
                     f"expected {param.size} like {ctx.input_label(0)}")
        if ctx.args["decay"] != 1.0:
            ctx.fail(f"argument 'decay' must be 1.0 for SparseAdagrad "
                     f"(Caffe2 does not support decay here), got "
                     f"{ctx.args['decay']}")
    param, moment = owned(param), owned(moment)
    history = moment.reshape(rows) if ctx.op_def.type.startswith("RowWise") \
        else moment.reshape(rows, block)
    eps, wd = param.dtype.type(ctx.args["epsilon"]), param.dtype.type(ctx.args["weight_decay"])
    return param, moment, param.reshape(rows, block), history, idx, g2, rate, eps, wd


# Rows per step of _update_distinct_rows: its five row buffers of this many bytes each
# stay in the L2 cache from the gather to the scatter.
_STEP_BYTES = 1 << 17


def _update_distinct_rows(table, history, idx, g2, pos, rate, eps, wd):
    """NumPy: SparseAdagrad on rows idx[pos] (no row twice; pos None = every position).

    The same float operations in the same order as the CUDA path's expressions
    (g = grad + wd*param; h = moment + g*g; param + rate*g / (sqrt(h) + eps)), so
    the bits are those of Caffe2's loop; but done a few hundred rows at a time in
    reused buffers with in-place ufuncs: each parameter and moment row is
    gathered once, updated in cache and written back once, and no temporary
    the size of the gradient is made.  Steps run on operators/_parallel.py's
    threads; as no row is named twice, they touch disjoint rows and the result
    is the same whatever the thread count.  Called only after every check.
    """
    count = idx.size if pos is None else pos.size
    width = table.shape[1]
    step = max(1, min(count, _STEP_BYTES // max(1, table.itemsize * width)))

    def run(first, stop):
        buffers = np.empty((5, step, width), table.dtype)
        for start in range(first * step, min(count, stop * step), step):
            end = min(count, start + step)
            p, h, g, t, u = buffers[:, :end - start]
            if pos is None:
                r, grad = idx[start:end], g2[start:end]
            else:
                where = pos[start:end]
                r, grad = idx[where], np.take(g2, where, axis=0, out=g, mode="clip")
            np.take(table, r, axis=0, out=p, mode="clip")
            if wd:
                grad = np.add(grad, np.multiply(p, wd, out=t), out=g)
            np.take(history, r, axis=0, out=h, mode="clip")
            np.add(h, np.multiply(grad, grad, out=t), out=h)
            np.add(np.sqrt(h, out=t), eps, out=t)
            np.divide(np.multiply(grad, rate, out=u), t, out=u)
            np.add(p, u, out=p)
            history[r] = h
            table[r] = p

    for_each_range(run, -(-count // step))  # no row twice: pieces are independent


@register_kernel("SparseAdagrad", devices=("CPU", "CUDA"))
@register_kernel("SparseAdagrad", devices=("CPU",), engine="NUMPY")
def sparse_adagrad(ctx, param, moment, indices, grad, lr):
    param, moment, *update = checked_sparse_adagrad(ctx, param, moment, indices, grad, lr)
    sparse_adagrad_update(ctx.xp, *update)
    return param, moment


def sparse_adagrad_update(xp, table, history, idx, g2, rate, eps, wd):
    """SparseAdagrad on checked arrays, in place, in Caffe2's per-occurrence order."""
    rows = table.shape[0]
    if xp is np and idx.size:
        # Rows named once are independent of each other and of the order: one fused pass.
        once, repeated = split_repeated(xp, idx, rows)
        _update_distinct_rows(table, history, idx, g2, once, rate, eps, wd)
        if not repeated.size:
            return
        idx, g2 = idx[repeated], g2[repeated]
    # With weight decay the gradient reads the parameter, so every repetition
    # needs its own round; without it the moment and the parameter are running
    # sums, and a much-repeated row is done with one cumulative sum.
    rounds, heavy = occurrence_plan(xp, idx, heavy_rows=not wd)
    for pos in rounds:
        if xp is np:
            _update_distinct_rows(table, history, idx, g2, pos, rate, eps, wd)
            continue
        r = idx[pos]
        g = g2[pos] + wd * table[r] if wd else g2[pos]
        h = history[r] + g * g
        history[r] = h
        table[r] = table[r] + rate * g / (xp.sqrt(h) + eps)
    for pos in heavy:
        r, g = host_int(idx[pos[0]]), g2[pos]
        h = running_sum(xp, history[r:r + 1], g * g)[1:]
        table[r] = running_sum(xp, table[r:r + 1], rate * g / (xp.sqrt(h) + eps))[-1]
        history[r] = h[-1]


@register_kernel("RowWiseSparseAdagrad", devices=("CPU", "CUDA"))
@register_kernel("RowWiseSparseAdagrad", devices=("CPU",), engine="NUMPY")
def row_wise_sparse_adagrad(ctx, param, moment, indices, grad, lr, counter=None):
    param, moment, *update = checked_sparse_adagrad(ctx, param, moment, indices, grad, lr)
    row_wise_sparse_adagrad_update(ctx.xp, *update)
    return param, moment


def row_wise_sparse_adagrad_update(xp, table, history, idx, g2, rate, eps, wd):
    """RowWiseSparseAdagrad on checked arrays, in place, in Caffe2's per-occurrence order."""
    block = table.shape[1]

    def row_terms(g):
        """(moment increment, parameter step) per occurrence, as Caffe2 computed them."""
        if block == 1:  # Caffe2's scalar path: lr * g / (sqrt(h) + eps)
            return g[:, 0] * g[:, 0], lambda h: rate * g / (xp.sqrt(h) + eps)[:, None]
        return ((g * g).sum(axis=1) / table.dtype.type(block),
                lambda h: g * (rate / (xp.sqrt(h) + eps))[:, None])

    rounds, heavy = occurrence_plan(xp, idx, heavy_rows=not wd)
    for pos in rounds:
        r = idx[pos]
        increment, step = row_terms(g2[pos] + wd * table[r] if wd else g2[pos])
        h = history[r] + increment
        history[r] = h
        table[r] = table[r] + step(h)
    for pos in heavy:
        r = host_int(idx[pos[0]])
        increment, step = row_terms(g2[pos])
        h = running_sum(xp, history[r:r + 1], increment)[1:]
        table[r] = running_sum(xp, table[r:r + 1], step(h))[-1]
        history[r] = h[-1]


# -- NATIVE engine: caffe2lite/_native/sparse_adagrad.c, when it was built ---------
def native_update(ctx, param, moment, indices, grad, lr, counter=None, normalize=None):
    """Checks, then the C pass (per occurrence, in order); NumPy where C cannot serve.

    The C code checks the index range before it writes; on a bad index the
    Python check runs to say which.  Returns False when the NumPy update must
    run instead (float64 tables, arrays C cannot address); nothing is written then.
    """
    param, moment, table, history, idx, g2, rate, eps, wd = checked_sparse_adagrad(
        ctx, param, moment, indices, grad, lr, check_range=False)
    row_wise = ctx.op_def.type.startswith("RowWise")
    try:
        done = _native_adagrad.native_sparse_adagrad(table, history, idx, g2, rate, eps, wd,
                                                     row_wise, normalize)
    except _native_adagrad.BadIndex:
        check_index_vector(ctx, 2, indices, table.shape[0], 0)
        raise  # unreachable: the Python check names the bad index
    if not done:
        check_index_vector(ctx, 2, indices, table.shape[0], 0)
        update = row_wise_sparse_adagrad_update if row_wise else sparse_adagrad_update
        update(ctx.xp, table, history, idx, g2, rate, eps, wd)
        return param, moment, False
    return param, moment, True


def sparse_adagrad_native(ctx, param, moment, indices, grad, lr, counter=None):
    return native_update(ctx, param, moment, indices, grad, lr)[:2]


def adagrad_native(ctx, param, moment, grad, lr):
    """Dense Adagrad in one C pass (2 outputs, float32); otherwise the NumPy kernel."""
    if len(ctx.op_def.output) == 2:
        rate = _check_dense(ctx, param, moment, grad, lr)
        wd = ctx.args["weight_decay"]
        done = _native_adagrad.native_adagrad(param, moment, grad, rate, ctx.args["epsilon"],
                                              ctx.args["decay"], wd, bool(wd))
        if done is not None:
            return done
    return adagrad(ctx, param, moment, grad, lr)


if _native_adagrad.available():
    register_kernel("Adagrad", devices=("CPU",), engine="NATIVE")(adagrad_native)
    set_per_op_engine_pref("CPU", "Adagrad", ["NATIVE"])
    for _op_type in ("SparseAdagrad", "RowWiseSparseAdagrad"):
        register_kernel(_op_type, devices=("CPU",), engine="NATIVE")(sparse_adagrad_native)
        set_per_op_engine_pref("CPU", _op_type, ["NATIVE"])
