"""PackRNNSequence and UnpackRNNSequence: sequences <-> a time-major padded tensor
(Caffe2's pack_rnn_sequence_op.h), each the other's gradient.

PackRNNSequence(values, lengths): sequence c (lengths[c] consecutive rows of values)
becomes column c of a (max(lengths), len(lengths), ...) tensor, zero after its end;
UnpackRNNSequence takes those rows back out.  Lengths are int32.
"""

import numpy as np

from caffe2lite.operators._segments import position_in_segment
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (OpSchema, check_allocation, grad_name, make_operator,
                                register_kernel, register_schema)


def _inverse_maker(inverse):
    def maker(op_def, g_output):
        d_values = grad_name(op_def.input[0])
        return [make_operator(inverse, [g_output[0], op_def.input[1]], [d_values])], \
            [d_values, None]
    maker.__name__ = f"gradient_maker_{inverse}"
    return maker


register_schema(OpSchema(
    "PackRNNSequence", num_inputs=2, num_outputs=1,
    inputs=[("values", "the rows of all sequences, one after another"),
            ("lengths", "int32 length of each sequence")],
    outputs=[("output", "(max(lengths), len(lengths), ...): sequence c in column c")],
    doc="Packs sequences into a zero-padded time-major tensor.",
    gradient=_inverse_maker("UnpackRNNSequence")))

register_schema(OpSchema(
    "UnpackRNNSequence", num_inputs=2, num_outputs=1,
    inputs=[("values", "(T, N, ...) time-major tensor"),
            ("lengths", "int32 length of each of the N sequences (<= T)")],
    outputs=[("output", "(sum(lengths), ...): every sequence's rows, one after another")],
    doc="The inverse of PackRNNSequence.", gradient=_inverse_maker("PackRNNSequence")))


def _slots(ctx, lengths):
    """(time step, sequence) of every row of the unpacked sequences."""
    sequence, step = position_in_segment(ctx.xp, lengths.astype(np.int64))
    return step, sequence


@register_kernel("PackRNNSequence", devices=("CPU", "CUDA"))
def pack_rnn_sequence(ctx, values, lengths):
    lengths = check_lengths(ctx, 1, lengths)
    total = int(lengths.sum(dtype=np.int64))
    if values.ndim < 1 or values.shape[0] != total:
        ctx.fail(f"{ctx.input_label(0)} {tuple(values.shape)} must have sum(lengths) = "
                 f"{total} rows")
    steps = int(lengths.max()) if lengths.size else 0
    shape = (steps, lengths.size) + values.shape[1:]
    check_allocation(ctx, shape, values.itemsize, ctx.input_label(1))
    out = ctx.xp.zeros(shape, values.dtype)
    out[_slots(ctx, lengths)] = values
    return (out,)


@register_kernel("UnpackRNNSequence", devices=("CPU", "CUDA"))
def unpack_rnn_sequence(ctx, values, lengths):
    lengths = check_lengths(ctx, 1, lengths)
    if values.ndim < 2 or values.shape[1] != lengths.size or \
            (lengths.size and int(lengths.max()) > values.shape[0]):
        ctx.fail(f"{ctx.input_label(0)} {tuple(values.shape)} must be (T, {lengths.size}, "
                 f"...) with T >= every length")
    return (values[_slots(ctx, lengths)],)
