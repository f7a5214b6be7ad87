"""N-bit (2/4-bit) fused row-wise quantization and its lookups, against Caffe2's formulas.

The references are scalar loops written here from Caffe2's sources
(perfkernels/fused_nbit_rowwise_conversion.cc, fused_rowwise_nbitfake_conversion_ops.*,
lengths_reducer_fused_nbit_rowwise_ops.h): per row bias = half(min), scale =
half((max - bias) / (2^b - 1)), codes clamp(lrintf(...), 0, 2^b - 1) packed low bits
first, float16 scale and bias after the codes; the greedy engine's
param_search_greedy walk; lookups adding (w * scale) * code + w * bias per row.
Every step in float32; results compared bit for bit.
"""

import math
import struct

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, run_op, snapshot

F, H = np.float32, np.float16


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def lrint_clamped(v, qmax):
    v = F(v)
    if not math.isfinite(v) or abs(np.rint(v)) >= 2 ** 31:
        return 0  # x86 lrintf gives INT_MIN, clamped to 0
    return min(qmax, max(0, int(np.rint(v))))


def ref_params(lo, hi, bits):
    """(half scale, float bias) as FloatToFusedNBitRowwiseQuantizedSBHalf sets them."""
    bias = F(H(lo))
    span = F(F(hi) - bias)
    scale = H(1.0) if span == 0 else H(F(span / F((1 << bits) - 1)))
    return (H(1.0) if scale == 0 else scale), bias


