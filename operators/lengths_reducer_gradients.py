"""Gradient ops of the lengths reducers (Caffe2's AbstractLengths*GradientOp family).

Every one expands the segment gradient dOUTPUT back to one row per reduced
row: row r of segment k gets dOUTPUT[k] (times SCALARS[r], or divided by
LENGTHS[k] for Mean).  For the sparse ops those rows are the ``values`` of
the GradientSlice (INDICES, values); for Lengths* they are DATA's dense
gradient.  The ``WithMainInput`` forms also return dSCALARS[r] =
<DATA[INDICES[r]], dOUTPUT[k]>.

Caffe2 registered both the 2/3-input ops and the "IndicesInGradient" ones
(which also take INDICES -- or DATA for Lengths* -- needed only by its CUDA
kernels); its newest gradient makers emit the latter.  Here the extra input
is used to check that LENGTHS covers exactly its first dimension.  Outputs
are float32, as in Caffe2.
"""

import math

import numpy as np

from caffe2lite.operators._segments import (INDEX_DTYPES, check_dtype, check_index_dtype,
                                            check_index_range, check_vector, checked_lengths,
                                            repeat_segments, take_checked)
from caffe2lite.operators.lengths_reducers import (GRAD_ON_WEIGHTS, check_scalars,
                                                   segment_mean_scale)
from caffe2lite.runtime import Arg, OpSchema, fusion, register_kernel, register_schema

_FLOATS = (np.float16, np.float32, np.float64)
_GO = ("SEGMENT_GRADS", "gradient of the forward OUTPUT: (len(LENGTHS),) + block shape")
_LENGTHS = ("LENGTHS", "the forward op's LENGTHS")
_SCALARS = ("SCALARS", "the forward op's SCALARS")
_COPIED_ARG = Arg("grad_on_weights", "bool", False, "copied from the forward op; the op "
                                                   "type already says what is computed")
_ROWS = "one row per reduced row: (sum(LENGTHS),) + block shape, float32"


def _schema(op_type, inputs, doc, outputs=1, args=()):
    out_spec = [("DATA_GRAD", _ROWS), ("SCALARS_GRAD", "float32 vector, one per index")]
    register_schema(OpSchema(op_type, num_inputs=len(inputs), num_outputs=outputs,
                             inputs=inputs, outputs=out_spec[:2 if outputs != 1 else 1],
                             args=list(args), doc=doc))


_SUM_DOC = "Gradient of {}: row r of segment k is SEGMENT_GRADS[k] (numpy.repeat)."
_MEAN_DOC = "Gradient of {}: row r of segment k is SEGMENT_GRADS[k] / LENGTHS[k]."
_WSUM_DOC = "Gradient of SparseLengthsWeightedSum: row r of segment k is SCALARS[r] * " \
            "SEGMENT_GRADS[k]."
_MAIN_DOC = _WSUM_DOC + " Output 1 (if asked for) is dSCALARS[r] = <DATA[INDICES[r]], " \
                        "SEGMENT_GRADS[k]>."

_schema("LengthsSumGradient", [_GO, _LENGTHS], _SUM_DOC.format("LengthsSum"))
_schema("LengthsIndicesInGradientSumGradient",
        [_GO, _LENGTHS, ("DATA", "the forward DATA (first dim checked)")],
        _SUM_DOC.format("LengthsSum"))
_schema("LengthsMeanGradient", [_GO, _LENGTHS], _MEAN_DOC.format("LengthsMean"))
_schema("LengthsIndicesInGradientMeanGradient",
        [_GO, _LENGTHS, ("DATA", "the forward DATA (first dim checked)")],
        _MEAN_DOC.format("LengthsMean"))
_schema("SparseLengthsSumGradient", [_GO, _LENGTHS], _SUM_DOC.format("SparseLengthsSum"))
_schema("SparseLengthsIndicesInGradientSumGradient",
        [_GO, _LENGTHS, ("INDICES", "the forward INDICES")], _SUM_DOC.format("SparseLengthsSum"))
_schema("SparseLengthsMeanGradient", [_GO, _LENGTHS], _MEAN_DOC.format("SparseLengthsMean"))
_schema("SparseLengthsIndicesInGradientMeanGradient",
        [_GO, _LENGTHS, ("INDICES", "the forward INDICES")], _MEAN_DOC.format("SparseLengthsMean"))
_schema("SparseLengthsWeightedSumGradient", [_SCALARS, _GO, _LENGTHS], _WSUM_DOC,
        args=[_COPIED_ARG])
_schema("SparseLengthsIndicesInGradientWeightedSumGradient",
        [_SCALARS, _GO, _LENGTHS, ("INDICES", "the forward INDICES")], _WSUM_DOC,
        args=[_COPIED_ARG])
_MAIN_INPUTS = [_SCALARS, _GO, _LENGTHS, ("DATA", "the forward DATA (embedding table)"),
                ("INDICES", "the forward INDICES")]
_schema("SparseLengthsWeightedSumWithMainInputGradient", _MAIN_INPUTS, _MAIN_DOC,
        outputs=(1, 2), args=[GRAD_ON_WEIGHTS])
_schema("SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient", _MAIN_INPUTS,
        _MAIN_DOC, outputs=2, args=[GRAD_ON_WEIGHTS])


