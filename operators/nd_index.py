"""ScatterND and GatherND: indexing by coordinate tuples (ONNX's; Caffe2 had neither).

INDICES has shape (..., k): each row is the coordinates of a slice of DATA's
first k dims.  GatherND returns those slices (after ``batch_dims`` leading
dims that DATA and INDICES share, each batch indexing its own DATA);
ScatterND writes UPDATES (shape INDICES.shape[:-1] + DATA.shape[k:]) to them,
or combines them with ``reduction`` (add, mul, max, min; duplicates
included).  Negative coordinates count from the end; out of range is an error.
"""

import numpy as np

from caffe2lite.operators.element_index import check_reduction, write_or_combine
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema, same_as)


def _coordinates(ctx, data, indices, first_dim=0):
    """The coordinate arrays (one per indexed dim), checked and made non-negative."""
    if getattr(indices, "dtype", None) is None or indices.dtype.kind not in "iu":
        ctx.fail(f"{ctx.input_label(1)} must hold int32/int64 coordinates")
    if getattr(data, "ndim", 0) < 1 or indices.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} and {ctx.input_label(1)} must have rank >= 1")
    k = indices.shape[-1]
    if not 1 <= k <= data.ndim - first_dim:
        ctx.fail(f"{ctx.input_label(1)}'s last dim ({k}) must be in [1, "
                 f"{data.ndim - first_dim}] for {ctx.input_label(0)} {tuple(data.shape)}")
    dims = ctx.xp.asarray(data.shape[first_dim:first_dim + k])
    if indices.size and (bool((indices < -dims).any()) or bool((indices >= dims).any())):
        ctx.fail(f"{ctx.input_label(1)} holds coordinates outside "
                 f"{tuple(data.shape[first_dim:first_dim + k])}")
    fixed = ctx.xp.where(indices < 0, indices + dims, indices)
    return [fixed[..., i] for i in range(k)]


register_schema(OpSchema(
    "ScatterND", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=same_as(0),
    inputs=[("DATA", "tensor to update"), ("INDICES", "int coordinates, shape (..., k)"),
            ("UPDATES", "INDICES.shape[:-1] + DATA.shape[k:], DATA's dtype")],
    outputs=[("OUTPUT", "DATA with the slices at INDICES replaced (or combined)")],
    args=[Arg("reduction", "string", "none", "none (write; duplicates: one wins), add, mul, "
                                            "max or min (combine, duplicates included)")],
    doc="OUTPUT = DATA; OUTPUT[tuple(INDICES[j])] = UPDATES[j] for each index row j.",
    gradient=NO_GRADIENT))


@register_kernel("ScatterND", devices=("CPU",))
def scatter_nd(ctx, data, indices, updates):
    reduction = check_reduction(ctx)
    where = tuple(_coordinates(ctx, data, indices))
    expected = tuple(indices.shape[:-1]) + tuple(data.shape[indices.shape[-1]:])
    if getattr(updates, "shape", None) != expected or updates.dtype != data.dtype:
        ctx.fail(f"{ctx.input_label(2)} must be {data.dtype} {expected}, got "
                 f"{getattr(updates, 'dtype', '?')} {tuple(getattr(updates, 'shape', ()))}")
    return (write_or_combine(data, where, updates, reduction),)


def _gather_nd_shapes(ctx, data, indices):
    if data is None or indices is None or not indices.shape:
        return (None,)
    b = ctx.args["batch_dims"]
    return (TensorSpec(indices.shape[:-1] + data.shape[b + indices.shape[-1]:], data.dtype),)


register_schema(OpSchema(
    "GatherND", num_inputs=2, num_outputs=1, infer_shapes=_gather_nd_shapes,
    inputs=[("DATA", "tensor of rank >= 1"),
            ("INDICES", "int coordinates, shape (batch..., ..., k)")],
    outputs=[("OUTPUT", "INDICES.shape[:-1] + DATA.shape[batch_dims + k:]")],
    args=[Arg("batch_dims", "int", 0, "leading dims DATA and INDICES share; each batch "
                                      "indexes its own slice of DATA")],
    doc="OUTPUT[j] = DATA[b][tuple(INDICES[j])] per batch b.",
    gradient=NO_GRADIENT))


@register_kernel("GatherND", devices=("CPU", "CUDA"))
def gather_nd(ctx, data, indices):
    b = ctx.args["batch_dims"]
    if b < 0 or b >= min(getattr(data, "ndim", 0), getattr(indices, "ndim", 0)):
        ctx.fail(f"argument 'batch_dims' = {b} must be below both ranks")
    if tuple(data.shape[:b]) != tuple(indices.shape[:b]):
        ctx.fail(f"the first {b} dims of {ctx.input_label(0)} {tuple(data.shape)} and "
                 f"{ctx.input_label(1)} {tuple(indices.shape)} must match (batch_dims)")
    coords = _coordinates(ctx, data, indices, first_dim=b)
    xp = ctx.xp
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat = data.reshape((batch,) + tuple(data.shape[b:]))
    rows = [c.reshape(batch, -1) for c in coords]
    which = xp.arange(batch).reshape(batch, 1)
    picked = flat[(which, *rows)]
    return (picked.reshape(tuple(indices.shape[:-1]) + tuple(data.shape[b + len(coords):])),)
