"""Segment reductions by segment ids or lengths (Caffe2's segment_reduction_op.cc).

Rows of DATA (or, in the Sparse* forms, the rows DATA[INDICES]) are grouped into
segments and each segment is reduced to one output row:

* SortedSegment{Sum,Mean,WeightedSum}(DATA, [SCALARS,] SEGMENT_IDS): ids sorted,
  K = last id + 1 segments (ids never named give zero rows).
* UnsortedSegment{Sum,Mean,WeightedSum}: ids in any order; K = ``num_segments`` when
  given, else the largest id + 1.
* Sparse{Sorted,Unsorted}Segment*: DATA[INDICES] first (INDICES before SEGMENT_IDS).
* LengthsWeightedSum(DATA, SCALARS, LENGTHS), LengthsMax(DATA, LENGTHS): consecutive
  segments by lengths (LengthsSum / LengthsMean live in lengths_reducers.py).
* SortedSegmentRange{Sum,Mean,Max,LogSumExp,LogMeanExp}(DATA, SEGMENT_IDS): the
  "range" reducers over sorted ids.

WeightedSum multiplies row r by SCALARS[r]; Mean divides by the segment's size; an
empty segment gives zeros.  Every reduction is one stable sort at most, then
numpy reduceat / einsum over segments (operators/_segments.py) -- no Python loop
over rows or segments.  Gradients follow Caffe2's makers: the *Gradient ops take
(original inputs the reducer needs, dOUTPUT, SEGMENT_IDS or LENGTHS) and give one
row per reduced row -- DATA's gradient, or the values of a GradientSlice over
INDICES for the sparse forms.  Max gives the gradient to the entries equal to the
segment's max.  SparseLengthsPositionalWeightedSum(DATA, WEIGHT, INDICES, LENGTHS)
weighs row j of each segment by WEIGHT[j] (forward only, as in Caffe2).
"""

import math

import numpy as np

from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_index_range,
                                            check_scalars, check_vector, checked_lengths,
                                            offsets_of, segment_sum, take_checked)
from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, GradientSlice, OpSchema,
                                TensorSpec, grad_name, make_operator, register_kernel,
                                register_schema, sparse_grad_names)

FLOAT_DTYPES = (np.float32, np.float64)
NUM_SEGMENTS = Arg("num_segments", "int", -1, "number of segments (default: largest id + 1)")


# -- the reductions -------------------------------------------------------------------------
def group_by_ids(ctx, ids, count, rows=None):
    """(row order, lengths): the stable order that makes ``ids`` sorted and the size of each
    of ``count`` segments.  Sorted ids need no reordering (order None)."""
    xp = ctx.xp
    lengths = xp.bincount(ids, minlength=count)[:count]
    if ids.size > 1 and not bool((ids[1:] >= ids[:-1]).all()):
        order = xp.argsort(ids, kind="stable") if xp is np else xp.argsort(ids)
        return order, lengths
    return None, lengths


def reduce_segments(xp, rows, lengths, how):
    """Reduce consecutive segments of ``rows`` (sizes ``lengths``): sum, mean, max,
    logsumexp or logmeanexp; empty segments give zeros."""
    if how in ("sum", "mean"):
        out = segment_sum(xp, rows, lengths)
        return out / xp.maximum(lengths, 1).reshape((-1,) + (1,) * (rows.ndim - 1)) \
            .astype(rows.dtype) if how == "mean" else out
    m = lengths.shape[0]
    out = xp.zeros((m,) + rows.shape[1:], rows.dtype)
    nonempty = lengths > 0
    if not bool(nonempty.any()):
        return out
    starts = offsets_of(xp, lengths)[0][nonempty]
    peak = xp.maximum.reduceat(rows, starts, axis=0)
    if how == "max":
        out[nonempty] = peak
        return out
    segment = xp.repeat(xp.arange(m), lengths.tolist() if xp is not np else lengths)
    shifted = xp.exp(rows - out_rows(peak, nonempty, out)[segment])
    total = xp.add.reduceat(shifted, starts, axis=0)
    if how == "logmeanexp":
        total = total / lengths[nonempty].reshape((-1,) + (1,) * (rows.ndim - 1))
    out[nonempty] = xp.log(total) + peak
    return out


