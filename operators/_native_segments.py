"""The compiled SparseLengths* forward (caffe2lite/_native/sparse_lengths.c), when built.

``native_gather_segment_sum`` computes what operators/_segments.py's
gather_segment_sum does -- the same sums in the same order, so the same bits --
in one C pass per bag, ranges of bags on operators/_parallel.py's threads
(ctypes releases the GIL).  It returns None when the library was not built
(no compiler), is stale, is disabled (``CAFFE2LITE_DISABLE_NATIVE=1``), or the
table cannot be addressed directly by C (not C-contiguous, misaligned,
byte-swapped); the caller then uses NumPy.  Callers check every index and
length first: the C code trusts them.
"""

from __future__ import annotations

import ctypes
import warnings

import numpy as np

from caffe2lite import _native
from operators._parallel import for_each_range

NATIVE_ABI = 1  # must match caffe2lite_sparse_lengths_abi() in the C file
# Rows summed per piece of work handed to a thread (a few hundred microseconds).
ROWS_PER_PIECE = 4096

_functions = {}
_lib = _native.load("_sparse_lengths")
if _lib is not None and _native.int_symbol(_lib, "caffe2lite_sparse_lengths_abi") != NATIVE_ABI:
    warnings.warn("caffe2lite: the built SparseLengths C library is stale (rebuild with "
                  "`pip install -e .`); using the NumPy kernels", RuntimeWarning, stacklevel=1)
    _lib = None
if _lib is not None:
    for _dtype, _name in ((np.float32, "caffe2lite_sparse_lengths_sum_f32"),
                          (np.float16, "caffe2lite_sparse_lengths_sum_f16")):
        _fn = getattr(_lib, _name)
        _fn.restype = None
        _fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32,
                        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                        ctypes.c_void_p]
        _functions[np.dtype(_dtype)] = _fn


def available() -> bool:
    return bool(_functions)


def native_gather_segment_sum(data, indices, lengths, scalars=None):
    """(m, width) float32 segment sums of data[indices] (x scalars), or None (see above)."""
    fn = _functions.get(np.dtype(data.dtype))
    if fn is None or not (data.flags.c_contiguous and data.flags.aligned
                          and data.dtype.isnative):
        return None
    m, n = int(lengths.shape[0]), int(indices.shape[0])
    width = int(np.prod(data.shape[1:], dtype=np.int64))
    indices = np.ascontiguousarray(indices)
    if not indices.dtype.isnative:
        indices = indices.astype(indices.dtype.newbyteorder("="))
    weights = None if scalars is None else np.ascontiguousarray(scalars, dtype=np.float32)
    offsets = np.zeros(m + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty((m, width), np.float32)
    step = max(1, ROWS_PER_PIECE * m // max(n, 1))

    def run(first, stop):
        fn(data.ctypes.data, width, indices.ctypes.data, indices.itemsize, offsets.ctypes.data,
           None if weights is None else weights.ctypes.data, first * step,
           min(m, stop * step), out.ctypes.data)

    for_each_range(run, -(-m // step))
    return out
