"""Checks and vectorised segment reductions shared by the sparse embedding ops.

Gather, BatchGather and the (Sparse)Lengths* reducers all validate integer
index and lengths blobs the same way and reduce rows segment by segment.
Every check here runs before a kernel computes anything, and every error
names the operator (through ``ctx.enforce``), the input blob and what was
expected.  The module name starts with ``_`` so the registry does not import
it as an operator module.
"""

from __future__ import annotations

import functools

import numpy as np

from caffe2lite.operators import _native_segments
from caffe2lite.operators._native_segments import native_gather_segment_sum
from caffe2lite.operators._parallel import for_each_range

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def check_dtype(ctx, value, i: int, allowed, what: str) -> None:
    """Enforce that input i has one of the ``allowed`` dtypes.

    The checks here build their messages only on failure: formatting them every
    time cost tens of microseconds per op, against an embedding lookup of ~1 ms.
    """
    if value.dtype not in _as_dtypes(allowed):
        ctx.fail(f"{ctx.input_label(i)} must be {what}, got dtype {value.dtype}")


@functools.lru_cache(maxsize=None)
def _as_dtypes(allowed: tuple) -> tuple:
    return tuple(np.dtype(d) for d in allowed)


def check_index_dtype(ctx, value, i: int) -> None:
    check_dtype(ctx, value, i, INDEX_DTYPES, "int32 or int64")


def check_vector(ctx, value, i: int) -> None:
    if value.ndim != 1:
        ctx.fail(f"{ctx.input_label(i)} must be a vector (1-D), "
                 f"got shape {tuple(value.shape)}")


def check_scalars(ctx, scalars, i, count):
    """A weighted lookup's per-index weights: a float32 vector of ``count`` entries."""
    check_dtype(ctx, scalars, i, (np.float32,), "float32")
    check_vector(ctx, scalars, i)
    if scalars.shape[0] != count:
        ctx.fail(f"{ctx.input_label(i)} has {scalars.shape[0]} weights, expected "
                 f"one per index ({count})")


def check_index_range(ctx, indices, bound: int, i: int, what: str, low: int = 0):
    """Enforce low <= indices < bound, naming the first offending position and value.

    Returns the smallest index (None when there is none), which callers that wrap
    negative indices use to skip the wrap when there is nothing to wrap.
    """
    if indices.size == 0:
        return None
    smallest = int(indices.min())
    if smallest >= low and int(indices.max()) < bound:
        return smallest
    flat = indices.reshape(-1)
    pos = int(((flat < low) | (flat >= bound)).argmax())
    ctx.fail(f"{ctx.input_label(i)}: element {pos} is {int(flat[pos])}, out of "
             f"range for {what} (expected {low} <= index < {bound})")


def check_lengths(ctx, lengths, i: int, total=None, total_what: str = "") -> int:
    """LENGTHS: an int32/int64 vector of non-negative values (summing to ``total`` if given).

    Returns the sum, i.e. the number of rows the segments cover.
    """
    return checked_lengths(ctx, lengths, i, total, total_what)[0]


def checked_lengths(ctx, lengths, i: int, total=None, total_what: str = ""):
    """check_lengths, returning (sum, the common length when all are equal, else None).

    Fixed-size bags (every length equal, as in the main job) are the common case:
    their sum is then known from the smallest and largest length alone, and
    repeat_segments can use the common length without counting again.
    """
    check_index_dtype(ctx, lengths, i)
    check_vector(ctx, lengths, i)
    if not lengths.size:
        got, uniform = 0, None
    else:
        lowest, highest = int(lengths.min()), int(lengths.max())
        if lowest < 0:
            pos = int((lengths < 0).argmax())
            ctx.fail(f"{ctx.input_label(i)}: element {pos} is {int(lengths[pos])}; "
                     f"lengths must be non-negative")
        uniform = lowest if lowest == highest else None
        got = lowest * lengths.shape[0] if uniform is not None else int(lengths.sum())
    if total is not None and got != total:
        ctx.fail(f"{ctx.input_label(i)} sums to {got}, but must sum to {total} "
                 f"({total_what})")
    return got, uniform


