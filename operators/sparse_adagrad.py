"""SparseAdagrad and RowWiseSparseAdagrad: Caffe2's AdaGrad on the rows ``indices`` name.

The rows are updated in place.  Caffe2 walked the indices in order, so a
duplicated index is updated twice, the second time from the moment and
parameter the first update wrote.  Both engines reproduce that bit for bit:

* NATIVE (caffe2lite/_native/adagrad.c, preferred when built): one C pass over
  the occurrences, O(occurrences), each row read, updated and written in cache;
  it can also renormalise each touched row after its last update (the fused
  SparseNormalize of caffe2lite/fusion.py).
* NUMPY (also the default engine ""): SparseAdagrad first sets aside the rows
  named only once -- usually nearly all -- and updates them in one cache-chunked
  pass (_update_distinct_rows); repeated rows then go in vectorised rounds, one
  per repetition, and a row repeated more than sqrt(len(indices)) times with
  one cumulative sum over its occurrences (the moment and, without weight
  decay, the parameter are running sums).

Tables are float32 with moments and gradients of the same type (Caffe2
registered SparseAdagradOp<float> / RowWiseSparseAdagradOp<float> only: a
float64 table is refused), or, as Caffe2's half-precision embedding optimizers
had, float16 tables with float32 moments: the arithmetic is then float32 and
each updated row is rounded to float16 (to nearest even) before its next
occurrence reads it.  Arithmetic
and learning-rate sign as in operators/adagrad.py.
"""

import numpy as np

from caffe2lite import _native
from caffe2lite.operators import _native_adagrad
from caffe2lite.operators._parallel import for_each_range
from caffe2lite.operators._train_common import (check_float32, check_index_vector, check_rows,
                                                check_scalar, host_int, occurrence_plan,
                                                occurrence_rounds, owned, running_sum,
                                                split_repeated)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, fusion, register_kernel,
                                register_schema, same_as, set_per_op_engine_pref)

_EPSILON = Arg("epsilon", "float", 1e-5, "added to sqrt(moment) in the denominator")
_WEIGHT_DECAY = Arg("weight_decay", "float", 0.0, "L2 penalty: grad + weight_decay * param")
# Both ops: (param, moment, indices, grad, lr) in, param and moment updated in place.
_PARAM = ("param", "table; rows are updated")
_ROWS_IN = [("indices", "int32/int64 rows of param to update"),
            ("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("lr", "learning rate, 1 element")]
_OUTPUTS = [("output_param", "param, updated in place"),
            ("output_moment_1", "moment, updated in place")]

register_schema(OpSchema(
    "SparseAdagrad", num_inputs=5, num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[_PARAM, ("moment", "history, same size as param")] + _ROWS_IN,
    outputs=_OUTPUTS,
    args=[_EPSILON, _WEIGHT_DECAY,
          Arg("decay", "float", 1.0, "must be 1: Caffe2 rejected decay for SparseAdagrad")],
    doc="AdaGrad on the rows named by indices, applied in index order (a duplicated row is "
        "updated twice). Both outputs must be the input blobs.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "RowWiseSparseAdagrad", num_inputs=(5, 6), num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[_PARAM, ("moment", "1-D history with one value per row of param")] + _ROWS_IN
    + [("counter", "(optional) per-row update frequency (RowWiseCounter's), read when "
                   "counter_halflife != -1")],
    outputs=_OUTPUTS,
    args=[_EPSILON, _WEIGHT_DECAY,
          Arg("counter_halflife", "int", -1, "frequency-adjusted weight decay: when > 0 a "
                                             "row's weight_decay is multiplied by "
                                             "counter_halflife / counter[row] (counter > 0)")],
    doc="Row-wise AdaGrad: moment[r] += mean(g*g over the row); "
        "param[r] += g * lr / (sqrt(moment[r]) + epsilon), in index order.",
    gradient=SHOULD_NOT_DO_GRADIENT))


HALF = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)


def _compute_dtype(ctx, param, moment, grad):
    """The dtype the update computes in, after checking the three arrays' dtypes:
    float32 (table, moment and grad alike), also for a float16 table (float32
    moment, float16 or float32 grad)."""
    if param.dtype != HALF:
        check_float32(ctx, 0, param, "or a float16 table with float32 moments")
        check_float32(ctx, 1, moment)
        check_float32(ctx, 3, grad)
        return param.dtype
    if moment.dtype != _FLOAT32:
        ctx.fail(f"{ctx.input_label(1)} has dtype {moment.dtype}: a float16 table keeps "
                 f"float32 moments")
    if grad.dtype not in (HALF, _FLOAT32):
        ctx.fail(f"{ctx.input_label(3)} has dtype {grad.dtype}, expected float16 or float32 "
                 f"for the float16 {ctx.input_label(0)}")
    return _FLOAT32


def _check_sparse(ctx, param, moment, indices, grad, lr, check_range=True):
    """Shared checks of the sparse variants; returns (rows, block, flat indices, rate, grad
    2-D, compute dtype).

    ``check_range=False`` leaves the index range to the caller (the NATIVE engine
    checks it in C, before it writes).
    """
    dtype = _compute_dtype(ctx, param, moment, grad)
    rows, block = check_rows(ctx, 0, param)
    rate = check_scalar(ctx, 4, lr, "learning rate").astype(dtype)
    idx = check_index_vector(ctx, 2, indices, rows if check_range else None, 0)
    if not (grad.shape[indices.ndim:] == param.shape[1:] and grad.size == idx.size * block):
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(grad.shape)}, expected indices.shape + "
                 f"param.shape[1:] = {tuple(indices.shape) + tuple(param.shape[1:])}")
    return rows, block, idx, rate, grad.reshape(idx.size, block).astype(dtype, copy=False), dtype


