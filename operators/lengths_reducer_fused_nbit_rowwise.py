"""Embedding bags over N-bit fused tables, and over tables with pruned rows.

``SparseLengths{Sum,WeightedSum,Mean}Fused{2,4}BitRowwise``: SparseLengthsSum /
WeightedSum / Mean where DATA comes from FloatToFused{2,4}BitRowwiseQuantized (each
row: packed codes, then float16 scale and bias).  Inputs DATA, [WEIGHTS], INDICES,
LENGTHS, in Caffe2's order.

``SparseLengths{Sum,WeightedSum,Mean}{2,4,8}BitRowwiseSparse``: the same over a
pruned table, with a last input COMPRESSED_INDICES_MAPPING (int32): INDICES index
the mapping, which gives the row of DATA, or -1 for a pruned row that adds nothing
(a Mean still divides by the full length).  A mapping of exactly [0] means the
table is not pruned (INDICES are rows of DATA).  The 8-bit ones read the 8-bit
fused layout (float32 scale and bias).

``SparseLengthsSumSparseLookup`` does the mapping alone: INDICES, LENGTHS,
COMPRESSED_INDICES_MAPPING, [WEIGHTS] -> the mapped indices without the pruned
ones, the bags' new lengths (int32), [their weights].

Each looked-up row is (w * scale) * code + (w * bias), added to its bag left to right
from 0, and a Mean bag is multiplied by 1.0f / length -- the arithmetic of the 8-bit
lookups here (operators/_rowwise_8bit.py), so an N-bit table and its fake-quantized
8-bit twin (FloatToFused{2,4}BitFakeRowwiseQuantized) give the same bits, as
Caffe2's test asks.  Only the looked-up rows are unpacked.  No gradients (Caffe2's
NO_GRADIENT).
"""

import numpy as np

from caffe2lite.operators._rowwise_8bit import (SCALE_BIAS_BYTES, bag_means, check_fused_table,
                                                check_lookup, numpy_quantized_segment_sum)
from caffe2lite.operators._rowwise_nbit import HALF_SB_BYTES, decoder, per_byte
from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_index_range,
                                            check_lengths, check_scalars, check_vector,
                                            repeat_segments)
from caffe2lite.runtime import (NO_GRADIENT, OpSchema, TensorSpec, fillers, register_kernel,
                                register_schema)

_KINDS = {"Sum": (False, False), "WeightedSum": (True, False), "Mean": (False, True)}
FUSED = {f"SparseLengths{kind}Fused{b}BitRowwise": (b, weighted, mean)
         for b in (2, 4) for kind, (weighted, mean) in _KINDS.items()}
PRUNED = {f"SparseLengths{kind}{b}BitRowwiseSparse": (b, weighted, mean)
          for b in (2, 4, 8) for kind, (weighted, mean) in _KINDS.items()}
_WHAT = {"Sum": "SparseLengthsSum", "WeightedSum": "SparseLengthsWeightedSum",
         "Mean": "SparseLengthsMean"}


def _tail(bits):
    return SCALE_BIAS_BYTES if bits == 8 else HALF_SB_BYTES


def _width(data, bits):
    return (int(data.shape[1]) - _tail(bits)) * per_byte(bits)


def _inputs(bits, weighted, pruned):
    data = ("DATA", f"uint8 tensor obtained with operator FloatToFused{bits}BitRowwiseQuantized")
    out = [data] + ([("WEIGHTS", "float32 vector of weights to scale rows of DATA with "
                                 "before reduction, one per entry of INDICES")]
                    if weighted else [])
    out += [("INDICES", "int32/int64 vector of " + ("positions in COMPRESSED_INDICES_MAPPING"
                                                    if pruned else "rows of DATA")),
            ("LENGTHS", "int32/int64 vector of bag sizes summing to len(INDICES)")]
    if pruned:
        out.append(("COMPRESSED_INDICES_MAPPING", "int32 vector: the row of DATA of each "
                    "uncompressed index, -1 for a pruned row ([0]: nothing pruned)"))
    return out


def _shapes(ctx, data, *inputs):
    bits = (FUSED.get(ctx.op_def.type) or PRUNED[ctx.op_def.type])[0]
    lengths = inputs[-2] if ctx.op_def.type in PRUNED else inputs[-1]
    if data is None or lengths is None or data.ndim != 2 or lengths.ndim != 1:
        return (None,)
    return (TensorSpec((lengths.shape[0], _width(data, bits)), np.float32),)


for _table, _pruned in ((FUSED, False), (PRUNED, True)):
    for _type, (_bits, _weighted, _mean) in _table.items():
        _kind = next(k for k, v in _KINDS.items() if v == (_weighted, _mean))
        _n = 3 + _weighted + _pruned
        register_schema(OpSchema(
            _type, num_inputs=_n, num_outputs=1, infer_shapes=_shapes,
            input_fillers=(fillers.value_key_length(0, 1 + _weighted, 2 + _weighted,
                                                    weight=1 if _weighted else None)
                           if not _pruned else None),
            cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
            inputs=_inputs(_bits, _weighted, _pruned), outputs=[("output", "float32 "
                                                                 "(len(LENGTHS), D)")],
            doc=f"Performs the same operation as {_WHAT[_kind]}, but operating on {_bits}-bit "
                f"rowwise quantized matrices with fused storage (each row: quantized values, "
                f"then {'4-byte fp32' if _bits == 8 else '2-byte fp16'} scale and bias)"
                + (", and where rows are pruned (COMPRESSED_INDICES_MAPPING)." if _pruned
                   else "."),
            gradient=NO_GRADIENT))


def _check_table(ctx, data, bits):
    check_fused_table(ctx, data, bits=bits, tail=_tail(bits))


