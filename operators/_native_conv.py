"""The compiled im2col of 2-D NCHW float32 convolutions (caffe2lite/_native/conv.c).

``im2col_into(x, res, col, offset)`` writes the im2col matrix of each image of
the C-contiguous ``x`` (n, C, H, W) into the float32 matrix ``col``
(C * KH * KW, >= offset + n * L), image k's L = OH * OW columns starting at
column ``offset + k * L``, on operators/_parallel.py's threads when BLAS runs
single-threaded (ctypes releases the GIL): the same values as NumPy's copy of the window
view, in one pass.
``available()`` says whether the library is built (``CAFFE2LITE_DISABLE_NATIVE``
and stale builds count as not built: callers keep their NumPy path).
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native
from caffe2lite.operators import _parallel

NATIVE_ABI = 4  # must match caffe2lite_conv_abi() in the C file
_im2col = None
_lib = _native.load_versioned("_conv", "caffe2lite_conv_abi", NATIVE_ABI, "convolution")
if _lib is not None:
    _im2col = _lib.caffe2lite_im2col_f32
    _im2col.restype = None
    _im2col.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 15 + [ctypes.c_void_p] + \
        [ctypes.c_int64] * 2

_winograd = {}
if _lib is not None:
    for _name, _ints in (("weights", 4), ("input", 9), ("output", 9)):
        _fn = getattr(_lib, f"caffe2lite_winograd_{_name}_f32")
        _fn.restype = None
        _tail = [ctypes.c_void_p] + [ctypes.c_int64] * 3 if _name == "input" else \
            [ctypes.c_void_p, ctypes.c_int64]
        _fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * _ints + _tail
        _winograd[_name] = _fn

# Bytes of im2col rows a thread should have at least before another thread joins in:
# a thread copies 128 KiB in well under the ~70 us it takes to hand work to another.
MIN_BYTES_PER_THREAD = 1 << 20


def available() -> bool:
    return _im2col is not None


def takes(x, res) -> bool:
    """Whether the C code can build the im2col matrix of ``x`` for geometry ``res``."""
    return _im2col is not None and len(res.kernel) == 2 and x.dtype == np.float32 and \
        x.ndim == 4 and _native.addressable(x)


def im2col_into(x, res, col, offset: int = 0, threads: bool = True, rows=None) -> None:
    """Fill ``col`` (see the module doc); ``x`` must pass ``takes``.  ``threads=False``:
    on this thread alone (the caller is itself a pool thread).  ``rows`` = (oh0, oh1):
    only the columns of those output rows (a band of the output, (oh1 - oh0) * OW
    columns per image)."""
    n, C, H, W = x.shape
    KH, KW = res.kernel
    OH, OW = res.out_dims
    oh0, oh1 = (0, OH) if rows is None else rows
    L = (oh1 - oh0) * OW
    pairs = C * KH  # pieces: one (channel, kernel row) pair each
    stride = col.strides[0] // col.itemsize
    base = col.ctypes.data  # a column block of a wider matrix is not C-contiguous
    args = (H, W, KH, KW, res.stride[0], res.stride[1], res.dilation[0], res.dilation[1],
            res.heads[0], res.heads[1], oh0, oh1, OW)
    image_bytes = x[0].nbytes if n else 0
    for k in range(n):
        address = _native.address(x[k])
        first = offset + k * L

        def fill(r0, r1, address=address, first=first):
            _im2col(address, *args, r0, r1, base, stride, first)

        if threads and pairs * KW * L * 4 >= 2 * MIN_BYTES_PER_THREAD and image_bytes:
            _parallel.for_each_range(fill, pairs, _parallel.threads_beside_blas())
        else:
            fill(0, pairs)


# -- Winograd F(2x2, 3x3): see caffe2lite/_native/conv.c ----------------------------------
def winograd_available() -> bool:
    return bool(_winograd)


def winograd_tiles(res) -> tuple[int, int]:
    """(tile rows, tile columns): 2x2 output blocks covering the output."""
    OH, OW = res.out_dims
    return -(-OH // 2), -(-OW // 2)


def planes(rows: int, cols: int):
    """An uninitialised (16, rows, cols) float32 stack whose 16 matrices lie a little
    more than a matrix apart (64 bytes more; see the C file: never a multiple of 4 KiB
    then): what the transforms and the GEMMs between them read and write."""
    stride = rows * cols + 16
    flat = np.empty(16 * stride, np.float32)
    return np.lib.stride_tricks.as_strided(flat, (16, rows, cols), (4 * stride, 4 * cols, 4))


def _plane(a) -> int:
    return a.strides[0] // 4


def winograd_weights(W, threads: int = 1):
    """U (16, M, C): the filters W (M, C, 3, 3) float32, C-contiguous, transformed."""
    M, C = W.shape[:2]
    U = planes(M, C)
    fn, w, u = _winograd["weights"], _native.address(W), U.ctypes.data
    _parallel.for_each_range(lambda a, b: fn(w, M, C, a, b, u, _plane(U)), M, threads)
    return U


def winograd_input_into(x, res, V, t0: int, threads: int = 1) -> None:
    """V[:, :, t0 : t0 + tiles of x] (V from ``planes``, (16, C, T)) from one image x
    (C, H, W)."""
    C, H, W = x.shape
    TH, TW = winograd_tiles(res)
    fn, address, v = _winograd["input"], _native.address(x), V.ctypes.data
    _parallel.for_each_range(
        lambda a, b: fn(address, C, H, W, res.heads[0], res.heads[1], TH, TW, a, b, v,
                        V.shape[2], t0, _plane(V)), C, threads)


def winograd_output_into(P, res, t0: int, y, threads: int = 1) -> None:
    """One image's output y (M, OH, OW), C-contiguous, from P (from ``planes``,
    (16, M, T)) at tile t0."""
    M = P.shape[1]
    TH, TW = winograd_tiles(res)
    OH, OW = res.out_dims
    fn, p, out = _winograd["output"], P.ctypes.data, _native.address(y)
    _parallel.for_each_range(
        lambda a, b: fn(p, M, P.shape[2], t0, TH, TW, OH, OW, a, b, out, _plane(P)), M,
        threads)
