"""The compiled 8-bit row-wise SparseLengths* forward (caffe2lite/_native/rowwise_8bit.c).

``native_quantized_segment_sum`` computes what operators/_rowwise_8bit.py's
NumPy engine does -- the same arithmetic in the same order, so the same bits --
in one C pass per bag, chunks of bags on operators/_parallel.py's threads
(ctypes releases the GIL), with the thread hand-off of operators/_native_segments.py.
It returns None when the library was not built (no compiler), is stale or is
disabled (``CAFFE2LITE_DISABLE_NATIVE=1``); the caller then runs NumPy.  Bad
LENGTHS or INDICES raise BadLengths / BadIndices, and the caller runs its
Python checks to name the culprit.  Dtypes, ranks and shapes are the caller's
to check.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native
from caffe2lite.operators._native_segments import ROWS_PER_PIECE, _c_ready, bag_offsets, run_shared

NATIVE_ABI = 1  # must match caffe2lite_rowwise_8bit_abi() in the C file

_lib = _native.load_versioned("_rowwise_8bit", "caffe2lite_rowwise_8bit_abi", NATIVE_ABI,
                              "8-bit row-wise SparseLengths")
_offsets = _sum = None
if _lib is not None:
    _offsets = _lib.caffe2lite_rowwise_8bit_offsets
    _offsets.restype = ctypes.c_int32
    _offsets.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_int64,
                         ctypes.c_void_p]
    _sum = _lib.caffe2lite_rowwise_8bit_sls
    _sum.restype = ctypes.c_int32
    _sum.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                     ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32,
                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64,
                     ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]


def cap_vector_level(cap: int) -> int:
    """Caps the C lookup's vector code (2: AVX-512F, 1: AVX2, 0: plain loops) and
    returns the level now in use.  For tests: every level must give the same bits."""
    return int(_lib.caffe2lite_rowwise_8bit_cap_level(ctypes.c_int32(cap)))


def available() -> bool:
    return _sum is not None


def native_quantized_segment_sum(table, width, scale_bias, indices, lengths, weights, mean):
    """(m, width) float32 bag sums of dequantized rows, or None when C is unavailable.

    ``table``: uint8, C-contiguous, rows of table.shape[0]; values in the first
    ``width`` bytes of each row.  ``scale_bias``: None for the fused layout (the
    row's 8 bytes after its values), else the (rows, 2) float32 matrix of the older
    layout.  indices/lengths: int32/int64 vectors; weights: float32 of len(indices)
    or None.
    """
    if _sum is None or not table.flags.c_contiguous:
        return None
    n_rows = int(table.shape[0])
    row_bytes = int(table.size // n_rows) if n_rows else 0
    if scale_bias is None:
        sb_holder, sb_address, sb_stride = table, _native.address(table) + width, row_bytes
    else:
        sb_holder = _c_ready(np.ascontiguousarray(scale_bias))
        sb_address, sb_stride = _native.address(sb_holder), 8
    m, n = lengths.shape[0], indices.shape[0]
    indices, lengths = _c_ready(indices), _c_ready(lengths)
    scratch, state, offsets = bag_offsets(_offsets, lengths, n)
    weights = None if weights is None else _c_ready(weights)
    out = np.empty((m, width), np.float32)
    chunk = max(1, ROWS_PER_PIECE * m // max(n, 1))
    args = (_native.address(table), n_rows, row_bytes, width, sb_address, sb_stride,
            _native.address(indices), indices.itemsize, offsets,
            None if weights is None else _native.address(weights), int(bool(mean)), m, chunk,
            state)
    run_shared(_sum, args, out, -(-m // chunk), scratch, n_rows,
               keep=(table, sb_holder, indices, weights, scratch, out))
    return out
