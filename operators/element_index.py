"""Scatter and GatherElements: per-element indexing along one axis.

Scatter is Caffe2's (utility_ops): for a 3-D DATA and axis 1,
``OUTPUT[i][INDICES[i][j][k]][k] = UPDATES[i][j][k]``, the rest of OUTPUT being
DATA (ONNX's ScatterElements); ``reduction`` (caffe2lite's, ONNX's) combines
instead of overwriting: add, mul, max or min, duplicates included.
GatherElements is numpy.take_along_axis (ONNX's; Caffe2 had none).  Indices
may be negative (counted from the end, as ONNX allows); out of range is an
error naming the op.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema, same_as)

REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum,
              "min": np.minimum}


def _axis(ctx, data, indices, what):
    if getattr(data, "ndim", 0) < 1 or getattr(indices, "dtype", None) is None:
        ctx.fail(f"{ctx.input_label(0)} must be a tensor of rank >= 1")
    if indices.dtype.kind not in "iu":
        ctx.fail(f"{ctx.input_label(1)} must hold int32/int64 indices, got {indices.dtype}")
    if indices.ndim != data.ndim:
        ctx.fail(f"{ctx.input_label(1)} {tuple(indices.shape)} must have the rank of "
                 f"{ctx.input_label(0)} {tuple(data.shape)}")
    axis = ctx.args["axis"]
    if not -data.ndim <= axis < data.ndim:
        ctx.fail(f"axis {axis} is out of range for rank {data.ndim}")
    axis %= data.ndim
    size = data.shape[axis]
    if indices.size and (int(indices.min()) < -size or int(indices.max()) >= size):
        ctx.fail(f"{ctx.input_label(1)} holds indices outside [-{size}, {size - 1}] "
                 f"({what} along axis {axis} of size {size})")
    return axis, ctx.xp.where(indices < 0, indices + size, indices)


def check_reduction(ctx):
    """The checked ``reduction`` argument."""
    reduction = ctx.args["reduction"]
    if reduction not in REDUCTIONS:
        ctx.fail(f"argument 'reduction' must be one of {', '.join(REDUCTIONS)}, got "
                 f"'{reduction}'")
    return reduction


def write_or_combine(data, where, updates, reduction):
    """A copy of DATA with UPDATES written at ``where`` (an index tuple), or combined there
    by the reduction's ufunc, every duplicate included (ufunc.at)."""
    out = data.copy()
    ufunc = REDUCTIONS[reduction]
    if ufunc is None:
        out[where] = updates
    else:
        ufunc.at(out, where, updates)
    return out


def _check_fits(ctx, data, indices, axis):
    """Off the axis, INDICES may not reach beyond DATA."""
    if any(indices.shape[i] > data.shape[i] for i in range(data.ndim) if i != axis):
        ctx.fail(f"{ctx.input_label(1)} {tuple(indices.shape)} is larger than "
                 f"{ctx.input_label(0)} {tuple(data.shape)} off axis {axis}")


def _index_tuple(xp, indices, axis):
    """Full coordinates of every element of INDICES, with INDICES itself on ``axis``."""
    grid = list(xp.indices(indices.shape, sparse=True))
    grid[axis] = indices
    return tuple(grid)


register_schema(OpSchema(
    "Scatter", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=same_as(0),
    inputs=[("DATA", "tensor to update"), ("INDICES", "int32/int64, DATA's rank: where "
                                                     "along axis each update goes"),
            ("UPDATES", "values, INDICES' shape, DATA's dtype")],
    outputs=[("OUTPUT", "DATA with UPDATES written (or combined) at INDICES")],
    args=[Arg("axis", "int", 1, "the axis INDICES index (Caffe2's default 1)"),
          Arg("reduction", "string", "none", "none (write; duplicates: one wins), add, mul, "
                                            "max or min (combine, duplicates included)")],
    doc="OUTPUT = DATA with OUTPUT[..., INDICES[i, j, ...] (on axis), ...] = UPDATES[i, j, ...].",
    gradient=NO_GRADIENT))


@register_kernel("Scatter", devices=("CPU",))
def scatter(ctx, data, indices, updates):
    axis, indices = _axis(ctx, data, indices, "scattered")
    reduction = check_reduction(ctx)
    if getattr(updates, "shape", None) != indices.shape or updates.dtype != data.dtype:
        ctx.fail(f"{ctx.input_label(2)} must have INDICES' shape {tuple(indices.shape)} and "
                 f"DATA's dtype {data.dtype}, got {getattr(updates, 'dtype', '?')} "
                 f"{tuple(getattr(updates, 'shape', ()))}")
    _check_fits(ctx, data, indices, axis)
    return (write_or_combine(data, _index_tuple(np, indices, axis), updates, reduction),)


def _gather_shapes(ctx, data, indices):
    if data is None or indices is None:
        return (None,)
    return (TensorSpec(indices.shape, data.dtype),)


register_schema(OpSchema(
    "GatherElements", num_inputs=2, num_outputs=1, infer_shapes=_gather_shapes,
    inputs=[("DATA", "tensor of rank >= 1"),
            ("INDICES", "int32/int64 of DATA's rank: positions along axis")],
    outputs=[("OUTPUT", "INDICES' shape: DATA's elements at INDICES along axis")],
    args=[Arg("axis", "int", 0, "the axis INDICES index; negative counts from the end")],
    doc="OUTPUT = numpy.take_along_axis(DATA, INDICES, axis).",
    gradient=NO_GRADIENT))


@register_kernel("GatherElements", devices=("CPU", "CUDA"))
def gather_elements(ctx, data, indices):
    axis, indices = _axis(ctx, data, indices, "gathered")
    _check_fits(ctx, data, indices, axis)
    return (data[_index_tuple(ctx.xp, indices, axis)],)
