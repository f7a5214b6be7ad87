"""The compiled AdaGrad updates (caffe2lite/_native/adagrad.c), when built.

``native_sparse_adagrad`` applies SparseAdagrad or RowWiseSparseAdagrad to a
float32 table in place, one update per index occurrence in index order
(Caffe2's order), optionally renormalising each touched row after its last
update (the fused SparseNormalize).  It returns False when the library is not
built, stale or disabled (``CAFFE2LITE_DISABLE_NATIVE=1``), or when the arrays
are not ones C can address directly; the caller then runs its NumPy path.
Indices are range-checked before anything is written; a bad one raises
``_native.BadIndex`` carrying its position, and nothing has changed.  Dtypes, shapes
and arguments are the caller's to check.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native

NATIVE_ABI = 3  # must match caffe2lite_adagrad_abi() in the C file


_prepare = _dense = None
_updates = {}  # table dtype -> the C update for it
_max_row_wise_block = 0
_lib = _native.load_versioned("_adagrad", "caffe2lite_adagrad_abi", NATIVE_ABI, "Adagrad")
if _lib is not None:
    _prepare = _lib.caffe2lite_sparse_adagrad_prepare
    _prepare.restype = ctypes.c_int64
    _prepare.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64,
                         ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    _updates[np.dtype(np.float32)] = _lib.caffe2lite_sparse_adagrad_f32
    if _native.int_symbol(_lib, "caffe2lite_sparse_adagrad_has_f16") == 1:
        _updates[np.dtype(np.float16)] = _lib.caffe2lite_sparse_adagrad_f16
    for _fn in _updates.values():
        _fn.restype = None
        _fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                        ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                        ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int32,
                        ctypes.c_void_p, ctypes.c_float, ctypes.c_int32]
    _dense = _lib.caffe2lite_adagrad_f32
    _dense.restype = None
    _dense.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                       ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                       ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p]
    fn = _lib.caffe2lite_sparse_adagrad_max_row_wise_block
    fn.restype = ctypes.c_int64
    _max_row_wise_block = fn()


def available() -> bool:
    return bool(_updates)


def native_sparse_adagrad(table, history, idx, g2, rate, eps, wd, row_wise: bool,
                          normalize=None) -> bool:
    """Update ``table`` (rows, block) and ``history`` in place; False if not done.

    ``table`` is float32 or float16, ``history`` and ``g2`` (the (len(idx), block)
    gradient rows, read where they lie when each row is contiguous: _row_stride)
    float32, ``idx`` the flat int32/int64 index vector, ``rate``/``eps``/``wd``
    float32 scalars.
    ``normalize`` = (norm, use_max_norm) renormalises each touched row after
    its last update, exactly as SparseNormalize's NATIVE engine.
    """
    update = _updates.get(table.dtype)
    if update is None or history.dtype != np.float32 or g2.dtype != np.float32:
        return False
    rows, block = table.shape
    if row_wise and block > _max_row_wise_block:
        return False
    addressable = _native.addressable
    if not (addressable(table) and addressable(history)):
        return False
    if not addressable(idx):
        idx = np.ascontiguousarray(idx)
    grad_stride = _row_stride(g2)
    if grad_stride is None:
        g2 = np.ascontiguousarray(g2)
        grad_stride = block
    n = idx.size
    if n == 0:
        return True
    address = _native.address
    is_last = slots = None
    capacity = 0
    if normalize is not None:
        capacity = 1 << max(4, (2 * n - 1).bit_length())
        slots = np.empty(capacity, np.int64)
        is_last = np.empty(n, np.uint8)
    indices = address(idx)
    bad = _prepare(rows, indices, idx.itemsize, n,
                   None if slots is None else address(slots), capacity,
                   None if is_last is None else address(is_last))
    if bad >= 0:
        raise _native.BadIndex(int(bad))
    norm, use_max_norm = normalize if normalize is not None else (1.0, True)
    update(address(table), address(history), block, indices, idx.itemsize, n,
            g2.ctypes.data, grad_stride, rate, eps, wd, row_wise,
            None if is_last is None else address(is_last), norm, use_max_norm)
    return True


def _row_stride(g2):
    """Floats from one row of the 2-D float32 ``g2`` to the next when C can read it in
    place -- rows contiguous and aligned, evenly spaced (a column block of a wider
    matrix, as Split's views of the main job's joint gradient are) -- else None."""
    if g2.ndim != 2 or not g2.flags.aligned or not g2.dtype.isnative:
        return None
    if g2.flags.c_contiguous:
        return g2.shape[1]
    row, col = g2.strides
    if col != 4 or row < 4 * g2.shape[1] or row % 4:
        return None
    return row // 4


def native_adagrad(param, moment, grad, rate, eps, decay, wd, use_wd):
    """Dense Adagrad into fresh arrays: (new param, new moment), or None when C cannot
    serve (not float32, or not C-contiguous and aligned).  Shapes are checked by the
    caller (equal sizes)."""
    if _dense is None or not all(a.dtype == np.float32 and _native.addressable(a)
                                 for a in (param, moment, grad)):
        return None
    out_param, out_moment = np.empty_like(param), np.empty_like(moment)
    address = _native.address
    _dense(address(param), address(moment), address(grad), param.size, rate, eps, decay, wd,
           use_wd, address(out_param), address(out_moment))
    return out_param, out_moment
