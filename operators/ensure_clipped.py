"""EnsureClipped (caffe2/operators/ensure_clipped_op.*): clip a parameter into [min, max].

With one input the whole tensor is clipped (float32; ``min`` / ``max`` default to the
float range, i.e. no bound).  With (param, indices, grad) -- a sparse update -- only
the rows ``indices`` names are clipped, in place (the output must be param, as
Caffe2 required); grad only fixes the row width (indices.shape + param.shape[1:]).
SHOULD_NOT_DO_GRADIENT, as in Caffe2.
"""

import numpy as np

from caffe2lite.operators._train_common import check_index_vector, owned
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.finfo(np.float32)

register_schema(OpSchema(
    "EnsureClipped", num_inputs={1, 3}, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("param", "Parameters to be normalized"),
            ("indices", "Sparse indices, only needed for sparse param"),
            ("grad", "Gradient computed, only needed for sparse param")],
    outputs=[("output_param", "param ensured to be clipped within range")],
    args=[Arg("min", "float", None, "lower bound (default: none)"),
          Arg("max", "float", None, "upper bound (default: none)")],
    doc="Given a tensor, apply clip after gradient is applied; when the param is sparse as "
        "indicated by valid indices and grad, in-place is required",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _bounds(ctx):
    low, high = ctx.args["min"], ctx.args["max"]
    return (np.float32(F32.min if low is None else low),
            np.float32(F32.max if high is None else high))


@register_kernel("EnsureClipped", devices=("CPU", "CUDA"))
def ensure_clipped(ctx, param, indices=None, grad=None):
    xp = ctx.xp
    if getattr(param, "dtype", None) != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be a float32 tensor, got "
                 f"{getattr(param, 'dtype', type(param).__name__)}")
    low, high = _bounds(ctx)
    if indices is None:
        return (xp.minimum(xp.maximum(param, low), high),)
    if ctx.op_def.output[0] != ctx.op_def.input[0]:
        ctx.fail(f"a sparse EnsureClipped (with indices and grad) works in place: its output "
                 f"must be {ctx.input_label(0)}, got blob '{ctx.op_def.output[0]}'")
    if param.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1 (rows to clip)")
    idx = check_index_vector(ctx, 1, indices, param.shape[0], 0)
    block = int(np.prod(param.shape[1:], dtype=np.int64))
    if not hasattr(grad, "size") or grad.size != idx.size * block:
        ctx.fail(f"{ctx.input_label(2)} has shape {tuple(getattr(grad, 'shape', ()))}, "
                 f"expected {idx.size} rows of {tuple(param.shape[1:])} (one per index)")
    out = owned(param)
    rows = out.reshape(param.shape[0], block)
    rows[idx] = xp.minimum(xp.maximum(rows[idx], low), high)
    return (out,)
