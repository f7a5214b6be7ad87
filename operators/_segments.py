"""Checks and vectorised segment reductions shared by the sparse embedding ops.

Gather, BatchGather and the (Sparse)Lengths* reducers all validate integer
index and lengths blobs the same way and reduce rows segment by segment.
Every check here runs before a kernel computes anything, and every error
names the operator (through ``ctx.enforce``), the input blob and what was
expected.  The module name starts with ``_`` so the registry does not import
it as an operator module.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.core import GradientSlice
from caffe2lite.errors import GradientError

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def blob_label(ctx, i: int) -> str:
    """"INDICES (input 1, blob 'ids')": input i's schema name and the blob behind it."""
    names = ctx.schema.input_names()
    name = names[i] if i < len(names) else f"input {i}"
    return f"{name} (input {i}, blob '{ctx.op_def.input[i]}')"


def dense_output_gradient(op_def, g_output, i: int = 0):
    """Caffe2's GO(i) in a gradient maker: output i's gradient must be a dense blob."""
    g = g_output[i]
    if g is None or isinstance(g, GradientSlice):
        got = "none" if g is None else "a GradientSlice"
        raise GradientError(f"{op_def.type}: the gradient of output {i} ('{op_def.output[i]}') "
                            f"must be a dense blob, got {got}")
    return g


def check_dtype(ctx, value, i: int, allowed, what: str) -> None:
    """Enforce that input i has one of the ``allowed`` dtypes."""
    ctx.enforce(np.dtype(value.dtype) in tuple(np.dtype(d) for d in allowed),
                f"{blob_label(ctx, i)} must be {what}, got dtype {value.dtype}")


def check_index_dtype(ctx, value, i: int) -> None:
    check_dtype(ctx, value, i, INDEX_DTYPES, "int32 or int64")


def check_vector(ctx, value, i: int) -> None:
    ctx.enforce(value.ndim == 1, f"{blob_label(ctx, i)} must be a vector (1-D), "
                                 f"got shape {tuple(value.shape)}")


def check_index_range(ctx, indices, bound: int, i: int, what: str, low: int = 0) -> None:
    """Enforce low <= indices < bound, naming the first offending position and value."""
    if indices.size == 0:
        return
    if int(indices.min()) >= low and int(indices.max()) < bound:
        return
    flat = indices.reshape(-1)
    pos = int(((flat < low) | (flat >= bound)).argmax())
    ctx.enforce(False, f"{blob_label(ctx, i)}: element {pos} is {int(flat[pos])}, out of "
                       f"range for {what} (expected {low} <= index < {bound})")


def check_lengths(ctx, lengths, i: int, total=None, total_what: str = "") -> int:
    """LENGTHS: an int32/int64 vector of non-negative values (summing to ``total`` if given).

    Returns the sum, i.e. the number of rows the segments cover.
    """
    check_index_dtype(ctx, lengths, i)
    check_vector(ctx, lengths, i)
    if lengths.size and int(lengths.min()) < 0:
        pos = int((lengths < 0).argmax())
        ctx.enforce(False, f"{blob_label(ctx, i)}: element {pos} is {int(lengths[pos])}; "
                           f"lengths must be non-negative")
    got = int(lengths.sum()) if lengths.size else 0
    ctx.enforce(total is None or got == total,
                f"{blob_label(ctx, i)} sums to {got}, but must sum to {total} ({total_what})")
    return got


def take_checked(xp, data, indices, axis=0):
    """numpy.take for indices already range-checked: NumPy's "clip" mode then skips its
    own bounds pass and output buffering (CuPy's take has no mode and never checks)."""
    if xp is np:
        return np.take(data, indices, axis=axis, mode="clip")
    return xp.take(data, indices, axis=axis)


def segment_starts(xp, lengths):
    """Exclusive prefix sum of lengths: the first row of every segment."""
    ends = xp.cumsum(lengths.astype(np.int64))
    return ends - lengths


def segment_sum(xp, values, lengths):
    """out[k] = values[start_k : start_k + lengths[k]].sum(0); empty segments give 0.

    Rows are laid out as a (segments x max length) grid -- a plain reshape
    when every segment has the same length, zero padding otherwise -- and
    summed with one ``einsum``, which NumPy runs several times faster than
    ``np.add.reduceat`` or ``np.add.at`` on row blocks.  When padding would
    more than quadruple the rows (a few very long segments), ``reduceat`` over
    the non-empty segments takes over: it misbehaves on empty segments (it
    returns ``values[start]``), so those are left at zero.
    """
    m = int(lengths.shape[0])
    block = tuple(values.shape[1:])
    n = int(values.shape[0])
    if m == 0 or n == 0:
        return xp.zeros((m,) + block, values.dtype)
    flat = values.reshape(n, -1)
    longest = int(lengths.max())
    if longest * m == n:
        grid = flat.reshape(m, longest, -1)
    elif longest * m <= 4 * n or not hasattr(xp.add, "reduceat"):
        starts = segment_starts(xp, lengths)
        segment = repeat_segments(xp, xp.arange(m), lengths)
        slot = segment * longest + (xp.arange(n) - starts[segment])
        grid = xp.zeros((m * longest, flat.shape[1]), values.dtype)
        grid[slot] = flat
        grid = grid.reshape(m, longest, -1)
    else:
        starts = segment_starts(xp, lengths)
        nonempty = lengths > 0
        out = xp.zeros((m, flat.shape[1]), values.dtype)
        out[nonempty] = xp.add.reduceat(flat, starts[nonempty], axis=0)
        return out.reshape((m,) + block)
    return xp.einsum("mlb->mb", grid).reshape((m,) + block)


# Bytes of rows gather_segment_sum handles per step: small enough that a step's
# gathered rows and output rows stay in the L2 cache until they are summed.
GATHER_CHUNK_BYTES = 1 << 18


