"""In-place elementwise passes over a fresh output, in pieces, on both cores.

A fused Conv + Sum + Relu step (caffe2lite/runtime/rewrites.py) adds the
shortcut and clips at zero in place on the convolution's output.  Those passes
are memory-bound: done on the whole array one after the other, each streams
the output through memory again.  Here the array is cut into pieces of
PIECE_ELEMENTS (a few hundred KiB: they stay in the L2 cache between the
passes) and ranges of pieces run on operators/_parallel.py's threads (NumPy
releases the GIL in ufunc loops) when BLAS runs single-threaded (a threaded BLAS
keeps its workers spinning on the cores after each call: _parallel.threads_beside_blas).
Elementwise: the same bits in any order.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators import _parallel

PIECE_ELEMENTS = 1 << 16


def apply_in_pieces(y, steps, alone: bool = False) -> None:
    """Run ``steps`` [(fn(y) or fn(y, operand), operand or None)] on ``y`` piece by piece;
    the operands have y's shape.  Arrays that are not C-contiguous run whole; ``alone``:
    on this thread only (the caller is itself a pool thread)."""
    arrays = [y] + [operand for _, operand in steps if operand is not None]
    if y.size < 2 * PIECE_ELEMENTS or not all(a.flags.c_contiguous for a in arrays):
        if not alone and y.ndim > 1 and y.size >= 4 * PIECE_ELEMENTS:  # a strided part
            _by_first_axis(y, steps)
            return
        _run(steps, y, [operand for _, operand in steps])
        return
    flat = y.reshape(-1)
    operands = [None if operand is None else operand.reshape(-1) for _, operand in steps]

    def pieces(first, stop):
        lo, hi = first * PIECE_ELEMENTS, min(flat.size, stop * PIECE_ELEMENTS)
        for a in range(lo, hi, PIECE_ELEMENTS):
            b = min(hi, a + PIECE_ELEMENTS)
            _run(steps, flat[a:b], [None if o is None else o[a:b] for o in operands])

    _parallel.for_each_range(pieces, -(-flat.size // PIECE_ELEMENTS),
                             1 if alone else _parallel.threads_beside_blas())


def _by_first_axis(y, steps) -> None:
    """The steps on slices along y's first axis, a range of them per thread."""
    def rows(first, stop):
        _run(steps, y[first:stop], [None if o is None else o[first:stop] for _, o in steps])

    if y.shape[0] >= 2 * _parallel.MIN_PIECES_PER_THREAD:
        _parallel.for_each_range(rows, y.shape[0], _parallel.threads_beside_blas())
    else:
        _run(steps, y, [operand for _, operand in steps])


def _run(steps, y, operands) -> None:
    for (fn, _), operand in zip(steps, operands):
        if operand is None:
            fn(y)
        else:
            fn(y, operand)


def finish_planes(y, bias, steps, alone: bool = False) -> None:
    """A convolution's output part ``y`` (n, m, *spatial), C-contiguous: ``bias`` (m
    values, or None) added to each channel plane, then ``steps`` (as apply_in_pieces;
    operands shaped like y), all in one pass over pieces of whole planes."""
    n, m = y.shape[:2]
    planes = y.reshape(n * m, -1)
    operands = [None if o is None else o.reshape(n * m, -1) for _, o in steps]
    if any(o is not None and not o.flags.c_contiguous for _, o in steps):
        if bias is not None:
            y += bias.reshape((1, m) + (1,) * (y.ndim - 2))
        apply_in_pieces(y, steps, alone)
        return
    bias_rows = None if bias is None else np.tile(bias.reshape(m), n)[:, None]
    rows = max(1, PIECE_ELEMENTS // max(planes.shape[1], 1))

    def pieces(first, stop):
        for a in range(first * rows, min(n * m, stop * rows), rows):
            b = min(n * m, a + rows)
            if bias_rows is not None:
                planes[a:b] += bias_rows[a:b]
            _run(steps, planes[a:b], [None if o is None else o[a:b] for o in operands])

    _parallel.for_each_range(pieces, -(-(n * m) // rows),
                             1 if alone else _parallel.threads_beside_blas())