def checked_sparse_adagrad(ctx, param, moment, indices, grad, lr, check_range=True,
                           counter=None):
    """Every check of SparseAdagrad / RowWiseSparseAdagrad, before anything is written.

    Returns (param, moment, table, history, flat indices, grad rows, rate, eps, wd):
    param and moment as arrays the kernel may update in place, table/history
    their 2-D (1-D for a row-wise moment) views; ``wd`` is one value per index
    occurrence (an array) when counter_halflife scales it by row.
    """
    per_row_decay = counter is not None and ctx.args.get("counter_halflife", -1) != -1
    rows, block, idx, rate, g2, dtype = _check_sparse(ctx, param, moment, indices, grad, lr,
                                                      check_range or per_row_decay)
    if ctx.op_def.type.startswith("RowWise"):
        if moment.size != rows:
            ctx.fail(f"{ctx.input_label(1)} has {moment.size} elements, expected "
                     f"one per row of {ctx.input_label(0)} ({rows})")
        if ctx.args["counter_halflife"] != -1 and counter is None:
            ctx.fail(f"argument 'counter_halflife' = {ctx.args['counter_halflife']} needs the "
                     f"counter input (input 5)")
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
    eps, wd = dtype.type(ctx.args["epsilon"]), dtype.type(ctx.args["weight_decay"])
    if per_row_decay:
        wd = _frequency_weight_decay(ctx, counter, rows, idx, wd, dtype)
    return param, moment, param.reshape(rows, block), history, idx, g2, rate, eps, wd


def _frequency_weight_decay(ctx, counter, rows, idx, wd, dtype):
    """weight_decay * counter_halflife / counter[row] for each occurrence (counter > 0 and
    counter_halflife > 0; else weight_decay), computed in double as Caffe2 did."""
    if counter.size != rows or counter.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(5)} must be floating with one value per row of "
                 f"{ctx.input_label(0)} ({rows}), got {counter.dtype} of shape "
                 f"{tuple(counter.shape)}")
    halflife = ctx.args["counter_halflife"]
    count = counter.reshape(-1)[idx].astype(np.float64)
    freq = ctx.xp.ones_like(count)
    if halflife > 0:
        freq = ctx.xp.where(count > 0, halflife / ctx.xp.where(count > 0, count, 1.0), 1.0)
    return (float(wd) * freq).astype(dtype)


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
    if table.dtype == HALF:
        return _half_table_rounds(xp, table, history, idx, g2, lambda g, p, r: (
            g * g, lambda h: (g * rate) / (xp.sqrt(h) + eps)), wd)
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
    param, moment, *update = checked_sparse_adagrad(ctx, param, moment, indices, grad, lr,
                                                    counter=counter)
    row_wise_sparse_adagrad_update(ctx.xp, *update)
    return param, moment


