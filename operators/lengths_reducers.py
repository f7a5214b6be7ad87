"""Lengths reducers: per-segment sums and means of DATA rows, optionally looked up.

``Lengths{Sum,Mean}(DATA, LENGTHS)`` reduce consecutive rows of DATA, one
segment per LENGTHS entry.  ``SparseLengths{Sum,Mean,WeightedSum}`` first
gather the rows DATA[INDICES] (an embedding lookup; the weighted form also
scales row i by SCALARS[i]), so for segment k with rows r:

    OUTPUT[k] = sum_r w_r * DATA[INDICES[r]]      (w_r = 1, or 1/LENGTHS[k] for Mean)

An empty segment gives a zero row.  SparseLengths* accept float32 or float16
tables and, as Caffe2 did, always produce float32.  Gradients follow
Caffe2's newest makers (the "IndicesInGradient" ops, see
lengths_reducer_gradients.py): dense for Lengths*, a GradientSlice
(INDICES, values) for the sparse ops, plus dSCALARS when ``grad_on_weights``.
"""

import numpy as np

from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_lengths,
                                            check_scalars, check_vector,
                                            checked_gather_segment_sum, segment_sum)
from caffe2lite.runtime import (Arg, GradientSlice, OpSchema, TensorSpec, dense_output_grad,
                                fillers, fusion, grad_name, make_operator, register_kernel,
                                register_schema, sparse_grad_names)

GRAD_ON_WEIGHTS = Arg("grad_on_weights", "bool", False,
                      "also produce the gradient of SCALARS (Caffe2's WithMainInput gradient)")


# -- gradient makers (Caffe2's LengthsOpGetGradient with GradientNeedIndices) -----------
def _dense_maker(grad_type):
    def maker(op_def, g_output):
        data, lengths = op_def.input[0], op_def.input[1]
        grad = dense_output_grad(op_def, g_output)
        grad_op = make_operator(grad_type, [grad, lengths, data], [grad_name(data)])
        return [grad_op], [grad_name(data), None]

    maker.__name__ = f"lengths_gradient_maker_{grad_type}"
    return maker


def _sparse_maker(grad_type):
    def maker(op_def, g_output):
        data, indices, lengths = op_def.input
        values = sparse_grad_names(data).values
        grad = dense_output_grad(op_def, g_output)
        grad_op = make_operator(grad_type, [grad, lengths, indices], [values])
        return [grad_op], [GradientSlice(indices, values), None, None]

    maker.__name__ = f"sparse_lengths_gradient_maker_{grad_type}"
    return maker


def sparse_lengths_weighted_sum_gradient_maker(op_def, g_output):
    """dDATA is a GradientSlice; dSCALARS (dense) only when grad_on_weights is set."""
    data, scalars, indices, lengths = op_def.input
    values = sparse_grad_names(data).values
    grad = dense_output_grad(op_def, g_output)
    on_weights = any(a.name == "grad_on_weights" and a.i for a in op_def.arg)
    if on_weights:
        grad_op = make_operator(
            "SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient",
            [scalars, grad, lengths, data, indices], [values, grad_name(scalars)])
        return [grad_op], [GradientSlice(indices, values), grad_name(scalars), None, None]
    grad_op = make_operator("SparseLengthsIndicesInGradientWeightedSumGradient",
                            [scalars, grad, lengths, indices], [values])
    return [grad_op], [GradientSlice(indices, values), None, None, None]


# -- schemas ---------------------------------------------------------------------------
_DATA = ("DATA", "float32 tensor of rank >= 1 whose rows are reduced")
_TABLE = ("DATA", "embedding table: float32 or float16, rank >= 1, rows looked up by INDICES")
_SCALARS = ("SCALARS", "float32 vector, one weight per entry of INDICES")
_INDICES = ("INDICES", "int32/int64 vector of row numbers into DATA")
_OUTPUT = ("OUTPUT", "(len(LENGTHS),) + DATA.shape[1:]; float32")


def _lengths(total):
    return ("LENGTHS", f"int32/int64 vector of non-negative segment sizes summing to {total}")


def _segment_shapes(ctx, data, *inputs):
    """Shape function: one row per segment, (len(LENGTHS),) + DATA.shape[1:], float32.
    DATA is input 0 and LENGTHS the last input in every op of this family."""
    lengths = inputs[-1]
    if data is None or lengths is None:
        return (None,)
    check_vector(ctx, lengths, len(inputs))
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    return (TensorSpec((lengths.size,) + data.shape[1:], np.float32),)


register_schema(OpSchema(
    "LengthsSum", num_inputs=2, num_outputs=1,
    infer_shapes=_segment_shapes, input_fillers=fillers.value_length(0, 1),
    inputs=[_DATA, _lengths("DATA.shape[0]")], outputs=[_OUTPUT],
    doc="OUTPUT[k] = DATA[s_k : s_k + LENGTHS[k]].sum(0), s_k = sum(LENGTHS[:k]).",
    gradient=_dense_maker("LengthsIndicesInGradientSumGradient")))

register_schema(OpSchema(
    "LengthsMean", num_inputs=2, num_outputs=1,
    infer_shapes=_segment_shapes, input_fillers=fillers.value_length(0, 1),
    inputs=[_DATA, _lengths("DATA.shape[0]")], outputs=[_OUTPUT],
    doc="OUTPUT[k] = DATA[s_k : s_k + LENGTHS[k]].mean(0); an empty segment gives zeros.",
    gradient=_dense_maker("LengthsIndicesInGradientMeanGradient")))

