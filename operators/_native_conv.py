"""The compiled im2col of 2-D NCHW float32 convolutions (caffe2lite/_native/conv.c).

``im2col_into(x, res, col, offset)`` writes the im2col matrix of each image of
the C-contiguous ``x`` (n, C, H, W) into the float32 matrix ``col``
(C * KH * KW, >= offset + n * L), image k's L = OH * OW columns starting at
column ``offset + k * L``, on operators/_parallel.py's threads when BLAS runs
single-threaded (ctypes releases the GIL): the same values as NumPy's copy of the window view, in one pass.
``available()`` says whether the library is built (``CAFFE2LITE_DISABLE_NATIVE``
and stale builds count as not built: callers keep their NumPy path).
"""

from __future__ import annotations

import ctypes

import numpy as np

from caffe2lite import _native
from caffe2lite.operators import _parallel

NATIVE_ABI = 2  # must match caffe2lite_conv_abi() in the C file
_im2col = None
_lib = _native.load_versioned("_conv", "caffe2lite_conv_abi", NATIVE_ABI, "convolution")
if _lib is not None:
    _im2col = _lib.caffe2lite_im2col_f32
    _im2col.restype = None
    _im2col.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 15 + [ctypes.c_void_p] + \
        [ctypes.c_int64] * 2

# Bytes of im2col rows a thread should have at least before another thread joins in.
MIN_BYTES_PER_THREAD = 1 << 17


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