def checked_gather_segment_sum(ctx, data, indices, lengths, scalars, i: int, out=None):
    """check_lengths and check_index_range for INDICES (input i) and LENGTHS (input
    i + 1), then gather_segment_sum: the SparseLengths* forward with its checks.

    data's dtype and rank, indices' dtype and rank and scalars must already be
    checked.  The C kernel, where it applies, checks the values as it reads them
    (one pass instead of NumPy's four, ~10% of a lookup); only when it finds a
    fault do the NumPy checks run, to name it -- the same errors, in the same
    order, as without C.  ``out``: a float32 (m, width) matrix (rows possibly apart)
    that the C kernel writes into instead of a fresh array; returns None when the C
    kernel cannot (the caller then computes without ``out``).
    """
    n, rows = int(indices.shape[0]), int(data.shape[0])
    if ctx.xp is np:
        check_index_dtype(ctx, lengths, i + 1)
        check_vector(ctx, lengths, i + 1)
        fault = None
        result = None
        try:
            result = native_gather_segment_sum(data, indices, lengths, scalars, out)
        except (_native_segments.BadLengths, _native_segments.BadIndices) as e:
            fault = e
        if fault is None and result is not None:
            return result if out is not None else \
                result.reshape(lengths.shape[:1] + data.shape[1:])
        if fault is not None:  # name the culprit; the C code and these checks agree
            check_lengths(ctx, lengths, i + 1, n, "the number of INDICES")
            check_index_range(ctx, indices, rows, i, f"DATA with {rows} rows")
            # left: lengths whose int64 sum wraps around to n, which C refuses
            ctx.fail(f"{ctx.input_label(i + 1)}: its running total overflows int64, but "
                     f"must sum to {n} (the number of INDICES)")
    check_lengths(ctx, lengths, i + 1, n, "the number of INDICES")
    check_index_range(ctx, indices, rows, i, f"DATA with {rows} rows")
    if out is not None:
        return None
    return gather_segment_sum(ctx.xp, data, indices, lengths, scalars, native=False)


def take_checked(xp, data, indices, axis=0):
    """numpy.take for indices already range-checked: NumPy's "clip" mode then skips its
    own bounds pass and output buffering (CuPy's take has no mode and never checks)."""
    if xp is np:
        return np.take(data, indices, axis=axis, mode="clip")
    return xp.take(data, indices, axis=axis)


def offsets_of(xp, lengths):
    """(start, end) offsets of each segment: exclusive and inclusive prefix sums, int64."""
    ends = xp.cumsum(lengths, dtype=np.int64)
    return ends - lengths, ends


def position_in_segment(xp, lengths):
    """For every row covered by lengths: (segment id, position inside the segment)."""
    starts, ends = offsets_of(xp, lengths)
    total = int(ends[-1]) if lengths.size else 0
    rows = xp.arange(total, dtype=np.int64)
    segment = xp.searchsorted(ends, rows, side="right")
    return segment, rows - starts[segment]


def segmented_search(xp, edges, lengths, queries, query_segment, side="left"):
    """numpy.searchsorted of each query within its own segment of ``edges``, as an index
    into the whole ``edges`` vector (Caffe2's std::lower_bound / upper_bound over
    ``edges[start:end]``, for every query at once).

    ``edges`` is split into consecutive segments by ``lengths`` and sorted within each;
    query i searches segment query_segment[i].  One stable lexicographic sort of
    edges and queries by (segment, value, tie rule) places every query just after the
    edges that precede it -- those of earlier segments and, in its own, those below
    it (``side="left"``) or not above it (``"right"``) -- so the number of edges
    before it is the answer.  O((E + Q) log(E + Q)), no loop over segments.
    """
    n_edges = int(edges.shape[0])
    edge_segment = xp.repeat(xp.arange(lengths.shape[0]), lengths.tolist()
                             if xp is not np else lengths)
    segment = xp.concatenate([edge_segment.astype(np.int64), query_segment.astype(np.int64)])
    value = xp.concatenate([edges.astype(np.float64), queries.astype(np.float64)])
    is_query = xp.concatenate([xp.zeros(n_edges, np.int8),
                               xp.ones(int(queries.shape[0]), np.int8)])
    # equal values: "left" puts the query before the edges, "right" after them
    tie = is_query if side == "right" else 1 - is_query
    order = xp.lexsort(xp.stack([tie, value, segment]))
    edge_mark = (is_query[order] == 0).astype(np.int64)
    edges_before = xp.cumsum(edge_mark) - edge_mark
    result = xp.empty(int(queries.shape[0]), np.int64)
    picked = order >= n_edges
    result[order[picked] - n_edges] = edges_before[picked]
    return result


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
        starts, _ = offsets_of(xp, lengths)
        segment = repeat_segments(xp, xp.arange(m), lengths)
        slot = segment * longest + (xp.arange(n) - starts[segment])
        grid = xp.zeros((m * longest, flat.shape[1]), values.dtype)
        grid[slot] = flat
        grid = grid.reshape(m, longest, -1)
    else:
        starts, _ = offsets_of(xp, lengths)
        nonempty = lengths > 0
        out = xp.zeros((m, flat.shape[1]), values.dtype)
        out[nonempty] = xp.add.reduceat(flat, starts[nonempty], axis=0)
        return out.reshape((m,) + block)
    return xp.einsum("mlb->mb", grid).reshape((m,) + block)


