"""Tile, TileGradient, NumpyTile and LengthsTile: copies of a tensor laid side by side.

* ``Tile(X, tiles, axis)``: numpy.tile along one axis -- dim ``axis`` grows
  ``tiles`` times, each outer slice repeated whole (Caffe2's tile_op.cc).  ``tiles``
  and ``axis`` are arguments or, overriding them, 1-element int tensors (inputs 1
  and 2).  Caffe2 kept a bug for old models: an int64 ``tiles`` input without an
  ``axis`` input tiles axis 0, whatever the argument says -- so does this.
  Its gradient TileGradient sums the copies back.
* ``NumpyTile(X, repeats)``: numpy.tile(X, repeats) with an int64 ``repeats``
  vector of one entry per dim.  Caffe2 declared no gradient.
* ``LengthsTile(DATA, LENGTHS)``: row i of DATA repeated LENGTHS[i] times
  (numpy.repeat along axis 0); its gradient is LengthsSum(dOUTPUT, LENGTHS).
"""

import numpy as np

from caffe2lite.operators._axes import canonical_axis, int_from_tensor
from caffe2lite.operators._segments import repeat_segments
from caffe2lite.operators._train_common import host_int
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, register_kernel, register_schema)


def tile_gradient_maker(op_def, g_output):
    """TileGradient(dY[, tiles[, axis]]) -> dX (Caffe2's GetTileGradient)."""
    dx = grad_name(op_def.input[0])
    grad = make_operator("TileGradient", [g_output[0]] + list(op_def.input[1:]), [dx])
    return [grad], [dx] + [None] * (len(op_def.input) - 1)


def lengths_tile_gradient_maker(op_def, g_output):
    """dDATA = LengthsSum(dOUTPUT, LENGTHS) (Caffe2's GetLengthsTileGradient)."""
    dx = grad_name(op_def.input[0])
    return [make_operator("LengthsSum", [g_output[0], op_def.input[1]], [dx])], [dx, None]


def _tile_shapes(ctx, x, *overrides):
    if x is None or overrides or x.ndim == 0:  # sizes read from tensors: unknown
        return (None,)
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    shape = list(x.shape)
    shape[axis] *= ctx.args["tiles"]
    return (TensorSpec(shape, x.dtype),)


_TILE_INPUTS = [("tiles", "optional int32/int64 1-element vector: overrides argument tiles"),
                ("axis", "optional int32/int64 1-element vector: overrides argument axis")]
_TILE_ARGS = [Arg("tiles", "int", 1, "number of replicas"),
              Arg("axis", "int", 0, "axis to replicate along")]

register_schema(OpSchema(
    "Tile", num_inputs=(1, 3), num_outputs=1, infer_shapes=_tile_shapes,
    inputs=[("X", "input tensor")] + _TILE_INPUTS,
    outputs=[("Y", "X with dim axis multiplied by tiles")], args=_TILE_ARGS,
    doc="Y = numpy.tile(X, reps) with reps 1 everywhere but tiles at axis.",
    gradient=tile_gradient_maker))

register_schema(OpSchema(
    "TileGradient", num_inputs=(1, 3), num_outputs=1,
    inputs=[("dY", "gradient of Tile's output")] + _TILE_INPUTS,
    outputs=[("dX", "dY with the tiles copies along axis summed")], args=_TILE_ARGS,
    doc="The gradient of Tile: the copies of each slice summed."))

register_schema(OpSchema(
    "NumpyTile", num_inputs=2, num_outputs=1,
    inputs=[("data", "input tensor"),
            ("repeats", "int64 vector: how many times to repeat each axis")],
    outputs=[("tiled_data", "numpy.tile(data, repeats)")],
    doc="numpy.tile(data, repeats), with one repeat count per dim of data."))

register_schema(OpSchema(
    "LengthsTile", num_inputs=2, num_outputs=1,
    inputs=[("DATA", "tensor of rank >= 1 with len(LENGTHS) rows"),
            ("LENGTHS", "int32 vector of non-negative repeat counts")],
    outputs=[("OUTPUT", "row i of DATA repeated LENGTHS[i] times")],
    doc="numpy.repeat(DATA, LENGTHS, axis=0).",
    gradient=lengths_tile_gradient_maker))


