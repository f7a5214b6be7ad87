"""TopK and TopKGradient: the k largest entries along an axis, and their positions.

Caffe2 (top_k.cc): Values and Indices take X's shape with dim ``axis`` set to k;
entries are in descending order, equal values in ascending index order; when k
exceeds the axis length the tail is padded with 0 (Values) and -1 (Indices).
The optional third output, Flattened_indices, is a 1-D vector of the picked
entries' positions in X.reshape(-1) (-1 for padding).  Indices are int64.

    TopK([[6, 7, 0], [8, 7, 7]], k=2) -> Values [[7, 6], [8, 7]], Indices [[1, 0], [0, 1]]

The gradient scatters dValues back to the picked positions (zeros elsewhere).

LengthsTopK(DATA, LENGTHS, k) does the same per segment of a 1-D DATA: (len(LENGTHS),
k) values and int32 positions within the segment, padded with 0 and -1 when a
segment has fewer than k entries (Caffe2's lengths_top_k_op.cc); its gradient
LengthsTopKGradient(LENGTHS, Indices, dValues) scatters back the same way.
"""

import numpy as np

from caffe2lite.operators._axes import canonical_axis, check_numeric
from caffe2lite.operators._segments import offsets_of, position_in_segment
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, register_kernel, register_schema)


def top_k_gradient_maker(op_def, g_output):
    """TopKGradient(dValues, Indices, X) -> dX (Caffe2's GetTopKGradient)."""
    dx = grad_name(op_def.input[0])
    return [make_operator("TopKGradient", [g_output[0], op_def.output[1], op_def.input[0]],
                          [dx])], [dx]


def _checked_k(ctx):
    k = ctx.args["k"]
    if k < 1:
        ctx.fail(f"argument 'k' must be >= 1, got {k}")
    return k


def _top_k_shapes(ctx, x):
    if x is None:
        return (None,) * len(ctx.op_def.output)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    k, axis = _checked_k(ctx), canonical_axis(ctx, ctx.args["axis"], x.ndim)
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
    out = [TensorSpec(shape, x.dtype), TensorSpec(shape, np.int64)]
    if len(ctx.op_def.output) > 2:
        out.append(TensorSpec((int(np.prod(shape, dtype=np.int64)),), np.int64))
    return tuple(out)


register_schema(OpSchema(
    "TopK", num_inputs=1, num_outputs=(2, 3), infer_shapes=_top_k_shapes,
    inputs=[("X", "numeric tensor of rank >= 1")],
    outputs=[("Values", "X's shape with dim axis = k: the k largest entries, descending"),
             ("Indices", "int64, same shape: their positions along axis (-1 padding)"),
             ("Flattened_indices", "optional int64 vector: positions in X.reshape(-1)")],
    args=[Arg("k", "int", -1, "number of top elements to retrieve (>= 1)"),
          Arg("axis", "int", -1, "the axis to search (default: the last)")],
    doc="The k largest entries of X along axis, in descending order; ties keep the lower "
        "index first; k past the axis length pads Values with 0 and Indices with -1.",
    gradient=top_k_gradient_maker))

register_schema(OpSchema(
    "TopKGradient", num_inputs=3, num_outputs=1,
    infer_shapes=lambda ctx, dv, idx, x: (None if x is None or dv is None
                                          else TensorSpec(x.shape, dv.dtype),),
    inputs=[("dValues", "gradient of Values"), ("Indices", "Indices output of TopK"),
            ("X", "the forward input (for its shape)")],
    outputs=[("dX", "zeros of X's shape with dValues at the picked positions")],
    args=[Arg("axis", "int", -1, "the axis TopK searched")],
    doc="Scatters dValues back to the positions TopK picked."))


def descending_order(xp, values):
    """Positions that sort ``values`` along its last axis in descending order, equal
    values in ascending position order (Caffe2's heap comparison), for any dtype.

    A stable ascending sort of the reversed row lists equal values from the highest
    original position down; reading it backwards gives descending values with the
    lowest position first -- without negating (which overflows ints, wraps unsigned).
    """
    n = values.shape[-1]
    reversed_rows = values[..., ::-1]
    if xp is np:
        order = np.argsort(reversed_rows, axis=-1, kind="stable")
    else:  # CuPy's sort is stable
        order = xp.argsort(reversed_rows, axis=-1)
    return (n - 1) - order[..., ::-1]