def ref_quantize_row(row, bits, lo=None, hi=None, divide=False):
    row = [F(v) for v in row]
    lo = min(row) if lo is None else lo
    hi = max(row) if hi is None else hi
    scale, bias = ref_params(lo, hi, bits)
    inverse = F(F(1) / F(scale))
    if not divide and math.isinf(inverse):
        scale, inverse = H(1.0), F(1)
    qmax = (1 << bits) - 1
    codes = [lrint_clamped(F(v - bias) / F(scale) if divide else F(F(v - bias) * inverse), qmax)
             for v in row]
    per = 8 // bits
    packed = [0] * ((len(row) + per - 1) // per)
    for col, code in enumerate(codes):
        packed[col // per] |= code << ((col % per) * bits)
    return bytes(packed) + struct.pack("<ee", scale, H(bias))


def ref_dequantize_row(qrow, bits, width):
    scale, bias = (F(v) for v in struct.unpack("<ee", bytes(qrow[-4:])))
    per = 8 // bits
    return [F(F(scale * F((int(qrow[c // per]) >> ((c % per) * bits)) & ((1 << bits) - 1)))
              + bias) for c in range(width)]


def ref_fake_row(row, bits, lo=None, hi=None):
    row = [F(v) for v in row]
    lo = min(row) if lo is None else lo
    hi = max(row) if hi is None else hi
    bias = F(H(lo))
    span = F(F(hi) - bias)
    scale = F(1) if span == 0 else F(H(F(span / F((1 << bits) - 1))))
    inverse = F(F(1) / scale)
    codes = [lrint_clamped(F(F(v - bias) * inverse), (1 << bits) - 1) for v in row]
    return bytes(codes) + struct.pack("<ff", scale, bias)


def ref_loss(row, xmin, xmax, bits):
    """compress_uniform_simplified_: eight AVX lanes, then the remainder."""
    xmin = F(H(xmin))
    span = F(F(xmax) - xmin)
    qmax = F((1 << bits) - 1)
    scale = F(1) if span == 0 else F(H(F(span / qmax)))
    inverse = F(F(1) / scale)
    errs = []
    for x in row:
        q = F(min(max(F(np.rint(F(F(x - xmin) * inverse))), F(0)), qmax))
        e = F(x - F(F(q * scale) + xmin))
        errs.append(F(e * e))
    n8 = len(row) // 8 * 8
    lanes = [F(0)] * 8
    for i in range(n8):
        lanes[i % 8] = F(lanes[i % 8] + errs[i])
    norm = F(0)
    for lane in lanes:
        norm = F(norm + lane)
    for i in range(n8, len(row)):
        norm = F(norm + errs[i])
    return F(np.sqrt(norm))


def ref_greedy(row, bits):
    """param_search_greedy(n_bins=200, ratio=0.16) for one row, as Caffe2 wrote it."""
    row = [F(v) for v in row]
    xmin, xmax = min(row), max(row)
    step = F(F(xmax - xmin) / F(200))
    thr = F(F(168) * step)
    loss = best = ref_loss(row, xmin, xmax, bits)
    cur_min, cur_max = xmin, xmax
    while F(cur_min + thr) < cur_max:
        loss1 = ref_loss(row, F(cur_min + step), cur_max, bits)
        loss2 = ref_loss(row, cur_min, F(cur_max - step), bits)
        if loss < loss1 and loss < loss2 and loss < best:
            best, xmin, xmax = loss, cur_min, cur_max
        if loss1 < loss2:
            cur_min, loss = F(cur_min + step), loss1
        else:
            cur_max, loss = F(cur_max - step), loss2
    return xmin, xmax


def table(rng, rows, cols):
    return (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 50, (rows, 1))).astype(F)


def rows_bytes(rows, n_cols):
    return np.frombuffer(b"".join(rows), np.uint8).reshape(-1, n_cols)


# -- conversions ----------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("source", ["Float", "Half"])
def test_quantize_and_dequantize_match_caffe2_bytes(bits, source):
    rng = np.random.default_rng(bits)
    x = table(rng, 9, 16)
    x[1] = -2.25  # a constant row: scale 1
    x[2] = x[2, 0] + np.arange(16) * F(1e-7)  # a range whose half scale underflows
    if source == "Half":
        x = x.astype(H)
    q = run_op(f"{source}ToFused{bits}BitRowwiseQuantized", {"x": x}, "q")[0]
    # Caffe2's float path multiplies by 1 / scale, its float16 path divides by the scale
    expected = rows_bytes([ref_quantize_row(r, bits, divide=source == "Half")
                           for r in x.astype(F)], 16 * bits // 8 + 4)
    assert same_bits(q, expected)
    for dst, dtype in (("Float", F), ("Half", H)):
        y = run_op(f"Fused{bits}BitRowwiseQuantizedTo{dst}", {"q": q}, "y")[0]
        ref = np.array([ref_dequantize_row(r, bits, 16) for r in q], F).astype(dtype)
        assert same_bits(y, ref)
    step = (x.astype(F).max(1) - x.astype(F).min(1)) / ((1 << bits) - 1)
    err = np.abs(y.astype(F) - x.astype(F))
    assert np.all(err <= step[:, None] * 0.51 + np.abs(x.astype(F)) * 2e-3 + 1e-3)


def test_rows_are_the_last_axis_and_the_width_a_multiple_of_codes_per_byte():
    x = np.random.default_rng(3).standard_normal((2, 3, 8)).astype(F)
    q = run_op("FloatToFused2BitRowwiseQuantized", {"x": x}, "q")[0]
    assert q.shape == (2, 3, 2 + 4)
    assert same_bits(q.reshape(6, 6), rows_bytes([ref_quantize_row(r, 2) for r in
                                                  x.reshape(6, 8)], 6))
    y = run_op("Fused2BitRowwiseQuantizedToFloat", {"q": q}, "y")[0]
    assert y.shape == (2, 3, 8)
    workspace.FeedBlob("odd", np.ones((2, 6), F))
    before = snapshot()
    with pytest.raises(EnforceError, match="multiple of 4") as err:
        workspace.RunOperatorOnce(core.CreateOperator("FloatToFused2BitRowwiseQuantized",
                                                      ["odd"], ["q2"]))
    assert "'odd'" in str(err.value)
    assert_unchanged(before)


@pytest.mark.parametrize("bits", [2, 4])
def test_fake_quantization_is_the_n_bit_codes_in_the_8_bit_layout(bits):
    rng = np.random.default_rng(10 + bits)
    x = table(rng, 7, 13)
    x[0] = 4.0
    q = run_op(f"FloatToFused{bits}BitFakeRowwiseQuantized", {"x": x}, "q")[0]
    assert same_bits(q, rows_bytes([ref_fake_row(r, bits) for r in x], 21))
    assert q[:, :13].max() < (1 << bits)
    half = run_op(f"HalfToFused{bits}BitFakeRowwiseQuantized", {"x": x.astype(H)}, "q16")[0]
    assert same_bits(half, rows_bytes([ref_fake_row(r, bits) for r in x.astype(H).astype(F)],
                                      21))
    # the 8-bit dequantizer reads it: code * scale + bias with float16-rounded scale, bias
    y = run_op("Fused8BitRowwiseQuantizedToFloat", {"q": q}, "y")[0]
    sb = q[:, 13:].copy().view("<f4")
    assert same_bits(y, q[:, :13].astype(F) * sb[:, :1] + sb[:, 1:])
    with pytest.raises(EnforceError, match="matrix"):
        run_op(f"FloatToFused{bits}BitFakeRowwiseQuantized", {"x3": x[None]}, "q3")


@pytest.mark.parametrize("bits", [2, 4])
def test_greedy_engine_narrows_the_range_as_caffe2s_search(bits):
    rng = np.random.default_rng(20 + bits)
    # heavy tails: the greedy search clips them and wins over min/max
    x = (rng.standard_t(2, (6, 20)) * rng.uniform(0.1, 10, (6, 1))).astype(F)
    x[5] = 1.5  # constant: nothing to search
    ranges = [ref_greedy(r, bits) for r in x]
    q = run_op(f"FloatToFused{bits}BitRowwiseQuantized", {"x": x}, "q", engine="GREEDY")[0]
    expected = rows_bytes([ref_quantize_row(r, bits, lo, hi, divide=True)
                           for r, (lo, hi) in zip(x, ranges)], 20 * bits // 8 + 4)
    assert same_bits(q, expected)
    fake = run_op(f"FloatToFused{bits}BitFakeRowwiseQuantized", {"x": x}, "f",
                  engine="GREEDY")[0]
    assert same_bits(fake, rows_bytes([ref_fake_row(r, bits, lo, hi)
                                       for r, (lo, hi) in zip(x, ranges)], 28))
    plain = run_op(f"FloatToFused{bits}BitRowwiseQuantized", {"x": x}, "p")[0]
    errors = []
    for codes in (q, plain):
        y = run_op(f"Fused{bits}BitRowwiseQuantizedToFloat", {"c": codes}, "y")[0]
        errors.append(np.linalg.norm(y - x, axis=1))
    assert np.all(errors[0] <= errors[1] * 1.03) and np.any(errors[0] < errors[1] * 0.9)


def test_greedy_search_stops_where_the_step_no_longer_moves_the_range():
    # range 8 around 1e8: the step (0.04) is below float32's resolution there; Caffe2's
    # loop never ended
    x = (F(1e8) + np.array([[0, 8, 0, 8, 0, 8, 0, 8]], F)).astype(F)
    q = run_op("FloatToFused4BitRowwiseQuantized", {"x": x}, "q", engine="GREEDY")[0]
    assert q.shape == (1, 8)


def test_conversion_shape_inference():
    net = core.Net("nbit_shapes")
    for op_type, inputs, outputs in [("FloatToFused4BitRowwiseQuantized", ["x"], ["q4"]),
                                     ("FloatToFused2BitRowwiseQuantized", ["x"], ["q2"]),
                                     ("Fused2BitRowwiseQuantizedToHalf", ["q2"], ["h"]),
                                     ("FloatToFused2BitFakeRowwiseQuantized", ["x"], ["f"]),
                                     ("SparseLengthsSumFused4BitRowwise", ["q4", "i", "l"],
                                      ["s"])]:
        net.Proto().op.extend([core.CreateOperator(op_type, inputs, outputs)])
    shapes, types = workspace.InferShapesAndTypes([net], {"x": [5, 12], "i": [4], "l": [3]},
                                                  {"i": 2, "l": 2})
    assert shapes["q4"] == [5, 10] and shapes["q2"] == [5, 7] and shapes["h"] == [5, 12]
    assert shapes["f"] == [5, 20] and shapes["s"] == [3, 12]


# -- lookups --------------------------------------------------------------------------
def ref_lookup(rows_of, indices, lengths, weights=None, mean=False, mapping=None):
    """Caffe2's loop: (w * scale) * code + (w * bias) per row, left to right from 0."""
    width = len(rows_of(0)[0])
    out = np.zeros((len(lengths), width), F)
    p = 0
    for k, length in enumerate(lengths):
        acc = np.zeros(width, F)
        for _ in range(int(length)):
            r = int(indices[p]) if mapping is None else int(mapping[int(indices[p])])
            w = F(1) if weights is None else F(weights[p])
            p += 1
            if r == -1:
                continue
            codes, scale, bias = rows_of(r)
            acc = acc + (F(w * scale) * np.asarray(codes, F) + F(w * bias))
        if mean and length:
            acc = acc * F(F(1) / F(length))
        out[k] = acc
    return out


def nbit_rows(q, bits, width):
    per = 8 // bits

    def row(r):
        scale, bias = (F(v) for v in struct.unpack("<ee", bytes(q[r, -4:])))
        codes = [(int(q[r, c // per]) >> ((c % per) * bits)) & ((1 << bits) - 1)
                 for c in range(width)]
        return codes, scale, bias
    return row


def fused8_rows(q):
    def row(r):
        scale, bias = (F(v) for v in struct.unpack("<ff", bytes(q[r, -8:])))
        return list(q[r, :-8]), scale, bias
    return row


def lookup(op_type, data, indices, lengths, weights=None, mapping=None):
    inputs = {"data": data}
    if weights is not None:
        inputs["weights"] = weights
    inputs.update(indices=indices, lengths=lengths)
    if mapping is not None:
        inputs["mapping"] = mapping
    return run_op(op_type, inputs, "out")[0]


BAGS = [np.array([3, 0, 1, 4], np.int32), np.array([0, 0], np.int32), np.zeros(0, np.int32)]


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("kind", ["Sum", "WeightedSum", "Mean"])
@pytest.mark.parametrize("lengths", BAGS, ids=["bags", "empty_bags", "no_bags"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_lookups_match_caffe2_and_the_fake_8_bit_twin(bits, kind, lengths, index_dtype):
    rng = np.random.default_rng(bits * 7 + len(lengths))
    x = table(rng, 6, 16)
    indices = rng.integers(0, 6, int(lengths.sum())).astype(index_dtype)
    weights = rng.uniform(-1, 2, indices.size).astype(F) if kind == "WeightedSum" else None
    q = run_op(f"FloatToFused{bits}BitRowwiseQuantized", {"x": x}, "q")[0]
    got = lookup(f"SparseLengths{kind}Fused{bits}BitRowwise", q, indices, lengths, weights)
    ref = ref_lookup(nbit_rows(q, bits, 16), indices, lengths, weights, kind == "Mean")
    assert same_bits(got, ref)
    fake = run_op(f"FloatToFused{bits}BitFakeRowwiseQuantized", {"x": x}, "f")[0]
    twin = lookup(f"SparseLengths{kind}Fused8BitRowwise", fake, indices, lengths, weights)
    assert same_bits(got, twin)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("kind", ["Sum", "WeightedSum", "Mean"])
def test_pruned_table_lookups_skip_pruned_rows_and_keep_mean_denominators(bits, kind):
    rng = np.random.default_rng(40 + bits)
    x = table(rng, 8, 16)
    q = run_op(f"FloatToFused{bits}BitRowwiseQuantized", {"x": x}, "q")[0]
    mapping = np.array([0, -1, 1, -1, 2, 3, -1, 4], np.int32)
    pruned = q[[0, 2, 4, 5, 7]]
    lengths = np.array([3, 0, 2, 4], np.int32)
    indices = np.array([1, 0, 3, 6, 1, 2, 4, 7, 0], np.int64)
    weights = rng.uniform(0, 1, 9).astype(F) if kind == "WeightedSum" else None
    rows_of = nbit_rows(pruned, bits, 16) if bits != 8 else fused8_rows(pruned)
    got = lookup(f"SparseLengths{kind}{bits}BitRowwiseSparse", pruned, indices, lengths,
                 weights, mapping)
    ref = ref_lookup(rows_of, indices, lengths, weights, kind == "Mean", mapping)
    assert same_bits(got, ref)
    # a mapping of [0] means nothing was pruned: INDICES are rows of DATA
    full_rows = nbit_rows(q, bits, 16) if bits != 8 else fused8_rows(q)
    got = lookup(f"SparseLengths{kind}{bits}BitRowwiseSparse", q, indices % 8, lengths,
                 weights, np.array([0], np.int32))
    assert same_bits(got, ref_lookup(full_rows, indices % 8, lengths, weights, kind == "Mean"))


def test_sparse_lookup_maps_indices_and_drops_pruned_ones():
    mapping = np.array([2, -1, 0, -1, 1], np.int32)
    indices = np.array([0, 1, 4, 3, 2, 1], np.int64)
    lengths = np.array([2, 3, 0, 1], np.int32)
    weights = np.arange(6, dtype=F)
    new_i, new_l, new_w = run_op("SparseLengthsSumSparseLookup",
                                 {"i": indices, "l": lengths, "m": mapping, "w": weights},
                                 ["ni", "nl", "nw"])
    assert new_i.dtype == np.int64 and new_i.tolist() == [2, 1, 0]
    assert new_l.dtype == np.int32 and new_l.tolist() == [1, 2, 0, 0]
    assert new_w.tolist() == [0.0, 2.0, 4.0]
    ni, nl = run_op("SparseLengthsSumSparseLookup", {"i": indices.astype(np.int32),
                                                     "l": lengths, "m": mapping}, ["a", "b"])
    assert ni.dtype == np.int32 and ni.tolist() == [2, 1, 0] and nl.tolist() == [1, 2, 0, 0]


@pytest.mark.parametrize("op_type, inputs, match", [
    ("SparseLengthsSumFused4BitRowwise",
     [np.zeros((3, 4), np.uint8), np.zeros(1, np.int32), np.ones(1, np.int32)],
     "more than 4 columns"),
    ("SparseLengthsSumFused4BitRowwise",
     [np.zeros((3, 8), np.uint8), np.array([3]), np.ones(1, np.int32)], "out of range"),
    ("SparseLengthsSumFused2BitRowwise",
     [np.zeros((3, 8), F), np.array([0]), np.ones(1, np.int32)], "must be uint8"),
    ("SparseLengthsSum4BitRowwiseSparse",
     [np.zeros((3, 8), np.uint8), np.array([1]), np.ones(1, np.int32),
      np.array([0, 5], np.int32)], "out of range for DATA"),
    ("SparseLengthsSum4BitRowwiseSparse",
     [np.zeros((3, 8), np.uint8), np.array([0]), np.ones(1, np.int32),
      np.array([-2, 0], np.int32)], "-1 \\(pruned\\)"),
    ("SparseLengthsSumSparseLookup",
     [np.array([0, 3]), np.array([2], np.int32), np.array([0, 1], np.int32)], "out of range"),
])
def test_lookup_errors_name_the_blob_and_change_nothing(op_type, inputs, match):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, names, ["o1", "o2"][
            :1 if "Lookup" not in op_type else 2]))
    assert op_type in str(err.value) and "(blob 'in" in str(err.value)
    assert_unchanged(before)
