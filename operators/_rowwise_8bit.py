"""Caffe2's 8-bit row-wise quantization, shared by the quantized embedding operators.

Two layouts, both with one (scale, bias) pair of float32 per row and
``value = q * scale + bias``:

* fused (FloatToFused8BitRowwiseQuantized): a uint8 row of D + 8 bytes, the D
  quantized values then the scale and the bias as little-endian float32;
  scale = (max - min) / 255, bias = min, q = lrintf((x - min) * (255 / (range +
  1e-8))) -- rounding half to even, Caffe2's perfkernels.
* older (FloatToRowwiseQuantized8Bits): a uint8 tensor shaped like the input
  plus a separate (N, 2) float32 ``scale_bias``; a row whose range is below
  1e-10 gets scale 1 and all-zero codes, others q = round((x - min) * (1 /
  scale)) rounding half away from zero (Eigen's ``round``).

Every formula keeps Caffe2's float32 operations in Caffe2's order, so results
are bit-identical to its portable kernels.  The lookup (SparseLengths*) sums
``(w * scale) * q + (w * bias)`` per looked-up row, left to right from 0, and
multiplies a Mean bag by ``1.0f / length`` -- perfkernels'
EmbeddingLookupGenericSlow; only the rows INDICES names are ever dequantized.

Not reproduced: rows holding NaN.  NumPy's min/max propagate it, where Caffe2's
std::min_element skipped a NaN unless it came first; such rows get NaN scale
and bias here and codes 0 (x86's lrintf(NaN) truncated to uint8).
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.operators import _native_rowwise_8bit as _native_q
from caffe2lite.operators._native_segments import BadIndices, BadLengths
from caffe2lite.operators._segments import (check_dtype, check_index_dtype, check_index_range,
                                            check_lengths, check_vector, gather_segment_sum,
                                            offsets_of)
from caffe2lite.runtime import register_kernel, set_per_op_engine_pref

F32 = np.float32
SCALE_BIAS_BYTES = 8  # two float32 after the values of a fused row
EPSILON = F32(1e-8)  # FloatToFused8BitRowwiseQuantized's kEpsilon
EQUALITY_THRESHOLD = F32(1e-10)  # FloatToRowwiseQuantized8Bits' kEqualityThreshold
_SB_DTYPE = np.dtype("<f4")
# Looked-up rows the NumPy engine dequantizes per step (~1 MiB of float32 terms at D 64).
CHUNK_ROWS = 4096


# -- the codes ------------------------------------------------------------------------
def _codes(values):
    """float32 codes already in [0, 255] (NaN where a row was not finite) as uint8.

    NaN becomes 0, as x86's lrintf (LONG_MIN) truncated to uint8 does in Caffe2.
    """
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.clip(values, 0, 255), nan=0.0).astype(np.uint8)


def fused_quantize(rows):
    """(N, D) float32 -> (N, D + 8) uint8, FloatToFused8BitRowwiseQuantized's bytes."""
    n, d = rows.shape
    out = np.empty((n, d + SCALE_BIAS_BYTES), np.uint8)
    if n == 0:
        return out
    with np.errstate(all="ignore"):  # inf/NaN rows follow IEEE arithmetic, as in C
        minimum = rows.min(axis=1)
        span = rows.max(axis=1) - minimum
        scale_bias = np.empty((n, 2), _SB_DTYPE)
        scale_bias[:, 0] = span / F32(255)
        scale_bias[:, 1] = minimum
        inverse_scale = F32(255) / (span + EPSILON)
        scaled = (rows - minimum[:, None]) * inverse_scale[:, None]
        out[:, :d] = _codes(np.rint(scaled))
    out[:, d:] = scale_bias.view(np.uint8).reshape(n, SCALE_BIAS_BYTES)
    return out


def fused_scale_bias(rows, width):
    """The (k, 2) float32 (scale, bias) of fused rows (any k x (width + 8) uint8)."""
    tail = np.ascontiguousarray(rows[:, width:width + SCALE_BIAS_BYTES])
    return tail.view(_SB_DTYPE).astype(F32, copy=False).reshape(rows.shape[0], 2)


def dequantize(codes, scale, bias):
    """codes * scale + bias per row in float32 (two roundings, no fused multiply-add)."""
    with np.errstate(all="ignore"):
        out = codes.astype(F32)
        out *= scale[:, None]
        out += bias[:, None]
    return out


def fused_dequantize(rows):
    """(N, D + 8) fused uint8 -> (N, D) float32."""
    width = rows.shape[1] - SCALE_BIAS_BYTES
    sb = fused_scale_bias(rows, width)
    return dequantize(rows[:, :width], sb[:, 0], sb[:, 1])