# Bytes of rows gather_segment_sum handles per step: small enough that a step's
# gathered rows and output rows stay in the L2 cache until they are summed.
GATHER_CHUNK_BYTES = 1 << 18
_ZERO = np.float32(0)
# Fewest bags for which gather_segment_sum sums by rank (each rank costs a gather and
# an add whatever its size); fewer bags are summed one at a time.
RANK_MIN_BAGS = 16


def gather_segment_sum(xp, data, indices, lengths, scalars=None, native=True):
    """segment_sum(data[indices] (x scalars), lengths) in float32, without the full gather.

    Materialising data[indices] costs a fresh (len(indices), block) array whose page
    faults and trip through main memory take as long as the lookups themselves.  On
    NumPy the segments are instead taken a few thousand at a time and summed by rank
    in reused buffers: the first row of every segment is gathered (np.take with out=)
    into the chunk's accumulator, then the second row of every segment at least two
    long is gathered and added in place, and so on -- each segment summed left to
    right, as Caffe2's loop did.  Segments are ordered longest first within a chunk,
    so the rows still being summed are always a prefix of the accumulator.  A bag
    longer than 4x its chunk's mean, and every bag of a chunk with fewer than
    RANK_MIN_BAGS bags to rank, is summed on its own (np.cumsum over its rows, a
    buffer at a time), which takes fewer steps there and keeps the same order.

    Chunks depend only on the shapes, so results are deterministic for any number of
    threads (operators/_parallel.py runs chunks concurrently).  CuPy keeps the
    one-shot gather: device memory has no such cache cliff.  With ``native`` and the
    optional C library built, operators/_native_segments.py does the same sums in
    the same order in one compiled pass (same bits).
    """
    m, n = int(lengths.shape[0]), int(indices.shape[0])
    block = tuple(data.shape[1:])
    if xp is not np or n == 0:
        rows = take_checked(xp, data, indices).astype(np.float32, copy=False)
        if scalars is not None:
            rows = rows * scalars.reshape((-1,) + (1,) * (rows.ndim - 1))
        return segment_sum(xp, rows, lengths)
    if native:
        out = native_gather_segment_sum(data, indices, lengths, scalars)
        if out is not None:
            return out.reshape((m,) + block)
    width = int(np.prod(block, dtype=np.int64))
    table = data.reshape(data.shape[0], width)
    budget = max(1, GATHER_CHUNK_BYTES // max(1, 4 * width))
    step = min(m, budget)  # segments per chunk
    starts, _ = offsets_of(np, lengths)
    uniform = int(lengths.min()) == int(lengths.max())
    out = np.empty((m, width), np.float32)

    def run(first, stop):
        gathered = np.empty((min(n, budget), width), table.dtype)
        converted = np.empty(gathered.shape, np.float32)
        acc = out[:0] if uniform else np.empty((step, width), np.float32)
        for b0 in range(first * step, min(m, stop * step), step):
            b1 = min(m, b0 + step)
            _sum_chunk(table, indices, lengths[b0:b1], starts[b0:b1], scalars,
                       out[b0:b1], None if uniform else acc[:b1 - b0], gathered, converted)

    for_each_range(run, -(-m // step))
    return out.reshape((m,) + block)


def _sum_chunk(table, indices, lengths, starts, scalars, out, acc, gathered, converted):
    """out[k] = sum of segment k's rows.  ``acc`` (scratch) is None when all segments
    have one length: they then keep their order and ``out`` is the accumulator."""
    k = lengths.shape[0]
    if acc is None:
        length = int(lengths[0])
        # A rank sums k rows per call, a bag on its own min(length, buffer) rows per call:
        # a few (long) bags go one at a time.
        if k < RANK_MIN_BAGS or k < min(length, gathered.shape[0]):
            for b in range(k):
                _sum_one(table, indices, scalars, int(starts[b]), length, out[b], gathered,
                         converted)
            return
        r0, total = int(starts[0]), k * length
        rank_idx = np.ascontiguousarray(indices[r0:r0 + total].reshape(k, length).T)
        rank_w = None if scalars is None else np.ascontiguousarray(
            scalars[r0:r0 + total].reshape(k, length).T)
        _sum_by_rank(table, rank_idx, rank_w, [k] * length, out, gathered, converted)
        return
    # Bags over 4x the mean length get a pass of their own (so the rank table stays
    # small); so does every bag when too few are left to fill the ranks.
    alone = lengths > max(1, 4 * int(lengths.sum()) // k)
    if k - int(np.count_nonzero(alone)) < RANK_MIN_BAGS:
        alone[:] = True
    for b in np.flatnonzero(alone).tolist():
        _sum_one(table, indices, scalars, int(starts[b]), int(lengths[b]), out[b], gathered,
                 converted)
    ranked = np.flatnonzero(~alone)
    if not ranked.size:
        return
    order = ranked[np.argsort(-lengths[ranked].astype(np.int64), kind="stable")]
    longest = int(lengths[order[0]])
    active = (order.size - np.cumsum(np.bincount(lengths[order], minlength=longest))
              [:longest]).tolist()
    acc = acc[:order.size]
    acc[active[0] if longest else 0:] = 0  # empty segments
    # by_rank[j, i]: position in INDICES of row j of the i-th (longest first) segment;
    # slots past a segment's end point at any valid position and are never read.
    by_rank = np.minimum(starts[order] + np.arange(longest)[:, None], indices.shape[0] - 1)
    rank_w = None if scalars is None else np.take(scalars, by_rank)
    _sum_by_rank(table, np.take(indices, by_rank), rank_w, active, acc, gathered, converted)
    out[order] = acc


def _sum_one(table, indices, scalars, start, length, out_row, gathered, converted):
    """out_row = one segment's rows summed left to right, a buffer of rows at a time.

    Each buffer starts from the previous buffer's total (added into its first row).
    np.add.reduce over axis 0 of rows wider than 1 adds row after row; a column of
    single values would be summed pairwise, so it goes through np.cumsum, which is
    sequential.  (np.add.reduceat is not sequential either.)
    """
    total = None
    step = gathered.shape[0]
    for s in range(start, start + length, step):
        e = min(start + length, s + step)
        rows = _weighted_rows(table, indices[s:e], None if scalars is None else scalars[s:e],
                              gathered[:e - s], converted[:e - s])
        np.add(_ZERO if total is None else total, rows[0], out=rows[0])
        if rows.shape[1] > 1:
            total = np.add.reduce(rows, axis=0)
        else:
            total = np.cumsum(rows, axis=0, out=rows)[-1].copy()
    out_row[...] = 0 if total is None else total


def _sum_by_rank(table, rank_idx, rank_w, active, acc, gathered, converted):
    """acc[i] = sum over j of table[rank_idx[j, i]] (x rank_w[j, i]) for i < active[j]."""
    for j, c in enumerate(active):
        term = _weighted_rows(table, rank_idx[j, :c], None if rank_w is None else rank_w[j, :c],
                              gathered[:c], converted[:c])
        # 0 + first row, as Caffe2's zeroed accumulator (a row of -0.0 sums to +0.0)
        np.add(acc[:c] if j else _ZERO, term, out=acc[:c])


def _weighted_rows(table, rows_idx, weights, gathered, converted):
    """table[rows_idx] (x weights[:, None]) as float32, in the given scratch buffers."""
    got = np.take(table, rows_idx, axis=0, out=gathered, mode="clip")
    if weights is not None:
        return np.multiply(got, weights[:, None], out=converted)
    if got.dtype != np.float32:  # float16 table: summed in float32, as Caffe2 did
        np.copyto(converted, got)
        return converted
    return got


# Output bytes per piece of work repeat_segments hands to a thread.
REPEAT_PIECE_BYTES = 1 << 20


def repeat_segments(xp, segment_values, lengths, uniform=None):
    """Row k of ``segment_values`` repeated lengths[k] times (np.repeat along axis 0).

    On NumPy, equal lengths (fixed-size bags) are one broadcast copy into the
    output, a range of segments per thread (operators/_parallel.py); the sparse
    gradient this builds is the size of every looked-up row, so one core's memory
    bandwidth was the limit.  ``uniform``: the common length, when the caller knows
    every length is that (checked_lengths), to skip counting them again.
    """
    if xp is np:
        m = int(lengths.shape[0])
        if uniform is None:
            counts = lengths.astype(np.int64)
            length = int(counts[0]) if m else 0
            if length == 0 or int(counts.min()) != int(counts.max()):
                return np.repeat(segment_values, counts, axis=0)
        elif uniform == 0:
            return np.repeat(segment_values, lengths.astype(np.int64), axis=0)
        else:
            length = uniform
        rest = tuple(segment_values.shape[1:])
        out = np.empty((m * length,) + rest, segment_values.dtype)  # owns its memory
        grid = out.reshape((m, length) + rest)
        step = max(1, REPEAT_PIECE_BYTES // max(1, grid[0].nbytes))

        def run(first, stop):
            b0, b1 = first * step, min(m, stop * step)
            np.copyto(grid[b0:b1], segment_values[b0:b1, None])

        for_each_range(run, -(-m // step))
        return out
    # CuPy's repeat takes the counts only as a host list: look each row's segment up instead.
    segment, _ = position_in_segment(xp, lengths)
    return segment_values[segment]


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
