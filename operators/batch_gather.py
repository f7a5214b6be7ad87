"""BatchGather (Gather along axis 1) and BatchGatherGradient (its dense scatter-add).

BatchGather: OUTPUT = numpy.take(DATA, INDICES, axis=1); DATA's first dim is
the batch.  BatchGatherGradient is also Gather's gradient when axis != 0, so
it reads ``axis`` (default 1) and ``match_outer`` like Gather does.
"""

import math

import numpy as np

from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_index_range,
                                            scatter_add)
from caffe2lite.operators.gather import gather_along, normalized_axis
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def batch_gather_gradient_maker(op_def, g_output):
    """Caffe2's GetBatchGatherGradient: BatchGatherGradient(DATA, INDICES, dOUTPUT)."""
    data = op_def.input[0]
    grad = dense_output_grad(op_def, g_output)
    grad_op = make_operator("BatchGatherGradient", [data, op_def.input[1], grad],
                            [grad_name(data)])
    return [grad_op], [grad_name(data), None]


register_schema(OpSchema(
    "BatchGather", num_inputs=2, num_outputs=1,
    inputs=[("DATA", "tensor of rank r >= 2; dim 0 is the batch"),
            ("INDICES", "int32/int64 tensor of any rank q, indices into DATA's dim 1")],
    outputs=[("OUTPUT", "DATA.shape[:1] + INDICES.shape + DATA.shape[2:] (rank q + r - 1)")],
    args=[Arg("match_outer", "bool", False,
              "INDICES' first dim is the batch: batch row b gathers with INDICES[b] only")],
    doc="Batch gather: numpy.take(DATA, INDICES, axis=1). Indices are not wrapped: a "
        "negative index is an error.",
    gradient=batch_gather_gradient_maker))

register_schema(OpSchema(
    "BatchGatherGradient", num_inputs=3, num_outputs=1,
    inputs=[("DATA", "the forward op's DATA (only its shape and dtype are read)"),
            ("INDICES", "the forward op's INDICES"),
            ("GRAD", "gradient of the forward OUTPUT")],
    outputs=[("DATA_GRAD", "zeros shaped like DATA with GRAD's slices added at INDICES "
                           "along `axis` (duplicates add up)")],
    args=[Arg("axis", "int", 1, "axis the forward gather used (Gather passes its own)"),
          Arg("match_outer", "bool", False, "the forward op's match_outer"),
          Arg("wrap_indices", "bool", None, "the forward op's wrap_indices (default false)"),
          Arg("dense_gradient", "bool", False, "copied from Gather; ignored")],
    doc="Gradient of BatchGather, and of Gather along axis != 0: a dense scatter-add of "
        "GRAD into a zero tensor shaped like DATA."))


@register_kernel("BatchGather", devices=("CPU", "CUDA"))
def batch_gather(ctx, data, indices):
    if data.ndim < 2:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 2 (batch first), "
                 f"got shape {tuple(data.shape)}")
    return (gather_along(ctx, data, indices, 1, ctx.args["match_outer"], False),)


@register_kernel("BatchGatherGradient", devices=("CPU", "CUDA"))
def batch_gather_gradient(ctx, data, indices, grad):
    xp = ctx.xp
    check_index_dtype(ctx, indices, 1)
    check_dtype(ctx, grad, 2, FLOAT_DTYPES, "a float tensor")
    if grad.dtype != data.dtype:
        ctx.fail(f"{ctx.input_label(2)} has dtype {grad.dtype}, "
                 f"expected DATA's dtype {data.dtype}")
    axis = normalized_axis(ctx, data, ctx.args["axis"])
    match_outer = ctx.args["match_outer"]
    dim = int(data.shape[axis])
    if dim == 0:
        return (xp.zeros(data.shape, data.dtype),)
    outer, inner = tuple(data.shape[:axis]), tuple(data.shape[axis + 1:])
    if match_outer:
        if not (axis >= 1 and tuple(indices.shape[:axis]) == outer):
            ctx.fail(f"with match_outer, {ctx.input_label(1)} must start with DATA's outer "
                     f"dims {outer} (axis {axis} >= 1), got shape {tuple(indices.shape)}")
        gathered = outer + tuple(indices.shape[axis:]) + inner
    else:
        gathered = outer + tuple(indices.shape) + inner
    if tuple(grad.shape) != gathered:
        ctx.fail(f"{ctx.input_label(2)} has shape {tuple(grad.shape)}, expected the forward "
                 f"output's shape {gathered}")
    wrap = bool(ctx.args["wrap_indices"])
    check_index_range(ctx, indices, dim, 1, f"DATA's axis {axis} of size {dim}",
                      low=-dim if wrap else 0)
    if wrap:
        indices = xp.where(indices < 0, indices + dim, indices)
    rows, block = math.prod(outer), math.prod(inner)
    if match_outer:
        out = xp.zeros((rows, dim, block), data.dtype)
        flat_idx = indices.reshape(rows, -1)
        scatter_add(xp, out, (xp.arange(rows)[:, None], flat_idx),
                  grad.reshape(rows, flat_idx.shape[1], block))
        return (out.reshape(data.shape),)
    # Scatter whole (outer x block) planes: the index axis goes first for np.add.at.
    planes = grad.reshape(rows, indices.size, block).transpose(1, 0, 2)
    out = xp.zeros((dim, rows, block), data.dtype)
    scatter_add(xp, out, indices.reshape(-1), planes)
    return (xp.ascontiguousarray(out.transpose(1, 0, 2)).reshape(data.shape),)