def legacy_quantize(rows):
    """(N, B) float32 -> ((N, B) uint8, (N, 2) float32): FloatToRowwiseQuantized8Bits."""
    n, b = rows.shape
    scale_bias = np.empty((n, 2), F32)
    if n == 0 or b == 0:
        scale_bias[:, 0], scale_bias[:, 1] = 1, 0
        return np.zeros((n, b), np.uint8), scale_bias
    with np.errstate(all="ignore"):
        minimum, maximum = rows.min(axis=1), rows.max(axis=1)
        span = maximum - minimum
        flat = span < EQUALITY_THRESHOLD  # NaN spans are not flat, as in C
        scale_bias[:, 0] = np.where(flat, F32(1), span / F32(255))
        scale_bias[:, 1] = minimum
        inverse_scale = F32(1) / scale_bias[:, 0]
        scaled = (rows - minimum[:, None]) * inverse_scale[:, None]
        # Eigen's round(): half away from zero (scaled >= 0; floor and the fraction are exact)
        whole = np.floor(scaled)
        codes = _codes(whole + (scaled - whole >= F32(0.5)))
    codes[flat] = 0
    return codes, scale_bias


# -- checks ---------------------------------------------------------------------------
def check_fused_table(ctx, data, i=0, rank=2, bits=8, tail=SCALE_BIAS_BYTES):
    """A fused table: uint8, rank 2, more than ``tail`` columns (Caffe2's DATA checks);
    ``bits`` and ``tail`` name an N-bit table's codes and float16 scale and bias."""
    check_dtype(ctx, data, i, (np.uint8,),
                f"uint8 (rows from FloatToFused{bits}BitRowwiseQuantized)")
    if data.ndim != rank:
        ctx.fail(f"{ctx.input_label(i)} must be a matrix (rank 2), got shape "
                 f"{tuple(data.shape)}")
    if data.shape[1] <= tail:
        ctx.fail(f"{ctx.input_label(i)} must have more than {tail} columns (codes, then "
                 f"{tail // 2}-byte scale and {tail // 2}-byte bias), got {data.shape[1]}")


def checked_float_rows(ctx, x, dtype, name):
    """Input 0 of a quantizer: ``dtype`` (named ``name``), rank >= 1, rows (the last axis)
    of at least one value unless there are none; as a float32 (rows, width) matrix."""
    check_dtype(ctx, x, 0, (dtype,), name)
    if x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    width = int(x.shape[-1])
    if width == 0 and math.prod(x.shape[:-1]):
        ctx.fail(f"{ctx.input_label(0)} has rows of 0 values (shape {tuple(x.shape)}): no "
                 f"minimum or maximum to quantize with")
    return x.reshape(-1, width).astype(np.float32, copy=False)


def check_scale_bias(ctx, scale_bias, i, rows):
    """The older layout's (rows, 2) float32 scale_bias matrix."""
    check_dtype(ctx, scale_bias, i, (np.float32,), "float32")
    if scale_bias.ndim != 2 or scale_bias.shape != (rows, 2):
        ctx.fail(f"{ctx.input_label(i)} must be a ({rows}, 2) matrix (scale, bias per DATA "
                 f"row), got shape {tuple(scale_bias.shape)}")


def check_lookup(ctx, indices, lengths, first, rows):
    """INDICES (input ``first``) and LENGTHS (input first + 1): dtypes, ranks, values."""
    check_index_dtype(ctx, indices, first)
    check_vector(ctx, indices, first)
    check_index_dtype(ctx, lengths, first + 1)
    check_vector(ctx, lengths, first + 1)
    check_lengths(ctx, lengths, first + 1, int(indices.shape[0]), "the number of INDICES")
    check_index_range(ctx, indices, rows, first, f"DATA with {rows} rows")


def register_lookup_engines(op_types, reduce):
    """For each 8-bit lookup op type: the NUMPY engine (also the default) and, when the
    C library is built, the preferred NATIVE engine, both ``reduce(ctx, inputs, native)``
    (``native`` says whether the C pass may run; it falls back to NumPy itself)."""
    def numpy_engine(ctx, *inputs):
        return reduce(ctx, inputs, native=False)

    def native_engine(ctx, *inputs):
        return reduce(ctx, inputs, native=True)

    for op_type in op_types:
        register_kernel(op_type, devices=("CPU",))(numpy_engine)
        register_kernel(op_type, devices=("CPU",), engine="NUMPY")(numpy_engine)
        if _native_q.available():
            register_kernel(op_type, devices=("CPU",), engine="NATIVE")(native_engine)
            set_per_op_engine_pref("CPU", op_type, ["NATIVE"])


