"""Nearest-neighbour resizing along one axis, forward and backward, for NumPy and CuPy.

Shared by ResizeNearest, UpsampleNearest and Int8ResizeNearest.  Caffe2's
``resize_op.cc`` sizes an axis ``int(in_size * scale)`` and reads, for output
position ``y``, input ``min(int(y / scale), in_size - 1)`` -- in float32, as
its ``float`` scales computed.  The map from output to input positions is
non-decreasing, so the backward pass (every output gradient added into the
input position it read) is ``max_repeat`` plain indexed additions: the k-th
output of each run of equal sources goes in pass k, where no two outputs
share a source.  No scatter-add and no loop over elements; at most
``ceil(scale)`` passes (one when shrinking).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def output_size(in_size: int, scale) -> int:
    """Caffe2's ``int output = input * scale`` with a float32 scale."""
    return int(F32(in_size) * F32(scale))


def source_indices(out_size: int, in_size: int, scale) -> np.ndarray:
    """int64 input position read by each of ``out_size`` outputs (host array)."""
    idx = (np.arange(out_size, dtype=F32) / F32(scale)).astype(np.int64)
    return np.minimum(idx, max(in_size - 1, 0))


def gather(xp, x, axis: int, src: np.ndarray):
    """``x`` resized along ``axis`` by reading positions ``src``."""
    return xp.take(x, xp.asarray(src), axis=axis)


def sum_back(xp, dy, axis: int, src: np.ndarray, in_size: int):
    """The gradient of ``gather``: dy's slices along ``axis`` added into ``in_size``
    positions (each output slice into the position it read)."""
    shape = list(dy.shape)
    shape[axis] = in_size
    out = xp.zeros(shape, dy.dtype)
    if src.size == 0:
        return out
    # rank of each output within its run of equal sources (src is non-decreasing)
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    rank = np.arange(src.size) - np.repeat(starts, np.diff(np.r_[starts, src.size]))
    index = [slice(None)] * dy.ndim
    for k in range(int(rank.max()) + 1):  # passes, at most ceil(scale)
        outputs = np.flatnonzero(rank == k)
        index[axis] = xp.asarray(src[outputs])
        target = tuple(index)
        out[target] = out[target] + xp.take(dy, xp.asarray(outputs), axis=axis)
    return out
