"""The compiled dense helpers (caffe2lite/_native/dense.c), when built.

``column_sums(x)`` is ``x.sum(axis=0)`` and ``relu_gradient(y, dy)`` is
``np.where(y > 0, dy, 0)``, the same bits (the C file says why), each in one
pass.  Both return None when the library is not built, stale or disabled, or
the arrays are not C-contiguous float32 ones it takes; the caller then uses
NumPy.  Shapes are the caller's to check.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native

NATIVE_ABI = 1  # must match caffe2lite_dense_abi() in the C file
_column_sums = _relu_gradient = None
_lib = _native.load_versioned("_dense", "caffe2lite_dense_abi", NATIVE_ABI, "dense")
if _lib is not None:
    _column_sums = _lib.caffe2lite_column_sums_f32
    _column_sums.restype = None
    _column_sums.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    _relu_gradient = _lib.caffe2lite_relu_gradient_f32
    _relu_gradient.restype = None
    _relu_gradient.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                               ctypes.c_void_p]


def _takes(*arrays) -> bool:
    return all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.aligned and
               a.dtype.isnative and a.size for a in arrays)


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