def _tiles_source(ctx, overrides) -> str:
    """Where tiles came from, for errors: input 1 when given, else the argument."""
    return ctx.input_label(1) if overrides else "argument 'tiles'"


def _tiles_and_axis(ctx, x, overrides):
    """(tiles, canonical axis) from the arguments or the override inputs 1 and 2."""
    args = {a.name for a in ctx.op_def.arg}
    tiles, axis = ctx.args["tiles"], ctx.args["axis"]
    if overrides:
        tiles = int_from_tensor(ctx, 1, overrides[0])
        if overrides[0].dtype == np.int64:
            axis = 0  # Caffe2's backward-compatible quirk (see the module docstring)
        if len(overrides) > 1:
            axis = int_from_tensor(ctx, 2, overrides[1])
        elif "axis" not in args:
            ctx.fail("argument 'axis' is missing and was not given as input 2")
    elif not {"tiles", "axis"} <= args:
        ctx.fail("arguments 'tiles' and 'axis' are needed when they are not given as inputs")
    if tiles < 0:
        ctx.fail(f"{_tiles_source(ctx, overrides)} must be >= 0, got {tiles}")
    if x.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    return tiles, canonical_axis(ctx, axis, x.ndim)


@register_kernel("Tile", devices=("CPU", "CUDA"))
def tile(ctx, x, *overrides):
    tiles, axis = _tiles_and_axis(ctx, x, overrides)
    shape = list(x.shape)
    shape[axis] *= tiles
    check_allocation(ctx, shape, x.itemsize, _tiles_source(ctx, overrides))
    reps = [1] * x.ndim
    reps[axis] = tiles
    return (ctx.xp.tile(x, reps),)


@register_kernel("TileGradient", devices=("CPU", "CUDA"))
def tile_gradient(ctx, dy, *overrides):
    tiles, axis = _tiles_and_axis(ctx, dy, overrides)
    if dy.dtype.kind not in "iuf":
        ctx.fail(f"{ctx.input_label(0)} must be numeric, got {dy.dtype}")
    if tiles == 0 or dy.shape[axis] % tiles:
        ctx.fail(f"{ctx.input_label(0)} has {dy.shape[axis]} entries along axis {axis}, "
                 f"not a positive multiple of tiles = {tiles}")
    outer = int(np.prod(dy.shape[:axis], dtype=np.int64))
    shape = dy.shape[:axis] + (dy.shape[axis] // tiles,) + dy.shape[axis + 1:]
    inner = int(np.prod(dy.shape[axis + 1:], dtype=np.int64)) * (dy.shape[axis] // tiles)
    summed = dy.reshape(outer, tiles, inner).sum(axis=1, dtype=dy.dtype)
    return (summed.reshape(shape),)


@register_kernel("NumpyTile", devices=("CPU", "CUDA"))
def numpy_tile(ctx, data, repeats):
    if repeats.dtype != np.int64 or repeats.ndim != 1 or repeats.size != data.ndim:
        ctx.fail(f"{ctx.input_label(1)} must be an int64 vector with one entry per dim of "
                 f"{ctx.input_label(0)} ({data.ndim}), got {repeats.dtype} of shape "
                 f"{tuple(repeats.shape)}")
    reps = [host_int(r) for r in repeats.tolist()] if repeats.size else []
    if any(r < 0 for r in reps):
        ctx.fail(f"{ctx.input_label(1)} holds a negative repeat count: {reps}")
    check_allocation(ctx, [d * r for d, r in zip(data.shape, reps)], data.itemsize,
                     ctx.input_label(1))
    return (ctx.xp.tile(data, reps) if reps else data.copy(),)


@register_kernel("LengthsTile", devices=("CPU", "CUDA"))
def lengths_tile(ctx, data, lengths):
    lengths = check_lengths(ctx, 1, lengths)
    if data.ndim < 1 or data.shape[0] != lengths.size:
        ctx.fail(f"{ctx.input_label(0)} {tuple(data.shape)} must have one row per entry of "
                 f"{ctx.input_label(1)} ({lengths.size})")
    total = host_int(lengths.sum(dtype=np.int64)) if lengths.size else 0
    check_allocation(ctx, (total,) + data.shape[1:], data.itemsize, ctx.input_label(1))
    return (repeat_segments(ctx.xp, data, lengths),)
