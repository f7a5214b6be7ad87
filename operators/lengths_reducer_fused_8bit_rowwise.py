"""SparseLengths{Sum,WeightedSum,Mean}Fused8BitRowwise: embedding bags over a fused 8-bit table.

The same operation as SparseLengthsSum / WeightedSum / Mean, but DATA is a
uint8 table from FloatToFused8BitRowwiseQuantized (each row: D codes, then
float32 scale and bias).  For bag k over positions p:

    OUTPUT[k] = sum_p (w_p * scale_r) * DATA[r, :D] + (w_p * bias_r),  r = INDICES[p]

(w_p = WEIGHTS[p], or 1), summed left to right from 0 in float32; the Mean op
then multiplies by 1.0f / LENGTHS[k] (empty bags stay 0).  Only the looked-up
rows are dequantized -- the table is never expanded.  Inputs keep Caffe2's
order: DATA, [WEIGHTS,] INDICES, LENGTHS.  No gradients (Caffe2's NO_GRADIENT).

Engines: NUMPY (also the default "") and NATIVE (caffe2lite/_native/rowwise_8bit.c,
preferred when built): the same bits.
"""

import numpy as np

from caffe2lite.operators._rowwise_8bit import (SCALE_BIAS_BYTES, check_fused_table,
                                                quantized_segment_sum, register_lookup_engines)
from caffe2lite.operators._segments import check_scalars, check_vector
from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, fillers, register_schema

_DATA = ("DATA", "uint8 (N, D + 8) table from FloatToFused8BitRowwiseQuantized")
_WEIGHTS = ("WEIGHTS", "float32 vector, one weight per entry of INDICES")
_INDICES = ("INDICES", "int32/int64 vector of row numbers into DATA")
_LENGTHS = ("LENGTHS", "int32/int64 vector of non-negative bag sizes summing to len(INDICES)")
_OUTPUT = ("output", "float32 (len(LENGTHS), D)")

OPS = {  # op type: (weighted, mean)
    "SparseLengthsSumFused8BitRowwise": (False, False),
    "SparseLengthsWeightedSumFused8BitRowwise": (True, False),
    "SparseLengthsMeanFused8BitRowwise": (False, True),
}


def _shapes(ctx, data, *inputs):
    lengths = inputs[-1]
    if data is None or lengths is None:
        return (None,)
    check_vector(ctx, lengths, len(inputs))
    check_fused_table(ctx, data)
    return (TensorSpec((lengths.shape[0], data.shape[1] - SCALE_BIAS_BYTES), np.float32),)


_DOCS = {
    "SparseLengthsSumFused8BitRowwise": "SparseLengthsSum on a fused 8-bit row-wise table: "
    "OUTPUT[k] = sum over bag k of scale_r * DATA[r, :D] + bias_r, r = INDICES[p].",
    "SparseLengthsWeightedSumFused8BitRowwise": "SparseLengthsWeightedSum on a fused 8-bit "
    "table: each looked-up row is (WEIGHTS[p] * scale_r) * codes + WEIGHTS[p] * bias_r.",
    "SparseLengthsMeanFused8BitRowwise": "SparseLengthsMean on a fused 8-bit table: the bag "
    "sum times 1.0f / LENGTHS[k]; empty bags give zeros.",
}

for _type, (_weighted, _mean) in OPS.items():
    register_schema(OpSchema(
        _type, num_inputs=4 if _weighted else 3, num_outputs=1, infer_shapes=_shapes,
        input_fillers=(fillers.value_key_length(0, 2, 3, weight=1) if _weighted
                       else fillers.value_key_length(0, 1, 2)),
        cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
        inputs=[_DATA] + ([_WEIGHTS] if _weighted else []) + [_INDICES, _LENGTHS],
        outputs=[_OUTPUT], doc=_DOCS[_type], gradient=NO_GRADIENT))


def _reduce(ctx, inputs, native):
    weighted, mean = OPS[ctx.op_def.type]
    data, indices, lengths = inputs[0], inputs[-2], inputs[-1]
    first = 2 if weighted else 1
    check_fused_table(ctx, data)
    weights = None
    if weighted:
        weights = inputs[1]
        check_vector(ctx, indices, first)
        check_scalars(ctx, weights, 1, int(indices.shape[0]))
    width = int(data.shape[1]) - SCALE_BIAS_BYTES
    return (quantized_segment_sum(ctx, data, width, None, indices, lengths, weights, mean,
                                  first, native),)


register_lookup_engines(OPS, _reduce)