def top_k_rows(xp, rows, k):
    """(values, int64 positions) of the k largest per row of a 2-D array, padded past the
    row length with 0 and -1."""
    m, n = rows.shape
    picked = descending_order(xp, rows)[:, :k].astype(np.int64)
    values = xp.take_along_axis(rows, picked, axis=1)
    if k > n:
        values = xp.concatenate([values, xp.zeros((m, k - n), rows.dtype)], axis=1)
        picked = xp.concatenate([picked, xp.full((m, k - n), -1, np.int64)], axis=1)
    return values, picked


@register_kernel("TopK", devices=("CPU", "CUDA"))
def top_k(ctx, x):
    xp = ctx.xp
    check_numeric(ctx, 0, x)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    k, axis = _checked_k(ctx), canonical_axis(ctx, ctx.args["axis"], x.ndim)
    prev, n = int(np.prod(x.shape[:axis], dtype=np.int64)), x.shape[axis]
    rest = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    check_allocation(ctx, (prev, k, rest), x.itemsize + 8, "argument 'k'")
    # (prev, n, rest) -> rows of n: each row is one column of the search
    rows = xp.moveaxis(x.reshape(prev, n, rest), 1, 2).reshape(prev * rest, n)
    values, picked = top_k_rows(xp, rows, k)
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]

    def back(a):  # rows of k -> X's layout with k on the axis
        return xp.ascontiguousarray(xp.moveaxis(a.reshape(prev, rest, k), 2, 1)).reshape(shape)

    out = [back(values), back(picked)]
    if len(ctx.op_def.output) > 2:
        # position in X.reshape(-1) of (i, picked, j): i*n*rest + picked*rest + j
        base = (xp.arange(prev, dtype=np.int64)[:, None] * (n * rest)
                + xp.arange(rest, dtype=np.int64)[None, :]).reshape(-1, 1)
        flat = xp.where(picked >= 0, base + picked * rest, -1)
        out.append(back(flat).reshape(-1))
    return tuple(out)


@register_kernel("TopKGradient", devices=("CPU", "CUDA"))
def top_k_gradient(ctx, dvalues, indices, x):
    xp = ctx.xp
    check_numeric(ctx, 0, dvalues, "f")
    if indices.dtype != np.int64:
        ctx.fail(f"{ctx.input_label(1)} must be int64 (TopK's Indices), got {indices.dtype}")
    if dvalues.ndim != x.ndim or dvalues.ndim < 1 or indices.shape != dvalues.shape:
        ctx.fail(f"{ctx.input_label(0)} {tuple(dvalues.shape)}, {ctx.input_label(1)} "
                 f"{tuple(indices.shape)} and {ctx.input_label(2)} {tuple(x.shape)} must "
                 f"have one rank, and dValues the shape of Indices")
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    k, n = dvalues.shape[axis], x.shape[axis]
    if dvalues.shape[:axis] + dvalues.shape[axis + 1:] != x.shape[:axis] + x.shape[axis + 1:]:
        ctx.fail(f"{ctx.input_label(0)} {tuple(dvalues.shape)} must match "
                 f"{ctx.input_label(2)} {tuple(x.shape)} off axis {axis}")
    if indices.size and (int(indices.max()) >= n or int(indices.min()) < -1):
        ctx.fail(f"{ctx.input_label(1)} holds positions outside [-1, {n}) along axis {axis}")
    prev = int(np.prod(x.shape[:axis], dtype=np.int64))
    rest = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    idx = indices.reshape(prev, k, rest)
    flat = (xp.arange(prev, dtype=np.int64)[:, None, None] * (n * rest) + idx * rest
            + xp.arange(rest, dtype=np.int64)[None, None, :])
    keep = idx >= 0
    dx = xp.zeros(x.size, dvalues.dtype)
    dx[flat[keep]] = dvalues.reshape(prev, k, rest)[keep]
    return (dx.reshape(x.shape),)