def gather_segment_sum(xp, data, indices, lengths, scalars=None):
    """segment_sum(data[indices] (x scalars), lengths) in float32, without the full gather.

    Materialising data[indices] costs a fresh (len(indices), block) array whose page
    faults and trip through main memory take as long as the lookups themselves.  On
    NumPy the work is instead done a few hundred KiB at a time in reused buffers
    (np.take with out=, ufuncs in place):

    * all segments of length L (fixed-size bags, the usual embedding batch): for a
      chunk of segments, the j-th row of every segment is gathered and added to the
      chunk's output, j = 0..L-1 -- each segment summed left to right as Caffe2 did;
    * otherwise: a chunk of whole segments is gathered and reduced by segment_sum.

    Results are deterministic (the chunking depends only on the shapes).  CuPy keeps
    the one-shot gather: device memory has no such cache cliff.
    """
    m, n = int(lengths.shape[0]), int(indices.shape[0])
    block = tuple(data.shape[1:])
    if xp is not np or n == 0:
        rows = take_checked(xp, data, indices).astype(np.float32, copy=False)
        if scalars is not None:
            rows = rows * scalars.reshape((-1,) + (1,) * (rows.ndim - 1))
        return segment_sum(xp, rows, lengths)
    width = int(np.prod(block, dtype=np.int64))
    table = data.reshape(data.shape[0], width)
    budget = max(1, GATHER_CHUNK_BYTES // max(1, 4 * width))
    longest = int(lengths.max())
    if longest * m == n:
        out = _sum_fixed_length(table, indices.reshape(m, longest), scalars, budget)
    else:
        out = _sum_chunks(table, indices, lengths, scalars, budget)
    return out.reshape((m,) + block)


def _weighted_rows(table, rows_idx, weights, gathered, converted):
    """table[rows_idx] (x weights[:, None]) as float32, in the given scratch buffers."""
    got = np.take(table, rows_idx, axis=0, out=gathered, mode="clip")
    if weights is not None:
        return np.multiply(got, weights[:, None], out=converted)
    if got.dtype != np.float32:  # float16 table: summed in float32, as Caffe2 did
        np.copyto(converted, got)
        return converted
    return got


def _sum_fixed_length(table, grid, scalars, budget):
    """Segments of one length L (grid: segments x L indices), one column at a time."""
    m, length = grid.shape
    weights = None if scalars is None else scalars.reshape(m, length)
    out = np.empty((m, table.shape[1]), np.float32)
    step = min(m, budget)
    gathered = np.empty((step, table.shape[1]), table.dtype)
    converted = np.empty((step, table.shape[1]), np.float32)
    for b0 in range(0, m, step):
        b1 = min(m, b0 + step)
        k = b1 - b0
        columns = np.ascontiguousarray(grid[b0:b1].T)
        w = None if weights is None else np.ascontiguousarray(weights[b0:b1].T)
        acc = out[b0:b1]
        for j in range(length):
            term = _weighted_rows(table, columns[j], None if w is None else w[j],
                                  gathered[:k], converted[:k])
            if j:
                np.add(acc, term, out=acc)
            else:
                np.copyto(acc, term)
    return out


def _sum_chunks(table, indices, lengths, scalars, budget):
    """Segments of mixed lengths: gather whole segments a chunk at a time, segment_sum."""
    m, n = int(lengths.shape[0]), int(indices.shape[0])
    ends = np.cumsum(lengths, dtype=np.int64)
    # Chunks end between segments, at the last segment ending before the next multiple
    # of the budget: each holds fewer than budget + (longest segment) rows.
    cuts = np.unique(np.searchsorted(ends, np.arange(budget, n, budget), side="right"))
    bounds = np.concatenate(([0], cuts[(cuts > 0) & (cuts < m)], [m])).tolist()
    row_bounds = [0] + [int(ends[b - 1]) for b in bounds[1:]]
    most = max(b - a for a, b in zip(row_bounds, row_bounds[1:]))
    gathered = np.empty((most, table.shape[1]), table.dtype)
    converted = np.empty((most, table.shape[1]), np.float32)
    out = np.empty((m, table.shape[1]), np.float32)
    for b0, b1, r0, r1 in zip(bounds, bounds[1:], row_bounds, row_bounds[1:]):
        rows = _weighted_rows(table, indices[r0:r1], None if scalars is None else
                              scalars[r0:r1], gathered[:r1 - r0], converted[:r1 - r0])
        out[b0:b1] = segment_sum(np, rows, lengths[b0:b1])
    return out


def repeat_segments(xp, segment_values, lengths):
    """Row k of ``segment_values`` repeated lengths[k] times (np.repeat along axis 0)."""
    if xp is np:
        return np.repeat(segment_values, lengths.astype(np.int64), axis=0)
    # CuPy's repeat takes the counts only as a host list: look each row's segment up instead.
    ends = xp.cumsum(lengths.astype(np.int64))
    total = int(ends[-1]) if lengths.shape[0] else 0
    return segment_values[xp.searchsorted(ends, xp.arange(total), side="right")]


def scatter_add_rows(xp, shape, dtype, indices, values):
    """A zero array of ``shape`` with values[j] added at row indices[j] (duplicates add up)."""
    out = xp.zeros(shape, dtype)
    scatter_add(xp, out, indices, values)
    return out


def scatter_add(xp, out, indices, values):
    """numpy.add.at(out, indices, values): unbuffered, so repeated indices add up."""
    if hasattr(xp.add, "at"):
        xp.add.at(out, indices, values)
    else:  # older CuPy: ufunc.at is missing, cupyx.scatter_add is the same operation
        import cupyx

        cupyx.scatter_add(out, indices, values)
