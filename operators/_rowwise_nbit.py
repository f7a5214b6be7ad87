"""Caffe2's N-bit fused row-wise quantization (2, 4 and 8 bits with float16 scale and bias).

A quantized row holds its codes packed ``8 // bit_rate`` to a byte, the first
value in the lowest bits (perfkernels' ``output_row[col / per_byte] |= q << ((col %
per_byte) * bit_rate)``), then the scale and the bias as little-endian float16:

    bias = half(min(row)),  scale = half((max(row) - bias) / (2**bit_rate - 1))
    code = clamp(lrintf((x - bias) * (1 / scale)), 0, 2**bit_rate - 1)
    value = scale * code + bias                       (float32)

with scale 1 where the range is 0, the float16 scale underflows to 0, or its
inverse overflows (FloatToFusedNBitRowwiseQuantizedSBHalf, Caffe2's float fast
path).  Caffe2's other path -- float16 input, or the GREEDY engine -- went through
FloatToFused4BitRowwiseQuantizedHelper, which divides by the scale instead and has
no overflow guard; ``divide=True`` keeps that.  Codes follow x86's lrintf: half to
even, and a NaN, infinite or out-of-int range value gives INT_MIN, which the clamp
turns into 0.

The "fake" N-bit quantization (FloatToFusedNBitFakeRowwiseQuantizedOp) keeps one
code per byte and the scale and bias as float32 (the 8-bit fused layout), but
with N-bit codes and float16-rounded scale and bias, so that the 8-bit lookups
reproduce an N-bit table's sums.

The GREEDY engine first narrows each row's [min, max] with Caffe2's
param_search_greedy: a walk that moves either end inward by (max - min) / 200 --
whichever move gives the smaller L2 error of the quantized row -- until the range
has shrunk to 84%, remembering the best strict local optimum.  The walk is
sequential per row; here every row walks at once (one vectorised loss per step
over all rows still walking), with the loss summed in Caffe2's AVX order (eight
lanes, then the remainder).  A row whose step no longer moves an end (the step is
below float32 resolution there) stops, where Caffe2 looped forever.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
F16 = np.float16
HALF_SB_BYTES = 4  # float16 scale and bias after a row's codes
GREEDY_BINS, GREEDY_RATIO = 200, F32(0.16)  # param_search_greedy's n_bins and ratio
_LANES = 8  # compress_uniform_simplified_'s AVX lanes
_INT_LIMIT = F32(2 ** 31)


def per_byte(bit_rate: int) -> int:
    return 8 // bit_rate


def packed_width(columns: int, bit_rate: int) -> int:
    """Bytes of codes for ``columns`` values."""
    return -(-columns // per_byte(bit_rate))


def lrint_codes(values, qmax: int):
    """float32 values -> uint8 codes clamp(lrintf(v), 0, qmax), as x86 computes them:
    values lrintf cannot represent (NaN, inf, |v| >= 2**31) become INT_MIN, hence 0."""
    with np.errstate(invalid="ignore"):
        rounded = np.rint(values)
        codes = np.clip(rounded, 0, qmax)
        codes[~(np.abs(rounded) < _INT_LIMIT)] = 0
    return codes.astype(np.uint8)


def pack_codes(codes, bit_rate: int):
    """(N, D) codes below 2**bit_rate -> (N, packed_width(D)) uint8, low bits first."""
    n, d = codes.shape
    k = per_byte(bit_rate)
    if k == 1:
        return codes
    padded = np.zeros((n, packed_width(d, bit_rate) * k), np.uint8)
    padded[:, :d] = codes
    shifts = (np.arange(k, dtype=np.uint8) * bit_rate).astype(np.uint8)
    return np.bitwise_or.reduce(padded.reshape(n, -1 if n else 0, k) << shifts, axis=2)


def unpack_codes(packed, bit_rate: int, width: int):
    """(N, P) packed bytes -> (N, width) uint8 codes."""
    k = per_byte(bit_rate)
    if k == 1:
        return packed[:, :width]
    shifts = (np.arange(k, dtype=np.uint8) * bit_rate).astype(np.uint8)
    mask = np.uint8((1 << bit_rate) - 1)
    codes = (packed[:, :, None] >> shifts) & mask
    return codes.reshape(packed.shape[0], packed.shape[1] * k)[:, :width]


def _half(values):
    """float32 -> float16 -> float32 (round to nearest even, as at::Half)."""
    with np.errstate(over="ignore"):
        return values.astype(F16).astype(F32)


def _bias_and_span(rows, bit_rate, greedy):
    """Each row's float16-rounded minimum (the stored bias) and max - bias, over the
    row's range or, with ``greedy``, over the range the greedy search narrows it to."""
    with np.errstate(invalid="ignore"):
        lo, hi = rows.min(axis=1), rows.max(axis=1)
    if greedy:
        lo, hi = greedy_range(rows, lo, hi, bit_rate)
    with np.errstate(all="ignore"):
        bias = _half(lo)
        return bias, hi - bias


# -- N-bit with float16 scale and bias --------------------------------------------------
def nbit_quantize(rows, bit_rate: int, greedy: bool = False, divide: bool = False):
    """(N, D) float32 -> (N, packed_width(D) + 4) uint8 (see the module doc)."""
    n, d = rows.shape
    width = packed_width(d, bit_rate)
    out = np.empty((n, width + HALF_SB_BYTES), np.uint8)
    if n == 0:
        return out
    qmax = (1 << bit_rate) - 1
    bias, span = _bias_and_span(rows, bit_rate, greedy)
    with np.errstate(all="ignore"):
        scale = np.where(span == 0, F32(1), span / F32(qmax)).astype(F16)
        scale[scale == 0] = 1
        if divide:  # FloatToFused4BitRowwiseQuantizedHelper: x / scale, no overflow guard
            scaled = (rows - bias[:, None]) / scale.astype(F32)[:, None]
        else:
            inverse = F32(1) / scale.astype(F32)
            overflow = np.isinf(inverse)
            scale[overflow], inverse[overflow] = 1, 1
            scaled = (rows - bias[:, None]) * inverse[:, None]
    out[:, :width] = pack_codes(lrint_codes(scaled, qmax), bit_rate)
    tail = np.empty((n, 2), "<f2")
    tail[:, 0], tail[:, 1] = scale, bias
    out[:, width:] = tail.view(np.uint8).reshape(n, HALF_SB_BYTES)
    return out


