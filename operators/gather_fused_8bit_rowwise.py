"""GatherFused8BitRowwise: Gather on a fused 8-bit row-wise table, rows dequantized.

OUTPUT[i] = DATA[INDICES[i], :D] * scale + bias (float32), i.e. Gather of
Fused8BitRowwiseQuantizedToFloat(DATA) without dequantizing the whole table --
what Caffe2's kernel computes (gather_fused_8bit_rowwise_op.h: a float
(len(INDICES), D) output, checked in its test against Gather on the
dequantized table).  Its schema's shape function claimed uint8 rows of D + 8
bytes instead; the kernel's float output is what a Caffe2 net received, so
that is what this op produces and what its shape inference says.  DATA must be
a matrix with more than 8 columns, INDICES a vector.  Caffe2 declared no
gradient for it.
"""

import numpy as np

from caffe2lite.operators._rowwise_8bit import (SCALE_BIAS_BYTES, check_fused_table,
                                                fused_dequantize)
from caffe2lite.operators._segments import (check_index_dtype, check_index_range, check_vector,
                                            take_checked)
from caffe2lite.runtime import OpSchema, TensorSpec, register_kernel, register_schema


def _shapes(ctx, data, indices):
    if data is None or indices is None:
        return (None,)
    check_fused_table(ctx, data)
    check_vector(ctx, indices, 1)
    return (TensorSpec((indices.shape[0], data.shape[1] - SCALE_BIAS_BYTES), np.float32),)


register_schema(OpSchema(
    "GatherFused8BitRowwise", num_inputs=2, num_outputs=1, infer_shapes=_shapes,
    cpu_fallback=True,  # no CuPy kernel: CUDA runs it on the host (GPUFallbackOp)
    inputs=[("DATA", "uint8 (N, D + 8) table from FloatToFused8BitRowwiseQuantized"),
            ("INDICES", "int32/int64 vector of row numbers into DATA")],
    outputs=[("OUTPUT", "float32 (len(INDICES), D): the gathered rows, dequantized")],
    doc="Gather on a fused 8-bit row-wise table: OUTPUT[i] = codes * scale + bias of row "
        "INDICES[i] (only the gathered rows are dequantized)."))


@register_kernel("GatherFused8BitRowwise", devices=("CPU",))
def gather_fused_8bit_rowwise(ctx, data, indices):
    check_fused_table(ctx, data)
    check_index_dtype(ctx, indices, 1)
    check_vector(ctx, indices, 1)
    rows = int(data.shape[0])
    check_index_range(ctx, indices, rows, 1, f"DATA with {rows} rows")
    return (fused_dequantize(take_checked(np, data, indices)),)