def out_rows(values, nonempty, like):
    """``values`` (one per non-empty segment) placed on every segment (0 on empty ones)."""
    full = like.copy()
    full[nonempty] = values
    return full


# -- checks ---------------------------------------------------------------------------------
def _data(ctx, data, i=0):
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(i)} must have rank >= 1, got a scalar")
    check_dtype(ctx, data, i, FLOAT_DTYPES, "float or double")


def _segment_ids(ctx, ids, i, rows, sorted_ids):
    """Checked int64 ids (one per row) and the number of segments."""
    check_index_dtype(ctx, ids, i)
    check_vector(ctx, ids, i)
    if ids.shape[0] != rows:
        ctx.fail(f"{ctx.input_label(i)} has {ids.shape[0]} ids, expected one per row ({rows})")
    ids = ids.astype(np.int64)
    if ids.size and int(ids.min()) < 0:
        ctx.fail(f"{ctx.input_label(i)} holds a negative segment id {int(ids.min())}")
    if sorted_ids and ids.size > 1 and not bool((ids[1:] >= ids[:-1]).all()):
        ctx.fail(f"{ctx.input_label(i)}: segment ids must be sorted")
    count = int(ids.max()) + 1 if ids.size else 0
    wanted = ctx.args["num_segments"] if "num_segments" in ctx.schema.arg_by_name else -1
    if wanted >= 0:
        if count > wanted:
            ctx.fail(f"{ctx.input_label(i)} names segment {count - 1}, but num_segments is "
                     f"{wanted}")
        count = wanted
    return ids, count


def _gathered(ctx, data, indices, i):
    """DATA[INDICES] (checked) for the sparse forms, else DATA."""
    if indices is None:
        return data
    check_index_dtype(ctx, indices, i)
    check_vector(ctx, indices, i)
    check_index_range(ctx, indices, data.shape[0], i, f"DATA with {data.shape[0]} rows")
    return take_checked(ctx.xp, data, indices)


def apply_weights(ctx, rows, scalars, i):
    """rows[r] * SCALARS[r] (input i: a float32 vector with one weight per row)."""
    check_scalars(ctx, scalars, i, rows.shape[0])
    return rows * _column(scalars, rows)


# -- forward ops ------------------------------------------------------------------------------
def _segment_kernel(reducer, sparse, sorted_ids, weighted):
    """Kernel of {Sparse}{Sorted,Unsorted}Segment{Sum,Mean,WeightedSum}."""
    def kernel(ctx, data, *rest):
        _data(ctx, data)
        rest = list(rest)
        scalars = rest.pop(0) if weighted else None
        indices = rest.pop(0) if sparse else None
        ids_i = len(ctx.op_def.input) - 1
        rows = _gathered(ctx, data, indices, 1 + weighted)
        if weighted:
            rows = apply_weights(ctx, rows, scalars, 1)
        ids, count = _segment_ids(ctx, rest[0], ids_i, rows.shape[0], sorted_ids)
        order, lengths = group_by_ids(ctx, ids, count)
        if order is not None:
            rows = rows[order]
        return (reduce_segments(ctx.xp, rows, lengths, reducer).astype(data.dtype),)
    return kernel


def _lengths_kernel(reducer, weighted):
    def kernel(ctx, data, *rest):
        _data(ctx, data)
        rows = apply_weights(ctx, data, rest[0], 1) if weighted else data
        lengths = rest[-1]
        checked_lengths(ctx, lengths, len(rest), int(data.shape[0]), "the number of DATA rows")
        return (reduce_segments(ctx.xp, rows, lengths, reducer).astype(data.dtype),)
    return kernel