def row_wise_sparse_adagrad_update(xp, table, history, idx, g2, rate, eps, wd):
    """RowWiseSparseAdagrad on checked arrays, in place, in Caffe2's per-occurrence order."""
    block = table.shape[1]

    def row_terms(g):
        """(moment increment, parameter step) per occurrence, as Caffe2 computed them."""
        if block == 1:  # Caffe2's scalar path: lr * g / (sqrt(h) + eps)
            return g[:, 0] * g[:, 0], lambda h: rate * g / (xp.sqrt(h) + eps)[:, None]
        return ((g * g).sum(axis=1) / g.dtype.type(block),
                lambda h: g * (rate / (xp.sqrt(h) + eps))[:, None])

    if table.dtype == HALF:
        return _half_table_rounds(xp, table, history, idx, g2,
                                  lambda g, p, r: row_terms(g), wd)

    per_row = getattr(wd, "ndim", 0) == 1  # weight decay by row frequency
    rounds, heavy = occurrence_plan(xp, idx, heavy_rows=not per_row and not wd)
    for pos in rounds:
        r = idx[pos]
        decay = wd[pos][:, None] if per_row else wd
        increment, step = row_terms(g2[pos] + decay * table[r] if per_row or wd else g2[pos])
        h = history[r] + increment
        history[r] = h
        table[r] = table[r] + step(h)
    for pos in heavy:
        r = host_int(idx[pos[0]])
        increment, step = row_terms(g2[pos])
        h = running_sum(xp, history[r:r + 1], increment)[1:]
        table[r] = running_sum(xp, table[r:r + 1], step(h))[-1]
        history[r] = h[-1]


def _half_table_rounds(xp, table, history, idx, g2, terms, wd):
    """The update of a float16 table with float32 moments, one round per repetition.

    Each occurrence reads the row as the previous one left it, rounded to float16,
    so no running sum can stand in for a row's repetitions: every round gathers
    its rows as float32, computes ``terms(g, p, rows) -> (moment increment,
    step(new moment))`` (the float32 expressions of the table types above), and
    scatters the rows back rounded to float16 (to nearest even, as C's cast).
    """
    per_row = getattr(wd, "ndim", 0) == 1
    for pos in occurrence_rounds(xp, idx):
        r = idx[pos]
        p = table[r].astype(np.float32)
        g = g2[pos] + (wd[pos][:, None] if per_row else wd) * p if per_row or wd else g2[pos]
        increment, step = terms(g, p, r)
        h = history[r] + increment
        history[r] = h
        table[r] = (p + step(h)).astype(HALF)


# -- NATIVE engine: caffe2lite/_native/adagrad.c, when it was built ---------------
def native_update(ctx, param, moment, indices, grad, lr, counter=None, normalize=None):
    """Checks, then the C pass (per occurrence, in order); NumPy where C cannot serve.

    The C code checks the index range before it writes; on a bad index the
    Python check runs to say which.  Returns False when the NumPy update must
    run instead (float64 tables, arrays C cannot address); nothing is written then.
    """
    param, moment, table, history, idx, g2, rate, eps, wd = checked_sparse_adagrad(
        ctx, param, moment, indices, grad, lr, check_range=False, counter=counter)
    row_wise = ctx.op_def.type.startswith("RowWise")
    if getattr(wd, "ndim", 0) == 1:  # per-row weight decay: the NumPy update
        check_index_vector(ctx, 2, indices, table.shape[0], 0)
        row_wise_sparse_adagrad_update(ctx.xp, table, history, idx, g2, rate, eps, wd)
        return param, moment, False
    try:
        done = _native_adagrad.native_sparse_adagrad(table, history, idx, g2, rate, eps, wd,
                                                     row_wise, normalize)
    except _native.BadIndex:
        check_index_vector(ctx, 2, indices, table.shape[0], 0)
        raise  # unreachable: the Python check names the bad index
    if not done:
        check_index_vector(ctx, 2, indices, table.shape[0], 0)
        update = row_wise_sparse_adagrad_update if row_wise else sparse_adagrad_update
        update(ctx.xp, table, history, idx, g2, rate, eps, wd)
        return param, moment, False
    return param, moment, True


def sparse_adagrad_native(ctx, param, moment, indices, grad, lr, counter=None):
    return native_update(ctx, param, moment, indices, grad, lr, counter)[:2]


if _native_adagrad.available():
    for _op_type in ("SparseAdagrad", "RowWiseSparseAdagrad"):
        register_kernel(_op_type, devices=("CPU",), engine="NATIVE")(sparse_adagrad_native)
        # the main job's optimizer + max-norm pair runs as one C pass (runtime/fusion.py)
        fusion.register_optimizer_normalize(_op_type, "NATIVE", native_update)
        set_per_op_engine_pref("CPU", _op_type, ["NATIVE"])
