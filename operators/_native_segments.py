"""The compiled SparseLengths* forward (caffe2lite/_native/sparse_lengths.c), when built.

``native_gather_segment_sum`` computes what operators/_segments.py's
gather_segment_sum does -- the same sums in the same order, so the same bits --
in one C pass per bag, chunks of bags on operators/_parallel.py's threads
(ctypes releases the GIL).  It returns None when the library was not built
(no compiler), is stale, is disabled (``CAFFE2LITE_DISABLE_NATIVE=1``), or the
table cannot be addressed directly by C (not C-contiguous, misaligned,
byte-swapped); the caller then uses NumPy.  The C code checks LENGTHS and
INDICES as it reads them (one pass instead of NumPy's min/max/sum/cumsum
passes); on bad input this raises BadLengths or BadIndices, and the caller
runs its Python checks to say which element is wrong.  The dtypes and ranks
are the caller's to check.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from caffe2lite import _native
from caffe2lite.operators import _parallel

NATIVE_ABI = 3  # must match caffe2lite_sparse_lengths_abi() in the C file
# Rows summed per chunk of bags a thread takes from the shared counter (~15 us): small
# enough that the threads finish within a chunk of each other.
ROWS_PER_PIECE = 1024
# Fewest chunks per thread worth another thread: handing work over costs tens of us.
MIN_CHUNKS_PER_THREAD = 8
# How long the caller's thread spins for the others' last chunks (pause instructions,
# ~100 us) before it blocks on them instead.
SPIN = 2000


class BadLengths(ValueError):
    """LENGTHS has a negative entry or does not sum to len(INDICES)."""


class BadIndices(ValueError):
    """INDICES has an entry outside [0, DATA.shape[0])."""


_functions = {}
_offsets = None
_lib = _native.load_versioned("_sparse_lengths", "caffe2lite_sparse_lengths_abi", NATIVE_ABI,
                              "SparseLengths")
if _lib is not None:
    _offsets = _lib.caffe2lite_sparse_lengths_offsets
    _offsets.restype = ctypes.c_int32
    _offsets.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_int64,
                         ctypes.c_void_p]
    for _dtype, _name in ((np.float32, "caffe2lite_sparse_lengths_sum_f32"),
                          (np.float16, "caffe2lite_sparse_lengths_sum_f16")):
        _fn = getattr(_lib, _name)
        _fn.restype = ctypes.c_int32
        _fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                        ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                        ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                        ctypes.c_void_p]
        _functions[np.dtype(_dtype)] = _fn


def available() -> bool:
    return bool(_functions)


def _c_ready(a):
    """``a`` as an aligned C-contiguous array in native byte order (no copy when it
    already is one)."""
    if _native.addressable(a):
        return a
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


def native_gather_segment_sum(data, indices, lengths, scalars=None, out=None):
    """(m, width) float32 segment sums of data[indices] (x scalars), or None (see above).

    indices and lengths must be int32/int64 vectors, scalars a float32 vector of
    len(indices), data of rank >= 1.  ``out``: a float32 (m, width) matrix to write
    into instead of a fresh one -- rows may lie further apart than ``width`` (columns
    of a wider matrix: Concat's output, runtime/fusion.py) but each row's elements
    must be contiguous.
    """
    fn = _functions.get(data.dtype)  # a byte-swapped dtype is not among the keys
    if fn is None or not (data.flags.c_contiguous and data.flags.aligned):
        return None
    m, n = lengths.shape[0], indices.shape[0]
    width = math.prod(data.shape[1:])
    if out is None:
        out = np.empty((m, width), np.float32)
    elif not (out.dtype == np.float32 and out.shape == (m, width) and out.flags.aligned and
              (width <= 1 or out.strides[1] == 4) and out.strides[0] % 4 == 0 and
              out.strides[0] >= 4 * width):
        return None
    indices, lengths = _c_ready(indices), _c_ready(lengths)
    scratch, state, offsets = bag_offsets(_offsets, lengths, n)
    weights = None if scalars is None else _c_ready(scalars)
    chunk = max(1, ROWS_PER_PIECE * m // max(n, 1))  # bags per chunk
    args = (_native.address(data), data.shape[0], width, _native.address(indices),
            indices.itemsize, offsets, None if weights is None else _native.address(weights),
            m, chunk, state)
    run_shared(fn, args, out, -(-m // chunk), scratch, data.shape[0],
               keep=(data, indices, weights, scratch, out),
               out_args=(out.strides[0] // 4 if m else width, out.ctypes.data))
    return out


def bag_offsets(offsets_fn, lengths, n):
    """(scratch, its address, the offsets' address) for a C bag kernel: one int64 array
    holding the shared state of its threads (next bag, bags summed, fault; see the C
    files), then the len(lengths) + 1 bag offsets, which ``offsets_fn`` writes.
    Raises BadLengths when LENGTHS has a negative entry or does not sum to ``n``."""
    m = lengths.shape[0]
    scratch = np.zeros(m + 4, np.int64)
    state = _native.address(scratch)
    offsets = state + 3 * scratch.itemsize
    if offsets_fn(_native.address(lengths), lengths.itemsize, m, n, offsets):
        raise BadLengths(f"LENGTHS has a negative entry or does not sum to {n}")
    return scratch, state, offsets


def run_shared(fn, args, out, n_chunks, scratch, n_rows, keep, out_args=None):
    """Run the C bag kernel ``fn(*args, spin, *out_args)`` here and, with enough chunks,
    on pool threads that take chunks from the same shared state.  ``out_args`` is
    (address of ``out``,) unless given.  ``keep`` holds the arrays behind the pointers
    in ``args`` until every helper returns (they may start after this call).  Raises
    BadIndices when an index is outside [0, n_rows)."""
    out_args = (_native.address(out),) if out_args is None else tuple(out_args)
    helpers = min(_parallel.num_threads(), n_chunks // MIN_CHUNKS_PER_THREAD) - 1
    futures = []
    if helpers > 0:
        futures = _parallel.start_on_pool([(_help, (fn, args + (0,) + out_args, keep))]
                                          * helpers)
    status = fn(*args, SPIN, *out_args)
    if status == 2:  # helpers still busy: block until they finish
        for f in futures:
            f.result()
        status = int(scratch[2])
    if status:
        raise BadIndices(f"INDICES has an entry outside [0, {n_rows})")


def _help(fn, args, keep):
    """A pool thread's share: chunks of bags until none are left."""
    return fn(*args)