def _range_kernel(reducer):
    def kernel(ctx, data, ids):
        _data(ctx, data)
        ids, count = _segment_ids(ctx, ids, 1, data.shape[0], True)
        lengths = ctx.xp.bincount(ids, minlength=count)
        return (reduce_segments(ctx.xp, data, lengths, reducer).astype(data.dtype),)
    return kernel


# -- gradient ops ---------------------------------------------------------------------------
def _expand(ctx, grad, grad_i, ids, mean=False):
    """One gradient row per reduced row: grad[ids] (divided by the segment size for Mean)."""
    xp = ctx.xp
    if grad.ndim < 1 or (ids.size and int(ids.max()) >= grad.shape[0]):
        ctx.fail(f"{ctx.input_label(grad_i)} {tuple(grad.shape)} has no row for segment "
                 f"{int(ids.max()) if ids.size else 0}")
    rows = take_checked(xp, grad, ids)
    if mean:
        counts = xp.bincount(ids, minlength=grad.shape[0])
        rows = rows / _column(xp.maximum(counts, 1)[ids], rows)
    return rows


def _column(values, like):
    """A per-row vector shaped to broadcast against ``like`` rows, in its dtype."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1)).astype(like.dtype)


def _ids_input(ctx, ids, i):
    check_index_dtype(ctx, ids, i)
    check_vector(ctx, ids, i)
    if ids.size and int(ids.min()) < 0:
        ctx.fail(f"{ctx.input_label(i)} holds a negative segment id")
    return ids.astype(np.int64)


def _lengths_ids(ctx, lengths, i):
    """The segment of each row covered by LENGTHS."""
    checked_lengths(ctx, lengths, i)
    xp = ctx.xp
    return xp.repeat(xp.arange(lengths.shape[0]), lengths.tolist() if xp is not np
                     else lengths)


def _segment_gradient_kernel(reducer, weighted):
    """{Sorted,Unsorted}Segment{Sum,Mean,WeightedSum}Gradient([SCALARS,] dOUT, IDS)."""
    def kernel(ctx, *inputs):
        grad_i = len(inputs) - 2
        _data(ctx, inputs[grad_i], grad_i)
        ids = _ids_input(ctx, inputs[-1], len(inputs) - 1)
        rows = _expand(ctx, inputs[grad_i], grad_i, ids, reducer == "mean")
        return (apply_weights(ctx, rows, inputs[0], 0) if weighted else rows,)
    return kernel


def lengths_weighted_sum_gradient(ctx, scalars, grad, lengths):
    _data(ctx, grad, 1)
    rows = _expand(ctx, grad, 1, _lengths_ids(ctx, lengths, 2))
    return (apply_weights(ctx, rows, scalars, 0),)


def _check_forward_blobs(ctx, data, output, grad, ids, data_i, output_i):
    """The forward DATA and OUTPUT a gradient op re-reads must fit the row ids and dOUT."""
    if data.shape[:1] != ids.shape or output.shape != grad.shape \
            or data.shape[1:] != grad.shape[1:]:
        ctx.fail(f"{ctx.input_label(data_i)} {tuple(data.shape)} and "
                 f"{ctx.input_label(output_i)} {tuple(output.shape)} must match the "
                 f"{ids.shape[0]} segment rows and the gradient {tuple(grad.shape)}")


def lengths_max_gradient(ctx, grad, lengths, data, output):
    """dDATA[r] = dOUT[k] where DATA[r] equals segment k's max (Caffe2's MaxReducerGradient
    gives every tied entry the gradient)."""
    _data(ctx, grad, 0)
    ids = _lengths_ids(ctx, lengths, 1)
    _check_forward_blobs(ctx, data, output, grad, ids, 2, 3)
    rows = _expand(ctx, grad, 0, ids)
    return (ctx.xp.where(data == take_checked(ctx.xp, output, ids), rows, 0).astype(grad.dtype),)


def _as_segment_rows(x, data):
    """``x`` as rows shaped like DATA's when only its rank differs: Caffe2 read OUTPUT and
    dOUT as flat memory of DATA's row size (a recurrent step gives back its (1, D) output
    as a (1, 1, D) slice of the stacked states)."""
    block = math.prod(data.shape[1:])
    if x.ndim != data.ndim and block and x.size % block == 0:
        return x.reshape((x.size // block,) + tuple(data.shape[1:]))
    return x


def _range_gradient_kernel(reducer):
    """SortedSegmentRange{...}Gradient(DATA, OUTPUT, dOUT, SEGMENT_IDS)."""
    def kernel(ctx, data, output, grad, ids):
        xp = ctx.xp
        output, grad = _as_segment_rows(output, data), _as_segment_rows(grad, data)
        _data(ctx, grad, 2)
        ids = _ids_input(ctx, ids, 3)
        _check_forward_blobs(ctx, data, output, grad, ids, 0, 1)
        rows = _expand(ctx, grad, 2, ids, reducer == "mean")
        if reducer in ("sum", "mean"):
            return (rows,)
        out_rows_ = take_checked(xp, output, ids)
        if reducer == "max":  # every entry equal to the max (Caffe2's newest rule)
            return (xp.where(data == out_rows_, rows, 0).astype(grad.dtype),)
        # d log(sum exp) / dx = exp(x - out); log-mean-exp: the same over the count
        scale = xp.exp(data - out_rows_)
        if reducer == "logmeanexp":
            scale = scale / _column(xp.bincount(ids, minlength=grad.shape[0])[ids], scale)
        return ((rows * scale).astype(grad.dtype),)
    return kernel


# -- gradient makers --------------------------------------------------------------------------
def _segment_maker(grad_type, weighted, sparse):
    """Caffe2's SegmentOpGetGradient: ([SCALARS,] dOUT, SEGMENT_IDS) -> dDATA, or the values
    of a GradientSlice over INDICES for the sparse forms."""
    def maker(op_def, g_output):
        inputs = list(op_def.input)
        grad_ins = inputs[1:2] if weighted else []
        grad_ins += [g_output[0], inputs[-1]]
        if sparse:
            values = sparse_grad_names(inputs[0]).values
            indices = inputs[1 + weighted]
            g_input = [GradientSlice(indices, values)] + [None] * (len(inputs) - 1)
            return [make_operator(grad_type, grad_ins, [values])], g_input
        d_data = grad_name(inputs[0])
        return [make_operator(grad_type, grad_ins, [d_data])], [d_data] + \
            [None] * (len(inputs) - 1)
    maker.__name__ = f"segment_gradient_maker_{grad_type}"
    return maker


def _lengths_weighted_sum_maker(op_def, g_output):
    data, scalars, lengths = op_def.input
    d_data = grad_name(data)
    return [make_operator("LengthsWeightedSumGradient", [scalars, g_output[0], lengths],
                          [d_data])], [d_data, None, None]


def _lengths_max_maker(op_def, g_output):
    data, lengths = op_def.input
    d_data = grad_name(data)
    return [make_operator("LengthsMaxWithMainInputAndForwardOutputGradient",
                          [g_output[0], lengths, data, op_def.output[0]], [d_data])], \
        [d_data, None]


def _range_maker(grad_type):
    def maker(op_def, g_output):
        data, ids = op_def.input
        d_data = grad_name(data)
        return [make_operator(grad_type, [data, op_def.output[0], g_output[0], ids],
                              [d_data])], [d_data, None]
    maker.__name__ = f"range_gradient_maker_{grad_type}"
    return maker


# -- shapes and registration ----------------------------------------------------------------------
def _lengths_shapes(ctx, data, *rest):
    lengths = rest[-1]
    if data is None or lengths is None or data.ndim < 1:
        return (None,)
    return (TensorSpec((lengths.shape[0],) + data.shape[1:], data.dtype),)


def _unsorted_shapes(ctx, data, *rest):
    wanted = ctx.args["num_segments"]
    if data is None or data.ndim < 1 or wanted is None or wanted < 0:
        return (None,)  # the count depends on the ids' values
    return (TensorSpec((wanted,) + data.shape[1:], data.dtype),)


_DOCS = {"sum": "the sum of", "mean": "the mean of", "max": "the elementwise max of",
         "logsumexp": "log(sum(exp(.))) of", "logmeanexp": "log(mean(exp(.))) of",
         "weightedsum": "the SCALARS-weighted sum of"}
_DATA = ("DATA", "float tensor of rank >= 1")
_SCALARS = ("SCALARS", "float32 vector: one weight per reduced row")
_INDICES = ("INDICES", "int32/int64 vector: rows of DATA to reduce")
_IDS = ("SEGMENT_IDS", "int32/int64 vector: the segment of each reduced row")
_LENGTHS = ("LENGTHS", "int32/int64 vector: rows per segment")
_OUTPUT = ("OUTPUT", "one row per segment, DATA's row shape and dtype")
_ROWS = ("DATA_GRAD", "one gradient row per reduced row")

for _sorted_ids in (True, False):
    _order = "Sorted" if _sorted_ids else "Unsorted"
    for _name, _reducer in (("Sum", "sum"), ("Mean", "mean"), ("WeightedSum", "sum")):
        _weighted = _name == "WeightedSum"
        _grad = f"{_order}Segment{_name}Gradient"
        for _sparse in (False, True):
            _type = f"{'Sparse' if _sparse else ''}{_order}Segment{_name}"
            _inputs = [_DATA] + ([_SCALARS] if _weighted else []) + \
                ([_INDICES] if _sparse else []) + [_IDS]
            register_schema(OpSchema(
                _type, num_inputs=len(_inputs), num_outputs=1, inputs=_inputs,
                outputs=[_OUTPUT], args=[] if _sorted_ids else [NUM_SEGMENTS],
                infer_shapes=None if _sorted_ids else _unsorted_shapes,
                doc=f"OUTPUT[k] = {_DOCS['weightedsum' if _weighted else _reducer]} the rows "
                    f"{'DATA[INDICES[r]]' if _sparse else 'DATA[r]'} with SEGMENT_IDS[r] == k"
                    f"{' (ids sorted)' if _sorted_ids else ''}.",
                gradient=_segment_maker(_grad, _weighted, _sparse)))
            register_kernel(_type, devices=("CPU", "CUDA"))(
                _segment_kernel(_reducer, _sparse, _sorted_ids, _weighted))
        _grad_inputs = ([_SCALARS] if _weighted else []) + \
            [("SEGMENT_GRADS", "gradient of OUTPUT"), _IDS]
        register_schema(OpSchema(
            _grad, num_inputs=len(_grad_inputs), num_outputs=1, inputs=_grad_inputs,
            outputs=[_ROWS], args=[] if _sorted_ids else [NUM_SEGMENTS],
            doc=f"The gradient of {_order}Segment{_name} (and its Sparse form)."))
        register_kernel(_grad, devices=("CPU", "CUDA"))(
            _segment_gradient_kernel(_reducer if not _weighted else "sum", _weighted))

register_schema(OpSchema(
    "LengthsWeightedSum", num_inputs=3, num_outputs=1, infer_shapes=_lengths_shapes,
    inputs=[_DATA, _SCALARS, _LENGTHS], outputs=[_OUTPUT],
    args=[Arg("grad_on_weights", "bool", False, "(accepted; no gradient on SCALARS here)")],
    doc="OUTPUT[k] = sum over segment k's rows r of SCALARS[r] * DATA[r].",
    gradient=_lengths_weighted_sum_maker))
register_kernel("LengthsWeightedSum", devices=("CPU", "CUDA"))(_lengths_kernel("sum", True))
register_schema(OpSchema(
    "LengthsWeightedSumGradient", num_inputs=3, num_outputs=1,
    inputs=[_SCALARS, ("SEGMENT_GRADS", "gradient of OUTPUT"), _LENGTHS], outputs=[_ROWS],
    args=[Arg("grad_on_weights", "bool", False, "copied from the forward op")],
    doc="The gradient of LengthsWeightedSum: SCALARS[r] * SEGMENT_GRADS[segment of r]."))
register_kernel("LengthsWeightedSumGradient", devices=("CPU", "CUDA"))(
    lengths_weighted_sum_gradient)

register_schema(OpSchema(
    "LengthsMax", num_inputs=2, num_outputs=1, infer_shapes=_lengths_shapes,
    inputs=[_DATA, _LENGTHS], outputs=[_OUTPUT],
    doc="OUTPUT[k] = the elementwise max of segment k's rows (zeros when empty).",
    gradient=_lengths_max_maker))
register_kernel("LengthsMax", devices=("CPU", "CUDA"))(_lengths_kernel("max", False))
register_schema(OpSchema(
    "LengthsMaxWithMainInputAndForwardOutputGradient", num_inputs=4, num_outputs=1,
    inputs=[("SEGMENT_GRADS", "gradient of OUTPUT"), _LENGTHS, _DATA,
            ("OUTPUT", "the forward output")], outputs=[_ROWS],
    doc="The gradient of LengthsMax: SEGMENT_GRADS where DATA equals its segment's max."))
register_kernel("LengthsMaxWithMainInputAndForwardOutputGradient",
                devices=("CPU", "CUDA"))(lengths_max_gradient)

for _name, _reducer in (("Sum", "sum"), ("Mean", "mean"), ("Max", "max"),
                        ("LogSumExp", "logsumexp"), ("LogMeanExp", "logmeanexp")):
    _type = f"SortedSegmentRange{_name}"
    register_schema(OpSchema(
        _type, num_inputs=2, num_outputs=1, inputs=[_DATA, _IDS], outputs=[_OUTPUT],
        doc=f"OUTPUT[k] = {_DOCS[_reducer]} the rows of segment k (ids sorted).",
        gradient=_range_maker(f"{_type}Gradient")))
    register_kernel(_type, devices=("CPU", "CUDA"))(_range_kernel(_reducer))
    register_schema(OpSchema(
        f"{_type}Gradient", num_inputs=4, num_outputs=1,
        inputs=[_DATA, ("OUTPUT", "the forward output"),
                ("SEGMENT_GRADS", "gradient of OUTPUT"), _IDS], outputs=[_ROWS],
        doc=f"The gradient of {_type}."))
    register_kernel(f"{_type}Gradient", devices=("CPU", "CUDA"))(_range_gradient_kernel(_reducer))


register_schema(OpSchema(
    "SparseLengthsPositionalWeightedSum", num_inputs=4, num_outputs=1,
    infer_shapes=_lengths_shapes,
    inputs=[_DATA, ("WEIGHT", "float32 vector: the weight of each position in a segment"),
            _INDICES, _LENGTHS], outputs=[_OUTPUT],
    doc="OUTPUT[k] = sum over j of WEIGHT[j] * DATA[INDICES[s_k + j]] for the rows j of "
        "segment k.", gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@register_kernel("SparseLengthsPositionalWeightedSum", devices=("CPU", "CUDA"))
def sparse_lengths_positional_weighted_sum(ctx, data, weight, indices, lengths):
    xp = ctx.xp
    _data(ctx, data)
    rows = _gathered(ctx, data, indices, 2)
    checked_lengths(ctx, lengths, 3, int(rows.shape[0]), "the number of INDICES")
    check_dtype(ctx, weight, 1, (np.float32,), "float32")
    check_vector(ctx, weight, 1)
    position = xp.arange(rows.shape[0]) - xp.repeat(
        offsets_of(xp, lengths)[0], lengths.tolist() if xp is not np else lengths)
    if position.size and int(position.max()) >= weight.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} has {weight.shape[0]} weights, but a segment has "
                 f"{int(position.max()) + 1} rows")
    rows = rows * _column(weight[position], rows)
    return (reduce_segments(xp, rows, lengths, "sum").astype(data.dtype),)