def _expand(ctx, go, lengths, go_i, lengths_i, rows_i=None, rows=None, mean=False):
    """Validate SEGMENT_GRADS/LENGTHS (and the row-count input); repeat rows per segment."""
    check_dtype(ctx, go, go_i, _FLOATS, "a float tensor")
    if go.ndim < 1:
        ctx.fail(f"{ctx.input_label(go_i)} must have rank >= 1, got a scalar")
    total, uniform = checked_lengths(ctx, lengths, lengths_i)
    if go.shape[0] != lengths.shape[0]:
        ctx.fail(f"{ctx.input_label(go_i)} has {go.shape[0]} rows, expected one per segment "
                 f"({lengths.shape[0]} = len(LENGTHS))")
    if rows is not None:
        if not (rows.ndim >= 1 and rows.shape[0] == total):
            ctx.fail(f"{ctx.input_label(rows_i)} has shape {tuple(rows.shape)}, expected a first "
                     f"dim of {total} = sum(LENGTHS)")
    if go.dtype != np.float32:
        go = go.astype(np.float32)
    if mean:
        go = segment_mean_scale(ctx.xp, go, lengths)
    return repeat_segments(ctx.xp, go, lengths, uniform), total


def _weighted(ctx, scalars, go, lengths, indices=None):
    values, total = _expand(ctx, go, lengths, 1, 2, 3 if indices is not None else None, indices)
    check_scalars(ctx, scalars, 0, total)
    return values * scalars.reshape((-1,) + (1,) * (values.ndim - 1)), total


def _register_expand(op_type, mean, with_rows):
    if with_rows:
        def kernel(ctx, go, lengths, rows):
            return (_expand(ctx, go, lengths, 0, 1, 2, rows, mean)[0],)
    else:
        def kernel(ctx, go, lengths):
            return (_expand(ctx, go, lengths, 0, 1, mean=mean)[0],)
    kernel.__name__ = op_type
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)


for _type, _mean, _rows in (
        ("LengthsSumGradient", False, False),
        ("LengthsIndicesInGradientSumGradient", False, True),
        ("LengthsMeanGradient", True, False),
        ("LengthsIndicesInGradientMeanGradient", True, True),
        ("SparseLengthsSumGradient", False, False),
        ("SparseLengthsIndicesInGradientSumGradient", False, True),
        ("SparseLengthsMeanGradient", True, False),
        ("SparseLengthsIndicesInGradientMeanGradient", True, True)):
    _register_expand(_type, _mean, _rows)


def _one_row_bags_view(op, go, lengths, rows=None):
    """(SEGMENT_GRADS,) itself when every bag holds one row -- the gradient is then
    SEGMENT_GRADS row for row, and the op's copy of it (1 MB a table at the main job's
    batch 8192, strided when it is Split's view) is what a net created with fusions
    skips (runtime/fusion.py) -- else None: the kernel runs, with its checks."""
    if type(go) is not np.ndarray or go.dtype != np.float32 or go.ndim < 1 or \
            lengths.dtype not in INDEX_DTYPES or lengths.shape != go.shape[:1] or \
            not lengths.size or (rows is not None and rows.shape[:1] != go.shape[:1]):
        return None
    if int(lengths.min()) != 1 or int(lengths.max()) != 1:
        return None
    return (go,)


for _type in ("LengthsSumGradient", "LengthsIndicesInGradientSumGradient",
              "SparseLengthsSumGradient", "SparseLengthsIndicesInGradientSumGradient"):
    fusion.register_view_splitter(_type, _one_row_bags_view)


@register_kernel("SparseLengthsWeightedSumGradient", devices=("CPU", "CUDA"))
def sparse_lengths_weighted_sum_gradient(ctx, scalars, go, lengths):
    return (_weighted(ctx, scalars, go, lengths)[0],)


@register_kernel("SparseLengthsIndicesInGradientWeightedSumGradient", devices=("CPU", "CUDA"))
def sparse_lengths_indices_in_gradient_weighted_sum_gradient(ctx, scalars, go, lengths, indices):
    check_index_dtype(ctx, indices, 3)
    return (_weighted(ctx, scalars, go, lengths, indices)[0],)


def with_main_input_gradient(ctx, scalars, go, lengths, data, indices):
    """dDATA values and dSCALARS[r] = <DATA[INDICES[r]], SEGMENT_GRADS[segment of r]>."""
    xp = ctx.xp
    check_index_dtype(ctx, indices, 4)
    check_vector(ctx, indices, 4)
    check_dtype(ctx, data, 3, (np.float32, np.float16), "float32 or float16")
    if not (data.ndim >= 1 and tuple(data.shape[1:]) == tuple(go.shape[1:])):
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(data.shape)}, expected rows shaped like "
                 f"SEGMENT_GRADS' rows {tuple(go.shape[1:])}")
    check_index_range(ctx, indices, int(data.shape[0]), 4, f"DATA with {data.shape[0]} rows")
    expanded, total = _expand(ctx, go, lengths, 1, 2, 4, indices)
    check_scalars(ctx, scalars, 0, total)
    rows = take_checked(xp, data, indices).astype(np.float32, copy=False)
    weight_grad = (rows * expanded).reshape(total, math.prod(expanded.shape[1:])).sum(axis=1)
    values = expanded * scalars.reshape((-1,) + (1,) * (expanded.ndim - 1))
    return values, weight_grad


@register_kernel("SparseLengthsWeightedSumWithMainInputGradient", devices=("CPU", "CUDA"))
def sparse_lengths_weighted_sum_with_main_input_gradient(ctx, *inputs):
    values, weight_grad = with_main_input_gradient(ctx, *inputs)
    return (values, weight_grad)[:len(ctx.op_def.output)]


@register_kernel("SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient",
                 devices=("CPU", "CUDA"))
def sparse_lengths_indices_in_gradient_weighted_sum_with_main_input_gradient(ctx, *inputs):
    return with_main_input_gradient(ctx, *inputs)