def half_scale_bias(rows, packed: int):
    """The float32 (scale, bias) of rows whose codes take ``packed`` bytes."""
    tail = np.ascontiguousarray(rows[:, packed:packed + HALF_SB_BYTES])
    sb = tail.view("<f2").astype(F32).reshape(rows.shape[0], 2)
    return sb[:, 0], sb[:, 1]


def decoder(bit_rate: int, width: int):
    """Picked rows (k, packed + 4) -> ((k, width) codes, (k,) scale, (k,) bias): how the
    lookups in operators/_rowwise_8bit.py read an N-bit table."""
    packed = packed_width(width, bit_rate)

    def decode(rows):
        scale, bias = half_scale_bias(rows, packed)
        return unpack_codes(rows[:, :packed], bit_rate, width), scale, bias
    return decode


def nbit_dequantize(rows, bit_rate: int):
    """(N, P + 4) uint8 -> (N, P * 8 // bit_rate) float32: scale * code + bias."""
    packed = rows.shape[1] - HALF_SB_BYTES
    width = packed * per_byte(bit_rate)
    codes, scale, bias = decoder(bit_rate, width)(rows)
    with np.errstate(all="ignore"):
        return codes.astype(F32) * scale[:, None] + bias[:, None]


# -- fake N-bit: N-bit codes in the 8-bit layout ---------------------------------------
def fake_quantize(rows, bit_rate: int, greedy: bool = False):
    """(N, D) float32 -> (N, D + 8) uint8: one N-bit code per byte, float32 scale, bias."""
    n, d = rows.shape
    out = np.empty((n, d + 8), np.uint8)
    if n == 0:
        return out
    qmax = (1 << bit_rate) - 1
    bias, span = _bias_and_span(rows, bit_rate, greedy)
    with np.errstate(all="ignore"):
        scale = np.where(span == 0, F32(1), _half(span / F32(qmax)))
        inverse = F32(1) / scale
        out[:, :d] = lrint_codes((rows - bias[:, None]) * inverse[:, None], qmax)
    tail = np.empty((n, 2), "<f4")
    tail[:, 0], tail[:, 1] = scale, bias
    out[:, d:] = tail.view(np.uint8).reshape(n, 8)
    return out


# -- GREEDY: param_search_greedy over every row at once ----------------------------------
def quantization_loss(rows, xmin, xmax, bit_rate: int):
    """compress_uniform_simplified_: the L2 error of each row quantized over [xmin, xmax]
    (float16-rounded bias and scale), summed in eight lanes and then the remainder."""
    qmax = F32((1 << bit_rate) - 1)
    with np.errstate(all="ignore"):
        xmin = _half(xmin)
        span = xmax - xmin
        scale = np.where(span == 0, F32(1), _half(span / qmax))
        inverse = F32(1) / scale
        xq = np.clip(np.rint((rows - xmin[:, None]) * inverse[:, None]), 0, qmax)
        err = rows - (xq * scale[:, None] + xmin[:, None])
        err *= err
        n, d = err.shape
        vectorised = d // _LANES * _LANES
        norm = np.zeros(n, F32)
        if vectorised:
            lanes = np.add.accumulate(err[:, :vectorised].reshape(n, -1, _LANES), axis=1)[:, -1]
            for lane in range(_LANES):  # the AVX register's lanes, added in order
                norm += lanes[:, lane]
        for col in range(vectorised, d):  # the (< 8) remainder columns, in order
            norm += err[:, col]
        return np.sqrt(norm)


def greedy_range(rows, lo, hi, bit_rate: int):
    """param_search_greedy for every row: the narrowed (xmin, xmax) per row."""
    with np.errstate(all="ignore"):
        step = (hi - lo) / F32(GREEDY_BINS)
        thr = F32(int(GREEDY_BINS * (F32(1) - GREEDY_RATIO))) * step
        cur_min, cur_max = lo.copy(), hi.copy()
        cur_loss = quantization_loss(rows, lo, hi, bit_rate)
        best_min, best_max, best_loss = lo.copy(), hi.copy(), cur_loss.copy()
        walking = np.flatnonzero(cur_min + thr < cur_max)
        while walking.size:
            part, s = rows[walking], step[walking]
            a, b, loss = cur_min[walking], cur_max[walking], cur_loss[walking]
            loss1 = quantization_loss(part, a + s, b, bit_rate)  # move the minimum up
            loss2 = quantization_loss(part, a, b - s, bit_rate)  # move the maximum down
            optimum = (loss < loss1) & (loss < loss2) & (loss < best_loss[walking])
            won = walking[optimum]
            best_min[won], best_max[won], best_loss[won] = a[optimum], b[optimum], loss[optimum]
            left = loss1 < loss2
            new_min = np.where(left, a + s, a)
            new_max = np.where(left, b, b - s)
            moved = (new_min != a) | (new_max != b)
            cur_min[walking], cur_max[walking] = new_min, new_max
            cur_loss[walking] = np.where(left, loss1, loss2)
            walking = walking[moved & (new_min + thr[walking] < new_max)]
    return best_min, best_max
