"""Conditional (caffe2/operators/conditional_op.cc): row-wise select between two tensors.

DataO[i] = DataT[i] if Condition[i] else DataF[i] along the first axis; Condition
is a bool vector with one entry per row, DataT and DataF have the same shape and
type.  No gradient (Caffe2's NO_GRADIENT).
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema, same_as

register_schema(OpSchema(
    "Conditional", num_inputs=3, num_outputs=1, infer_shapes=same_as(1),
    inputs=[("Condition", "Boolean tensor to select DataT or DataF"),
            ("DataT", "Data to use when True"), ("DataF", "Data to use when False")],
    outputs=[("DataO", "Output data after applying ConditionalOp")],
    doc="Given a 1-D tensor of boolean values, apply conditional operator along the first "
        "dimension of DataT and DataF and return DataO. Note, DataT and DataF must have the "
        "exact same shape and type.",
    gradient=NO_GRADIENT))


@register_kernel("Conditional", devices=("CPU", "CUDA"))
def conditional(ctx, condition, data_t, data_f):
    xp = ctx.xp
    if getattr(condition, "dtype", None) != np.bool_ or condition.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be a bool vector, got "
                 f"{getattr(condition, 'dtype', type(condition).__name__)}"
                 f"{list(getattr(condition, 'shape', ()))}")
    for i, data in ((1, data_t), (2, data_f)):
        if not hasattr(data, "shape") or data.ndim < 1:
            ctx.fail(f"{ctx.input_label(i)} must be a tensor of rank >= 1")
    if data_t.shape[0] != condition.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} has {data_t.shape[0]} rows but {ctx.input_label(0)} "
                 f"{condition.shape[0]} entries")
    if data_f.shape != data_t.shape or data_f.dtype != data_t.dtype:
        ctx.fail(f"{ctx.input_label(2)} is {data_f.dtype}{list(data_f.shape)} but "
                 f"{ctx.input_label(1)} {data_t.dtype}{list(data_t.shape)}: they must have the "
                 f"exact same shape and type")
    mask = condition.reshape((-1,) + (1,) * (data_t.ndim - 1))
    return (xp.where(mask, data_t, data_f),)
