"""The compiled detection kernels (caffe2lite/_native/detection.c), when built.

``roi_align(table, frames, H, W, PH, PW)`` is RoIAlign's forward pass over a
channels-last feature map; ``nms(boxes, thresh, top_n, plus_one)`` is greedy
NMS over boxes already in score order.  Each returns None when the library is
not built, stale or disabled (``CAFFE2LITE_DISABLE_NATIVE=1``); the caller then
runs its NumPy engine, which gives the same results.  The callers check shapes,
dtypes and values first.
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native

NATIVE_ABI = 4  # must match c2l_detection_abi() in the C file
_roi_align = _nms = None
_lib = _native.load_versioned("_detection", "c2l_detection_abi", NATIVE_ABI, "detection")
if _lib is not None:
    _roi_align = _lib.c2l_roi_align
    _roi_align.restype = None
    _roi_align.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_void_p]
    _nms = _lib.c2l_nms
    _nms.restype = ctypes.c_int64
    _nms.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int64,
                     ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p]


def available() -> bool:
    return _lib is not None


def roi_align(table, frames, H: int, W: int, PH: int, PW: int, nchw: bool):
    """(R, C, PH, PW) (``nchw``) or (R, PH, PW, C) float32 from ``table`` (N, H, W, C)
    float32 and ``frames`` (R, 7) float64 rows [batch, y1, x1, roi_h, roi_w, grid_h,
    grid_w]; or None."""
    if _roi_align is None:
        return None
    table = np.ascontiguousarray(table, dtype=np.float32)
    frames = np.ascontiguousarray(frames, dtype=np.float64)
    C, R = table.shape[-1], frames.shape[0]
    out = np.empty((R, C, PH, PW) if nchw else (R, PH, PW, C), np.float32)
    scratch = np.empty(PH * PW * C, np.float32) if nchw else None
    if out.size:
        _roi_align(table.ctypes.data, H, W, C, frames.ctypes.data, R, PH, PW, out.ctypes.data,
                   None if scratch is None else scratch.ctypes.data)
    return out


def nms(boxes, thresh: float, top_n: int, plus_one: bool):
    """Row numbers (int64, in order) kept by greedy NMS over ``boxes`` (M, 4) float32 in
    score order; or None."""
    if _nms is None:
        return None
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    m = boxes.shape[0]
    keep = np.empty(m, np.int64)
    scratch = np.empty(5 * m, np.float32)
    n = _nms(boxes.ctypes.data, m, thresh, top_n, int(plus_one), scratch.ctypes.data,
             keep.ctypes.data) if m else 0
    return keep[:n]