# -- the lookup -----------------------------------------------------------------------
def quantized_segment_sum(ctx, table, width, scale_bias, indices, lengths, weights, mean,
                          first, native):
    """Bag sums (or means) of dequantized rows, (len(LENGTHS), width) float32.

    ``table`` is (rows, row bytes) uint8 with the values in each row's first
    ``width`` bytes; ``scale_bias`` None (fused: the 8 bytes after the values) or the
    (rows, 2) matrix.  Everything but INDICES/LENGTHS is already checked.  With
    ``native`` the C kernel runs when built, checking as it reads; only on a fault
    do the Python checks run, to name it.
    """
    rows = int(table.shape[0])
    if native:
        check_index_dtype(ctx, indices, first)
        check_vector(ctx, indices, first)
        check_index_dtype(ctx, lengths, first + 1)
        check_vector(ctx, lengths, first + 1)
        try:
            out = _native_q.native_quantized_segment_sum(table, width, scale_bias, indices,
                                                         lengths, weights, mean)
        except (BadLengths, BadIndices):
            check_lookup(ctx, indices, lengths, first, rows)
            ctx.fail(f"{ctx.input_label(first + 1)}: its running total overflows int64, but "
                     f"must sum to {indices.shape[0]} (the number of INDICES)")
        if out is not None:
            return out
    check_lookup(ctx, indices, lengths, first, rows)
    return numpy_quantized_segment_sum(table, width, scale_bias, indices, lengths, weights, mean)


def numpy_quantized_segment_sum(table, width, scale_bias, indices, lengths, weights, mean,
                                decode=None):
    """The NumPy engine: a block of bags at a time, their rows gathered (whole rows, as
    byte records) and dequantized into float32 terms, which operators/_segments.py's
    gather_segment_sum then adds up bag by bag, left to right from 0 -- the order of
    the C kernel and of Caffe2's loop."""
    m = int(lengths.shape[0])
    out = np.empty((m, width), F32)
    starts, ends = offsets_of(np, lengths)
    records = _records(table)
    b0 = 0
    with np.errstate(all="ignore"):
        while b0 < m:  # bags covering up to CHUNK_ROWS rows (at least one bag)
            b1 = min(m, max(b0 + 1, int(np.searchsorted(ends, starts[b0] + CHUNK_ROWS,
                                                        "right"))))
            p0, p1 = int(starts[b0]), int(ends[b1 - 1])
            terms = _terms(table, records, width, scale_bias, indices[p0:p1],
                           None if weights is None else weights[p0:p1], decode)
            out[b0:b1] = gather_segment_sum(np, terms, np.arange(p1 - p0), lengths[b0:b1],
                                            native=False)
            b0 = b1
    return bag_means(out, lengths) if mean else out


def bag_means(sums, lengths):
    """Bag sums times 1.0f / length, in place (empty bags stay as they are)."""
    nonempty = lengths > 0
    with np.errstate(all="ignore"):
        sums[nonempty] *= (F32(1) / lengths[nonempty].astype(F32))[:, None]
    return sums


def _records(table):
    """``table`` as one opaque record per row (np.take copies those much faster than
    rows of bytes), or None when it is not C-contiguous."""
    if not table.flags.c_contiguous or table.shape[0] == 0:
        return None
    return table.view(np.dtype((np.void, table.shape[1]))).reshape(table.shape[0])


def _terms(table, records, width, scale_bias, idx, weights, decode):
    """(w * scale) * codes + (w * bias) for the rows ``idx``, float32 (k, width).

    ``decode`` (picked rows -> (codes, scale, bias)) reads another layout of the
    table's rows (operators/_rowwise_nbit.py's N-bit rows); None: 8-bit codes with the
    fused float32 tail or the ``scale_bias`` matrix."""
    if records is not None:
        picked = np.take(records, idx, mode="clip").view(np.uint8).reshape(idx.size,
                                                                             table.shape[1])
    else:
        picked = np.take(table, idx, axis=0, mode="clip")
    if decode is not None:
        codes, scale, bias = decode(picked)
    else:
        sb = (fused_scale_bias(picked, width) if scale_bias is None
              else np.take(scale_bias, idx, axis=0, mode="clip"))
        codes, scale, bias = picked[:, :width], sb[:, 0], sb[:, 1]
    if weights is not None:
        scale, bias = weights * scale, weights * bias
    return dequantize(codes, scale, bias)
