"""Checks and index plumbing shared by the training operators.

Optimizers and scatter ops update a parameter blob in place, so everything
they read must be validated before the first write (an op that fails leaves
every blob as it was).  The checks are the same for all of them -- an index
vector in range, a one-element learning rate, matching floating dtypes -- and
so is the way duplicate indices are resolved: Caffe2's CPU kernels walked the
indices one by one, so a row named twice is updated twice, the second time
from the result of the first.  ``occurrence_plan`` reproduces that order
with a few vectorised steps (at most about 2*sqrt(len(indices)) of them)
instead of a Python loop over rows.

The module name starts with "_" so the operator loader does not import it as
an operator module.
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.proto import caffe2_pb2

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def host_int(value) -> int:
    """A Python int from a NumPy/CuPy scalar or 0-d array (syncs on CUDA)."""
    return int(value.item() if hasattr(value, "item") else value)


def check_index_vector(ctx, i: int, indices, n_rows: int | None, data_i: int):
    """Flattened indices of input i, checked: int32/int64, each in [0, n_rows)
    (n_rows None: the dtype only, for kernels that check the range themselves)."""
    if np.dtype(indices.dtype) not in INDEX_DTYPES:
        ctx.fail(f"{ctx.input_label(i)} must hold int32 or int64 indices, got {indices.dtype}")
    flat = indices.reshape(-1)
    if flat.size and n_rows is not None:
        bad = (flat < 0) | (flat >= n_rows)
        if bool(bad.any()):
            pos = host_int(ctx.xp.argmax(bad))
            ctx.fail(f"{ctx.input_label(i)} holds index {host_int(flat[pos])} at position "
                     f"{pos}, outside [0, {n_rows}) -- the first dimension of "
                     f"{ctx.input_label(data_i)}")
    return flat


def check_scalar(ctx, i: int, value, what: str):
    """The single value of a one-element floating input (a learning rate, a weight)."""
    if value.size != 1:
        ctx.fail(f"{ctx.input_label(i)} ({what}) must hold exactly 1 element, "
                 f"got shape {tuple(value.shape)}")
    if value.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(i)} ({what}) must be a floating "
                 f"tensor, got {value.dtype}")
    return value.reshape(-1)[0]


def check_float(ctx, i: int, value, like_i: int | None = None, like=None):
    """Input i must be float32/float64 and, when given, of the dtype of input like_i."""
    if np.dtype(value.dtype) not in FLOAT_DTYPES:
        ctx.fail(f"{ctx.input_label(i)} must be float32 or float64, got {value.dtype}")
    if like is not None:
        if value.dtype != like.dtype:
            ctx.fail(f"{ctx.input_label(i)} has dtype {value.dtype}, "
                     f"expected {like.dtype} like {ctx.input_label(like_i)}")


def check_float32(ctx, i: int, value, alternative: str = "") -> None:
    """Input i must be float32: the sparse optimizers' tables, moments and gradients,
    as Caffe2 registered them (SparseAdagradOp<float>, ...; no float64 kernel)."""
    if value.dtype != np.float32:
        other = f" ({alternative})" if alternative else ""
        ctx.fail(f"{ctx.input_label(i)} has dtype {value.dtype}, expected float32{other}: "
                 f"Caffe2's {ctx.op_def.type} takes float tensors only")


def check_rows(ctx, i: int, value):
    """Input i has a first dimension (rank >= 1); returns (rows, block size)."""
    if value.ndim < 1:
        ctx.fail(f"{ctx.input_label(i)} must have rank >= 1 (rows to update), "
                 f"got a scalar")
    return value.shape[0], math.prod(value.shape[1:])


def owned(value):
    """``value`` if it may be written in place, else a private copy.

    A blob can hold a view that shares memory with another blob (a kernel that
    reshapes without copying); writing through it would change that other
    blob too, so such arrays are copied once before an in-place update.
    """
    flags = value.flags
    if value.base is None and flags.c_contiguous and getattr(flags, "writeable", True):
        return value
    return value.copy()


def stable_argsort(xp, values, axis=-1):
    """Stable argsort on NumPy or CuPy (CuPy's sort is stable and takes no ``kind``)."""
    if xp is np:
        return np.argsort(values, axis=axis, kind="stable")
    return xp.argsort(values, axis=axis)


def _host(values):
    """A NumPy copy of a NumPy or CuPy array (index bookkeeping is done on the host)."""
    return np.asarray(values.get() if hasattr(values, "get") else values)


def occurrence_plan(xp, idx, heavy_rows: bool = True):
    """How to apply one update per position of ``idx`` in Caffe2's sequential order.

    Returns ``(rounds, heavy)``.  Each round is an array of positions naming
    every row at most once: round k holds the (k+1)-th occurrence of each row,
    so applying the rounds one after another applies every row's updates in
    index order while each round is one vectorised gather/compute/scatter.
    A row named more than sqrt(len(idx)) times would need as many rounds; with
    ``heavy_rows`` such rows are returned separately in ``heavy`` (one array
    of its positions, in index order, per row) for kernels whose recurrence is
    a running sum, which they apply with one cumulative sum per row.  Either
    way the Python-level loop runs at most about 2*sqrt(len(idx)) times, never
    once per row or per index.
    """
    n = idx.size
    if n == 0:
        return [], []
    order = stable_argsort(xp, idx)
    ranked = idx[order]
    starts_group = xp.empty(n, dtype=bool)
    starts_group[0] = True
    starts_group[1:] = ranked[1:] != ranked[:-1]
    if bool(starts_group.all()):
        return [xp.arange(n)], []
    group_start = xp.flatnonzero(starts_group)
    group = xp.cumsum(starts_group) - 1
    rank = xp.arange(n) - group_start[group]
    heavy = []
    if heavy_rows:
        starts = _host(group_start)
        sizes = np.diff(np.append(starts, n))
        is_heavy = sizes > max(1, math.isqrt(n))
        if is_heavy.any():
            heavy = [order[s:s + c] for s, c in zip(starts[is_heavy], sizes[is_heavy])]
            light = ~xp.asarray(is_heavy)[group]
            order, rank = order[light], rank[light]
            if order.size == 0:
                return [], heavy
    by_rank = order[stable_argsort(xp, rank)]
    counts = np.bincount(_host(rank))
    return xp.split(by_rank, np.cumsum(counts)[:-1].tolist()), heavy


def split_repeated(xp, idx, n_rows: int):
    """``(once, repeated)``: positions of idx whose row it names once / more than once.

    Both are in index order; ``once`` is None when no row repeats (every position).
    Rows named once need no ordering at all, so a kernel can update them in one
    pass and leave only the repeated rows to occurrence_plan.  Costs O(len(idx))
    and a scratch vector of n_rows position numbers of which only the named
    entries are touched.  Which of several writes to the same entry lands is
    irrelevant: exactly one position per distinct row reads its own number back.
    """
    n = idx.size
    pos = xp.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    owner = xp.empty(n_rows, pos.dtype)
    owner[idx] = pos
    won = owner[idx] == pos
    if bool(won.all()):
        return None, pos[:0]
    owner[idx[~won]] = -1  # a row with a losing position repeats
    once = owner[idx] == pos
    return xp.flatnonzero(once), xp.flatnonzero(~once)


def occurrence_rounds(xp, idx) -> list:
    """Only rounds (see occurrence_plan): for recurrences that are not running sums."""
    return occurrence_plan(xp, idx, heavy_rows=False)[0]


def running_sum(xp, first, steps):
    """first, first + steps[0], (first + steps[0]) + steps[1], ... along axis 0.

    ``first`` is a one-row slice.  The additions happen left to right, as in a
    sequential loop (NumPy's cumulative sum does not reorder them), so a heavy
    row's result is bit-identical to Caffe2's one-index-at-a-time update on CPU.
    """
    return xp.cumsum(xp.concatenate([first, steps]), axis=0)


def last_occurrences(xp, idx):
    """Positions of the last occurrence of each value in idx: sequential "last write wins"."""
    n = idx.size
    if n == 0:
        return xp.arange(0)
    order = stable_argsort(xp, idx)
    ranked = idx[order]
    ends_group = xp.empty(n, dtype=bool)
    ends_group[-1] = True
    ends_group[:-1] = ranked[1:] != ranked[:-1]
    return order[ends_group]


_HOST = caffe2_pb2.DeviceOption()


def inputs_on_host(*positions):
    """Device inference for ops reading an iteration counter: Caffe2 kept it on the CPU
    whatever the op's device, so the inputs at ``positions`` live on the host."""
    def infer(op_def):
        op_device = op_def.device_option if op_def.HasField("device_option") else _HOST
        inputs = [_HOST if i in positions else op_device for i in range(len(op_def.input))]
        return inputs, [op_device] * len(op_def.output)
    return infer


def iteration(ctx, i: int, counter) -> int:
    """The value of a 1-element int64 iteration counter (input i, on the host)."""
    counter = ctx.device.to_host(counter)
    if getattr(counter, "dtype", None) != np.int64 or counter.size != 1:
        ctx.fail(f"{ctx.input_label(i)} must be a 1-element int64 iteration counter, got "
                 f"{getattr(counter, 'dtype', type(counter).__name__)} of shape "
                 f"{tuple(getattr(counter, 'shape', ()))}")
    return int(counter.reshape(-1)[0])