def _weights(ctx, inputs, weighted, first):
    if not weighted:
        return None
    indices = inputs[first]
    check_vector(ctx, indices, first)
    check_scalars(ctx, inputs[1], 1, int(indices.shape[0]))
    return inputs[1]


def sparse_lengths_fused_nbit_rowwise(ctx, *inputs):
    bits, weighted, mean = FUSED[ctx.op_def.type]
    data, indices, lengths = inputs[0], inputs[-2], inputs[-1]
    first = 1 + weighted
    _check_table(ctx, data, bits)
    weights = _weights(ctx, inputs, weighted, first)
    check_lookup(ctx, indices, lengths, first, int(data.shape[0]))
    width = _width(data, bits)
    return (numpy_quantized_segment_sum(data, width, None, indices, lengths, weights, mean,
                                        decode=decoder(bits, width)),)


def _unpruned(ctx, mapping, indices, lengths, weights, first, rows=None):
    """(indices, lengths, weights) with INDICES (input ``first``) mapped through the
    int32 COMPRESSED_INDICES_MAPPING (input first + 2) and the pruned (-1) ones dropped.
    ``rows``: also check that the mapped indices are rows of a DATA with that many."""
    check_lookup(ctx, indices, lengths, first, int(mapping.shape[0]))
    mapped = mapping[indices]
    kept = mapped != -1
    if rows is not None:
        check_index_range(ctx, mapped[kept], rows, first + 2, f"DATA with {rows} rows")
    if kept.all():
        return mapped.astype(indices.dtype), lengths, weights
    bag = repeat_segments(np, np.arange(lengths.shape[0]), lengths)
    new_lengths = np.bincount(bag[kept], minlength=lengths.shape[0]).astype(lengths.dtype)
    return (mapped[kept].astype(indices.dtype), new_lengths,
            None if weights is None else weights[kept])


def _check_mapping(ctx, mapping, i):
    check_dtype(ctx, mapping, i, (np.int32,), "int32")
    check_vector(ctx, mapping, i)
    if mapping.size and int(mapping.min()) < -1:
        pos = int((mapping < -1).argmax())
        ctx.fail(f"{ctx.input_label(i)}: element {pos} is {int(mapping[pos])}; expected a row "
                 f"of DATA or -1 (pruned)")


def sparse_lengths_nbit_rowwise_sparse(ctx, *inputs):
    bits, weighted, mean = PRUNED[ctx.op_def.type]
    data, indices, lengths, mapping = inputs[0], inputs[-3], inputs[-2], inputs[-1]
    first = 1 + weighted
    _check_table(ctx, data, bits)
    weights = _weights(ctx, inputs, weighted, first)
    _check_mapping(ctx, mapping, first + 2)
    rows = int(data.shape[0])
    if mapping.shape[0] == 1 and int(mapping[0]) == 0:  # Caffe2's "not pruned" marker
        check_lookup(ctx, indices, lengths, first, rows)
        kept_indices, kept_lengths, kept_weights = indices, lengths, weights
    else:
        kept_indices, kept_lengths, kept_weights = _unpruned(ctx, mapping, indices, lengths,
                                                             weights, first, rows)
    width = _width(data, bits)
    out = numpy_quantized_segment_sum(data, width, None, kept_indices, kept_lengths,
                                      kept_weights, False,
                                      decode=None if bits == 8 else decoder(bits, width))
    return (bag_means(out, lengths) if mean else out,)


for _type in FUSED:
    register_kernel(_type, devices=("CPU",))(sparse_lengths_fused_nbit_rowwise)
for _type in PRUNED:
    register_kernel(_type, devices=("CPU",))(sparse_lengths_nbit_rowwise_sparse)


register_schema(OpSchema(
    "SparseLengthsSumSparseLookup", num_inputs=(3, 4), num_outputs=(2, 3),
    num_inputs_outputs=lambda n_in, n_out: n_out == n_in - 1,
    inputs=[("INDICES", "int32/int64 vector of positions in COMPRESSED_INDICES_MAPPING"),
            ("LENGTHS", "int32/int64 vector of bag sizes summing to len(INDICES)"),
            ("COMPRESSED_INDICES_MAPPING", "int32 vector: the compressed index of each "
                                           "uncompressed one, -1 for a pruned one"),
            ("WEIGHTS", "optional float32 vector, one weight per entry of INDICES")],
    outputs=[("output_indices", "the mapped indices, pruned ones left out (INDICES' type)"),
             ("output_lengths", "int32: each bag's length without its pruned indices"),
             ("output_weights", "the kept entries' weights (with WEIGHTS)")],
    doc="Maps INDICES through COMPRESSED_INDICES_MAPPING and drops those that map to -1, "
        "fixing up LENGTHS (and WEIGHTS): the lookup SparseLengths*{2,4,8}BitRowwiseSparse "
        "does, as its own step.",
    gradient=NO_GRADIENT))


@register_kernel("SparseLengthsSumSparseLookup", devices=("CPU",))
def sparse_lengths_sum_sparse_lookup(ctx, indices, lengths, mapping, weights=None):
    check_index_dtype(ctx, indices, 0)
    check_vector(ctx, indices, 0)
    check_lengths(ctx, lengths, 1, int(indices.shape[0]), "the number of INDICES")
    _check_mapping(ctx, mapping, 2)
    if weights is not None:
        check_scalars(ctx, weights, 3, int(indices.shape[0]))
    new_indices, new_lengths, new_weights = _unpruned(ctx, mapping, indices, lengths,
                                                      weights, 0)
    out = (new_indices, new_lengths.astype(np.int32))
    return out + ((new_weights,) if weights is not None else ())
