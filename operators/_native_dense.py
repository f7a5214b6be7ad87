"""The compiled dense helpers (caffe2lite/_native/dense.c), when built.

``column_sums(x)`` is ``x.sum(axis=0)`` and ``relu_gradient(y, dy)`` is
``np.where(y > 0, dy, 0)``, the same bits (the C file says why), each in one
pass; ``gather_rows(data, indices, wrap)`` is ``np.take(data, indices, axis=0)``.
They return None when the library is not built, stale or disabled, or the
arrays are not ones the C code takes; the caller then uses NumPy.  Shapes and
dtypes are the caller's to check.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native

NATIVE_ABI = 2  # must match caffe2lite_dense_abi() in the C file
_column_sums = _relu_gradient = _gather_rows = None
_lib = _native.load_versioned("_dense", "caffe2lite_dense_abi", NATIVE_ABI, "dense")
if _lib is not None:
    _column_sums = _lib.caffe2lite_column_sums_f32
    _column_sums.restype = None
    _column_sums.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    _relu_gradient = _lib.caffe2lite_relu_gradient_f32
    _relu_gradient.restype = None
    _relu_gradient.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                               ctypes.c_void_p]
    _gather_rows = _lib.caffe2lite_gather_rows
    _gather_rows.restype = ctypes.c_int64
    _gather_rows.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                             ctypes.c_int32, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p]


# Fewest indices worth the C call's fixed cost (a few us): below this NumPy's take wins.
GATHER_MIN_INDICES = 256


def _takes(*arrays) -> bool:
    """Non-empty float32 arrays C can read in place."""
    return all(a.dtype == np.float32 and a.size and _native.addressable(a) for a in arrays)


def column_sums(x):
    """x.sum(axis=0) of a 2-D float32 matrix with more than one column, or None.

    (With one column NumPy sums the contiguous column pairwise: left to NumPy.)
    """
    if _column_sums is None or x.ndim != 2 or x.shape[1] < 2 or not _takes(x):
        return None
    out = np.empty(x.shape[1], np.float32)
    _column_sums(_native.address(x), x.shape[0], x.shape[1], _native.address(out))
    return out


def relu_gradient(y, dy):
    """np.where(y > 0, dy, 0) for float32 y and dy of one shape, or None."""
    if _relu_gradient is None or not _takes(y, dy):
        return None
    out = np.empty(dy.shape, np.float32)
    _relu_gradient(_native.address(y), _native.address(dy), dy.size, _native.address(out))
    return out


def gather_rows(data, indices, wrap: bool):
    """np.take(data, indices, axis=0) with indices checked (and wrapped) on the way, or
    None.  Raises _native.BadIndex for an index outside data's rows (after wrapping)."""
    if _gather_rows is None or indices.size < GATHER_MIN_INDICES or data.ndim < 1 or \
            not data.size or data.dtype.hasobject or \
            not (data.flags.c_contiguous and data.flags.aligned) or \
            not _native.addressable(indices):
        return None
    out = np.empty(indices.shape + data.shape[1:], data.dtype)
    bad = _gather_rows(_native.address(data), data.shape[0], data.nbytes // data.shape[0],
                       _native.address(indices), indices.itemsize, indices.size, int(wrap),
                       _native.address(out))
    if bad >= 0:
        raise _native.BadIndex(int(bad))
    return out
