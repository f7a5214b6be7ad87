"""The compiled dense helpers (caffe2lite/_native/dense.c), when built.

``column_sums(x)`` is ``x.sum(axis=0)``, ``relu_gradient(y, dy)`` is
``np.where(y > 0, dy, 0)``, ``add_row(y, b)`` is ``y += b`` and ``outer(a, b)`` is
``a * b`` for an (m, 1) and a (1, n) matrix, the same bits (the C file says why),
each in one pass; ``gather_rows(data, indices, wrap)`` is ``np.take(data, indices,
axis=0)``.
They return None (add_row: False) when the library is not built, stale or disabled,
or the arrays are not ones the C code takes; the caller then uses NumPy.  Shapes and
dtypes are the caller's to check.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native

NATIVE_ABI = 3  # must match caffe2lite_dense_abi() in the C file
_column_sums = _relu_gradient = _gather_rows = _add_row = _outer = None
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
    _add_row = _lib.caffe2lite_add_row_f32
    _add_row.restype = None
    _add_row.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    _outer = _lib.caffe2lite_outer_f32
    _outer.restype = None
    _outer.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                       ctypes.c_void_p]

# Fewest elements worth a C call's fixed cost (about 1 us) for add_row and outer.
ELEMENTWISE_MIN = 4096

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


def add_row(y, b) -> bool:
    """y += b in place for a float32 matrix y and a vector b of one element per column;
    False (nothing done) when C does not take these arrays."""
    if _add_row is None or y.ndim != 2 or y.size < ELEMENTWISE_MIN or \
            b.size != y.shape[1] or not y.flags.writeable or not _takes(y, b):
        return False
    _add_row(_native.address(y), y.shape[0], y.shape[1], _native.address(b))
    return True


def outer(a, b):
    """a * b for float32 matrices a (m, 1) and b (1, n), or None."""
    if _outer is None or a.ndim != 2 or b.ndim != 2 or a.shape[1] != 1 or b.shape[0] != 1 \
            or a.shape[0] * b.shape[1] < ELEMENTWISE_MIN or not _takes(a, b):
        return None
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    _outer(_native.address(a), a.shape[0], _native.address(b), b.shape[1],
           _native.address(out))
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