def lengths_top_k_gradient_maker(op_def, g_output):
    """LengthsTopKGradient(LENGTHS, Indices, dValues) -> dDATA (GetLengthsTopKGradient)."""
    d_data = grad_name(op_def.input[0])
    return [make_operator("LengthsTopKGradient",
                          [op_def.input[1], op_def.output[1], g_output[0]], [d_data])], \
        [d_data, None]


register_schema(OpSchema(
    "LengthsTopK", num_inputs=2, num_outputs=2,
    infer_shapes=lambda ctx, data, lengths: (None, None) if lengths is None else (
        TensorSpec((lengths.shape[0], ctx.args["k"]),
                   data.dtype if data is not None else np.float32),
        TensorSpec((lengths.shape[0], ctx.args["k"]), np.int32)),
    inputs=[("DATA", "1-D float tensor of sum(LENGTHS) values"),
            ("LENGTHS", "int32 segment lengths")],
    outputs=[("TopKValue", "(len(LENGTHS), k): each segment's k largest, descending"),
             ("TopKIndices", "int32 (len(LENGTHS), k): their positions in the segment")],
    args=[Arg("k", "int", -1, "values per segment (>= 1); short segments pad with 0 / -1")],
    doc="TopK of every segment of DATA.", gradient=lengths_top_k_gradient_maker))

register_schema(OpSchema(
    "LengthsTopKGradient", num_inputs=3, num_outputs=1,
    inputs=[("LENGTHS", "the forward LENGTHS"), ("TopKIndices", "the forward indices"),
            ("dTopKValue", "gradient of TopKValue")],
    outputs=[("dDATA", "dTopKValue at the picked entries, zeros elsewhere")],
    args=[Arg("k", "int", -1, "the forward k")],
    doc="The gradient of LengthsTopK."))


@register_kernel("LengthsTopK", devices=("CPU", "CUDA"))
def lengths_top_k(ctx, data, lengths):
    xp = ctx.xp
    k = _checked_k(ctx)
    lengths = check_lengths(ctx, 1, lengths)
    if data.ndim != 1 or data.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a 1-D float tensor, got {data.dtype} of "
                 f"shape {tuple(data.shape)}")
    if int(lengths.sum(dtype=np.int64)) != data.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} sums to {int(lengths.sum())}, but "
                 f"{ctx.input_label(0)} has {data.shape[0]} values")
    m = lengths.shape[0]
    width = max(int(lengths.max()) if m else 0, 1)
    check_allocation(ctx, (m, max(width, k)), 8 + data.itemsize, "argument 'k'")
    # segments as rows of a (m, width) grid padded with -inf past each segment's end;
    # padding sits after the real entries, so ties keep the real ones first
    grid = xp.full((m, width), -np.inf, data.dtype)
    segment, position = position_in_segment(xp, lengths)
    grid[segment, position] = data
    values, picked = top_k_rows(xp, grid, k)
    real = picked < lengths[:, None]
    values = xp.where(real, values, 0).astype(data.dtype)
    return values, xp.where(real, picked, -1).astype(np.int32)


@register_kernel("LengthsTopKGradient", devices=("CPU", "CUDA"))
def lengths_top_k_gradient(ctx, lengths, indices, d_values):
    xp = ctx.xp
    k = _checked_k(ctx)
    lengths = check_lengths(ctx, 0, lengths)
    m = lengths.shape[0]
    if indices.shape != (m, k) or d_values.shape != (m, k) or d_values.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(1)} {tuple(indices.shape)} and {ctx.input_label(2)} "
                 f"{tuple(d_values.shape)} must both be ({m}, {k}) (float gradients)")
    starts, _ = offsets_of(xp, lengths)
    keep = (indices >= 0) & (indices < lengths[:, None])
    target = (starts[:, None] + indices)[keep]
    d_data = xp.zeros(int(lengths.sum(dtype=np.int64)), d_values.dtype)
    d_data[target] = d_values[keep]
    return (d_data,)
