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


INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def blob_label(ctx, i: int) -> str:
    """"INDICES (input 1, blob 'ids')": input i's schema name and the blob behind it."""
    names = ctx.schema.input_names()
    name = names[i] if i < len(names) else f"input {i}"
    return f"{name} (input {i}, blob '{ctx.op_def.input[i]}')"


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
