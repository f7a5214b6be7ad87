"""RemoveDataBlocks: drop the listed rows of a tensor (Caffe2's remove_data_blocks_op.h).

shrunk_data = numpy.delete(data, unique(indices), axis=0); indices are int32/int64
in [0, data.shape[0]) and may repeat; an empty indices vector of any type removes
nothing, as in Caffe2.
"""

import numpy as np

from caffe2lite.operators._train_common import check_index_vector
from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "RemoveDataBlocks", num_inputs=2, num_outputs=1,
    inputs=[("data", "tensor of rank >= 1 whose rows are blocks"),
            ("indices", "int32/int64 vector: the blocks to remove")],
    outputs=[("shrunk_data", "data without those rows, the rest in order")],
    doc="numpy.delete(data, numpy.unique(indices), axis=0).", gradient=NO_GRADIENT))


@register_kernel("RemoveDataBlocks", devices=("CPU",))
def remove_data_blocks(ctx, data, indices):
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    if indices.ndim != 1:
        ctx.fail(f"{ctx.input_label(1)} must be a vector, got shape {tuple(indices.shape)}")
    if indices.shape[0] == 0:  # Caffe2 copied data before looking at the indices' type
        return (data.copy(),)
    flat = check_index_vector(ctx, 1, indices, data.shape[0], 0)
    keep = np.ones(data.shape[0], np.bool_)
    keep[flat] = False
    return (data[keep],)