register_schema(OpSchema(
    "SparseLengthsSum", num_inputs=3, num_outputs=1,
    infer_shapes=_segment_shapes, input_fillers=fillers.value_key_length(0, 1, 2),
    inputs=[_TABLE, _INDICES, _lengths("len(INDICES)")], outputs=[_OUTPUT],
    doc="Gather + LengthsSum fused: OUTPUT[k] = DATA[INDICES[s_k : s_k + LENGTHS[k]]].sum(0) "
        "(nn.EmbeddingBag(mode='sum')).",
    gradient=_sparse_maker("SparseLengthsIndicesInGradientSumGradient")))

register_schema(OpSchema(
    "SparseLengthsMean", num_inputs=3, num_outputs=1,
    infer_shapes=_segment_shapes, input_fillers=fillers.value_key_length(0, 1, 2),
    inputs=[_TABLE, _INDICES, _lengths("len(INDICES)")], outputs=[_OUTPUT],
    doc="Gather + LengthsMean fused: OUTPUT[k] = DATA[INDICES[segment k]].mean(0); empty "
        "segments give zeros.",
    gradient=_sparse_maker("SparseLengthsIndicesInGradientMeanGradient")))

register_schema(OpSchema(
    "SparseLengthsWeightedSum", num_inputs=4, num_outputs=1,
    infer_shapes=_segment_shapes, input_fillers=fillers.value_key_length(0, 2, 3, weight=1),
    inputs=[_TABLE, _SCALARS, _INDICES, _lengths("len(INDICES)")], outputs=[_OUTPUT],
    args=[GRAD_ON_WEIGHTS],
    doc="OUTPUT[k] = sum over r in segment k of SCALARS[r] * DATA[INDICES[r]].",
    gradient=sparse_lengths_weighted_sum_gradient_maker))


# -- kernels ---------------------------------------------------------------------------
def segment_mean_scale(xp, sums, lengths):
    """Divide each segment's sum by its length; empty segments stay zero."""
    shape = (-1,) + (1,) * (sums.ndim - 1)
    counts = xp.maximum(lengths, 1).astype(np.float32).reshape(shape)
    return sums / counts


def _reduce(ctx, data, lengths, *, indices=None, scalars=None, mean=False, first=2):
    xp = ctx.xp
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    if indices is None:
        check_dtype(ctx, data, 0, (np.float32,), "float32")
        check_lengths(ctx, lengths, 1, int(data.shape[0]), "the number of DATA rows")
        out = segment_sum(xp, data, lengths)
    else:
        check_dtype(ctx, data, 0, (np.float32, np.float16), "float32 or float16")
        check_index_dtype(ctx, indices, first)
        check_vector(ctx, indices, first)
        if scalars is not None:
            check_scalars(ctx, scalars, 1, int(indices.shape[0]))
        out = checked_gather_segment_sum(ctx, data, indices, lengths, scalars, first)
    return (segment_mean_scale(xp, out, lengths) if mean else out,)


@register_kernel("LengthsSum", devices=("CPU", "CUDA"))
def lengths_sum(ctx, data, lengths):
    return _reduce(ctx, data, lengths)


@register_kernel("LengthsMean", devices=("CPU", "CUDA"))
def lengths_mean(ctx, data, lengths):
    return _reduce(ctx, data, lengths, mean=True)


@register_kernel("SparseLengthsSum", devices=("CPU", "CUDA"))
def sparse_lengths_sum(ctx, data, indices, lengths):
    return _reduce(ctx, data, lengths, indices=indices, first=1)


@register_kernel("SparseLengthsMean", devices=("CPU", "CUDA"))
def sparse_lengths_mean(ctx, data, indices, lengths):
    return _reduce(ctx, data, lengths, indices=indices, mean=True, first=1)


@register_kernel("SparseLengthsWeightedSum", devices=("CPU", "CUDA"))
def sparse_lengths_weighted_sum(ctx, data, scalars, indices, lengths):
    return _reduce(ctx, data, lengths, indices=indices, scalars=scalars, first=2)


# -- writing into a join's output (runtime/fusion.py): the bags of SparseLengthsSum and
# SparseLengthsWeightedSum straight into their columns of a Concat's output.
def _sum_into(op, out, data, *inputs):
    """OUTPUT computed into ``out`` by the C kernel, with every check of the kernel; False
    when it cannot (NumPy arrays it does not take: the op then runs as written)."""
    ctx = op.ctx
    scalars, indices, lengths = inputs if len(inputs) == 3 else (None,) + inputs
    first = len(inputs) - 1
    if ctx.xp is not np or out.ndim != 2 or data.ndim != 2:
        return False
    check_dtype(ctx, data, 0, (np.float32, np.float16), "float32 or float16")
    check_index_dtype(ctx, indices, first)
    check_vector(ctx, indices, first)
    if scalars is not None:
        check_scalars(ctx, scalars, 1, int(indices.shape[0]))
    return checked_gather_segment_sum(ctx, data, indices, lengths, scalars, first,
                                      out=out) is not None


for _type in ("SparseLengthsSum", "SparseLengthsWeightedSum"):
    fusion.register_writes_into(_type, _sum_into)

