"""Fused 8-bit row-wise quantization and its lookups, against Caffe2's formulas written here.

The references are plain NumPy loops over rows written from Caffe2's sources
(perfkernels/fused_nbit_rowwise_conversion.cc: scale = range / 255, bias = min,
codes = lrintf((x - min) * (255 / (range + 1e-8))), half to even; the lookup
perfkernels' Fused8BitRowwiseEmbeddingLookupGenericSlow: per row (w * scale) *
code + (w * bias), summed left to right from 0, a mean times 1.0f / length),
every operation in float32.  Results are compared bit for bit.
"""

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe2lite import core, protoio, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import registry
from helpers import assert_unchanged, run_op, snapshot

F = np.float32
SLS_TYPES = ["SparseLengthsSumFused8BitRowwise", "SparseLengthsWeightedSumFused8BitRowwise",
             "SparseLengthsMeanFused8BitRowwise"]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def ref_quantize_row(row):
    """One float32 row -> its fused bytes, as Caffe2's scalar loop computes them."""
    row = [F(v) for v in row]
    lo, hi = min(row), max(row)
    span = F(hi - lo)
    scale, bias = F(span / F(255)), lo
    inverse = F(F(255) / F(span + F(1e-8)))
    codes = [int(np.rint(F(F(v - lo) * inverse))) for v in row]
    return bytes(codes) + struct.pack("<ff", scale, bias)


def ref_quantize(x):
    rows = x.reshape(-1, x.shape[-1])
    out = np.frombuffer(b"".join(ref_quantize_row(r) for r in rows), np.uint8)
    return out.reshape(x.shape[:-1] + (x.shape[-1] + 8,))


def ref_scale_bias(fused_row):
    return struct.unpack("<ff", bytes(fused_row[-8:]))


def ref_dequantize(q):
    rows = q.reshape(-1, q.shape[-1])
    out = np.empty((rows.shape[0], q.shape[-1] - 8), F)
    for i, row in enumerate(rows):
        scale, bias = (F(v) for v in ref_scale_bias(row))
        out[i] = [F(F(F(c) * scale) + bias) for c in row[:-8]]
    return out.reshape(q.shape[:-1] + (q.shape[-1] - 8,))


def ref_lookup(q, indices, lengths, weights=None, mean=False):
    """Caffe2's portable embedding lookup on fused rows."""
    width = q.shape[1] - 8
    out = np.zeros((len(lengths), width), F)
    p = 0
    for k, length in enumerate(lengths):
        acc = np.zeros(width, F)
        for _ in range(int(length)):
            r = int(indices[p])
            scale, bias = (F(v) for v in ref_scale_bias(q[r]))
            w = F(1) if weights is None else F(weights[p])
            s, b = F(w * scale), F(w * bias)
            acc = acc + (s * q[r, :width].astype(F) + b)
            p += 1
        if mean and length:
            acc = acc * F(F(1) / F(length))
        out[k] = acc
    return out


def engines():
    have = {e for (t, d, e) in registry.kernels() if t == SLS_TYPES[0] and d == 0}
    native = pytest.param("NATIVE", marks=pytest.mark.skipif(
        "NATIVE" not in have, reason="the optional C library (caffe2lite/_native) is not built"))
    return ["NUMPY", native]


def quantize(x, op="FloatToFused8BitRowwiseQuantized"):
    return run_op(op, {"x": x}, "q")[0]


# -- conversions ----------------------------------------------------------------------
def test_quantize_matches_caffe2_bytes_on_random_rows():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((37, 13)) * rng.uniform(0.01, 100, (37, 1))).astype(F)
    got = quantize(x)
    assert got.dtype == np.uint8 and got.shape == (37, 21)
    assert same_bits(got, ref_quantize(x))


def test_quantize_reproduces_the_glow_nets_bytes(nets_dir):
    """Glow's test table [[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]] was quantized by an
    independent implementation into the bytes its init net holds."""
    path = nets_dir / "pytorch__glow__fused_rowwise_quantized_sparse_lengths_sum_init_net.pbtxt"
    if not path.exists():
        pytest.skip(f"{path.name} is not in {nets_dir}")
    net = protoio.load_net(path)
    stored = np.frombuffer(net.op[0].arg[1].strings[0], np.uint8).reshape(3, 10)
    x = np.array([[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]], F)
    assert same_bits(quantize(x), stored)


def test_quantize_rounds_half_to_even():
    # min 0, max 255: the inverse scale is exactly 1, so codes are rint(x)
    x = np.array([[0, 2.5, 3.5, 4.5, 254.5, 255]], F)
    q = quantize(x)
    assert q[0, :6].tolist() == [0, 2, 4, 4, 254, 255]
    assert ref_scale_bias(q[0]) == (1.0, 0.0)


def test_constant_rows_negative_and_huge_values():
    x = np.array([[-3.5] * 5, [0.0] * 5, [-1e30, 1e30, 0, 5e29, -2e29],
                  [-7.0, -6.0, -5.5, -6.25, -8.0]], F)
    q = quantize(x)
    assert same_bits(q, ref_quantize(x))
    assert q[0, :5].tolist() == [0] * 5 and ref_scale_bias(q[0]) == (0.0, -3.5)
    back = run_op("Fused8BitRowwiseQuantizedToFloat", {"q": q}, "y")[0]
    assert same_bits(back, ref_dequantize(q))
    assert same_bits(back[:2], x[:2])  # a constant row comes back exactly
    np.testing.assert_allclose(back[3], x[3], atol=3.0 / 255 / 2 + 1e-6)


def test_rows_are_the_last_axis_of_any_rank():
    x = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(F)
    q = quantize(x)
    assert q.shape == (2, 3, 13) and same_bits(q, ref_quantize(x))
    y = run_op("Fused8BitRowwiseQuantizedToFloat", {"q": q}, "y")[0]
    assert y.shape == x.shape and same_bits(y, ref_dequantize(q))


@settings(max_examples=30)
@given(rows=st.integers(0, 6), cols=st.integers(1, 40), seed=st.integers(0, 2**31),
       magnitude=st.sampled_from([1e-6, 1.0, 1e3, 1e20]))
def test_round_trip_within_half_a_step(rows, cols, seed, magnitude):
    x = (np.random.default_rng(seed).standard_normal((rows, cols)) * magnitude).astype(F)
    q = quantize(x)
    assert same_bits(q, ref_quantize(x))
    y = run_op("Fused8BitRowwiseQuantizedToFloat", {"q": q}, "y")[0]
    assert same_bits(y, ref_dequantize(q))
    if rows:
        step = (x.max(1) - x.min(1)) / 255
        # half a step, plus what kEpsilon (1e-8 added to the range) shifts the codes by
        slack = step[:, None] * 0.5 * (1 + 1e-4) + 1.01e-8 + np.abs(x) * 1e-6
        assert np.all(np.abs(y - x) <= slack)


def test_half_float_variants():
    x16 = np.random.default_rng(2).standard_normal((6, 9)).astype(np.float16)
    q = quantize(x16, "HalfFloatToFused8BitRowwiseQuantized")
    assert same_bits(q, ref_quantize(x16.astype(F)))  # scale and bias stay float32
    y = run_op("Fused8BitRowwiseQuantizedToHalfFloat", {"q": q}, "y")[0]
    assert same_bits(y, ref_dequantize(q).astype(np.float16))


@pytest.mark.parametrize("op, value, match", [
    ("FloatToFused8BitRowwiseQuantized", np.zeros((2, 3)), "must be float32"),
    ("FloatToFused8BitRowwiseQuantized", np.float32(1.0), "rank >= 1"),
    ("FloatToFused8BitRowwiseQuantized", np.zeros((3, 0), F), "rows of 0 values"),
    ("HalfFloatToFused8BitRowwiseQuantized", np.zeros((2, 3), F), "must be float16"),
    ("Fused8BitRowwiseQuantizedToFloat", np.zeros((2, 12), F), "must be uint8"),
    ("Fused8BitRowwiseQuantizedToFloat", np.zeros((2, 7), np.uint8), "8 trailing bytes"),
    ("Fused8BitRowwiseQuantizedToHalfFloat", np.zeros((2, 5), np.uint8), "8 trailing bytes"),
])
def test_conversion_errors_name_op_and_blob(op, value, match):
    workspace.FeedBlob("x", np.asarray(value))
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator(op, ["x"], ["x_out"]))
    assert op in str(err.value) and "'x'" in str(err.value)
    assert_unchanged(before)


# -- lookups --------------------------------------------------------------------------
def lookup(op_type, q, indices, lengths, weights=None, engine="NUMPY"):
    inputs = {"data": q}
    if weights is not None:
        inputs["weights"] = weights
    inputs.update(indices=indices, lengths=lengths)
    return run_op(op_type, inputs, "out", engine=engine)[0]


def reference_for(op_type, q, indices, lengths, weights):
    if "Weighted" in op_type:
        return ref_lookup(q, indices, lengths, weights)
    return ref_lookup(q, indices, lengths, mean="Mean" in op_type)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("op_type", SLS_TYPES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_lookups_match_caffe2_bit_for_bit(op_type, engine, index_dtype):
    rng = np.random.default_rng(3)
    q = quantize(rng.standard_normal((50, 24)).astype(F) * 3)
    lengths = np.array([3, 0, 1, 7, 0, 4, 5], index_dtype)  # empty bags included
    indices = rng.integers(0, 50, int(lengths.sum())).astype(index_dtype)
    indices[:3] = 7  # a repeated id
    weights = rng.standard_normal(indices.size).astype(F)
    got = lookup(op_type, q, indices, lengths, weights if "Weighted" in op_type else None,
                 engine)
    assert got.shape == (7, 24) and got.dtype == F
    assert same_bits(got, reference_for(op_type, q, indices, lengths, weights))
    assert not got[1].any() and not got[4].any()


def test_sum_is_the_segment_sum_of_the_dequantized_table():
    """Unweighted, each term is exactly the dequantized value, so the lookup equals
    Fused8BitRowwiseQuantizedToFloat followed by an in-order segment sum."""
    rng = np.random.default_rng(4)
    q = quantize(rng.standard_normal((20, 16)).astype(F))
    table = ref_dequantize(q)
    indices, lengths = rng.integers(0, 20, 12), np.array([5, 0, 7], np.int32)
    expected = np.zeros((3, 16), F)
    for k, (start, n) in enumerate(zip([0, 5, 5], lengths)):
        for r in indices[start:start + n]:
            expected[k] = expected[k] + table[r]
    assert same_bits(lookup(SLS_TYPES[0], q, indices, lengths), expected)


@pytest.fixture(params=[2, 1, 0], ids=["avx512", "avx2", "plain"])
def vector_level(request):
    """The C lookup capped at each vector level this CPU has (the level runs
    above it are skipped), restored to the widest afterwards."""
    if "NATIVE" not in {e for (t, d, e) in registry.kernels() if t == SLS_TYPES[0]}:
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    from caffe2lite.operators import _native_rowwise_8bit
    if _native_rowwise_8bit.cap_vector_level(request.param) != request.param:
        _native_rowwise_8bit.cap_vector_level(2)
        pytest.skip(f"this CPU has no vector level {request.param}")
    yield request.param
    _native_rowwise_8bit.cap_vector_level(2)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 40), width=st.sampled_from([1, 3, 8, 16, 17, 32, 64, 128, 130]),
       bags=st.integers(0, 30), seed=st.integers(0, 2**31), op_type=st.sampled_from(SLS_TYPES))
def test_engines_give_identical_bits(vector_level, rows, width, bags, seed, op_type):
    rng = np.random.default_rng(seed)
    q = quantize((rng.standard_normal((rows, width)) * rng.uniform(0.1, 50)).astype(F))
    lengths = rng.integers(0, 9, bags).astype(np.int32)
    indices = rng.integers(0, rows, int(lengths.sum()))
    weights = rng.standard_normal(indices.size).astype(F) if "Weighted" in op_type else None
    outs = [lookup(op_type, q, indices, lengths, weights, engine=e) for e in ("NUMPY", "NATIVE")]
    assert same_bits(outs[0], outs[1])
    assert same_bits(outs[0], reference_for(op_type, q, indices, lengths, weights))


def test_native_engine_is_preferred_when_built():
    op_type = SLS_TYPES[0]
    if "NATIVE" not in {e for (t, d, e) in registry.kernels() if t == op_type}:
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    op = core.CreateOperator(op_type, ["data", "indices", "lengths"], ["out"])
    assert registry.find_kernel(op, 0)[1] == "NATIVE"


def test_gather_dequantizes_the_gathered_rows():
    rng = np.random.default_rng(5)
    q = quantize(rng.standard_normal((10, 12)).astype(F))
    for dtype in (np.int32, np.int64):
        indices = np.array([3, 3, 0, 9], dtype)
        got = run_op("GatherFused8BitRowwise", {"data": q, "ind": indices}, "g")[0]
        assert same_bits(got, ref_dequantize(q)[indices])
    empty = run_op("GatherFused8BitRowwise", {"data": q, "ind": np.zeros(0, np.int64)}, "g")[0]
    assert empty.shape == (0, 12) and empty.dtype == F


def test_no_gradients_as_in_caffe2():
    from caffe2lite.runtime.op_schema import NO_GRADIENT

    for op_type in SLS_TYPES + ["FloatToFused8BitRowwiseQuantized",
                                "Fused8BitRowwiseQuantizedToFloat",
                                "HalfFloatToFused8BitRowwiseQuantized",
                                "Fused8BitRowwiseQuantizedToHalfFloat",
                                "FloatToFused8BitRowwiseQuantizedHalfScaleBias",
                                "HalfFloatToFused8BitRowwiseQuantizedHalfScaleBias",
                                "Fused8BitRowwiseQuantizedHalfScaleBiasToFloat",
                                "Fused8BitRowwiseQuantizedHalfScaleBiasToHalfFloat"]:
        assert registry.schemas()[op_type].gradient == NO_GRADIENT, op_type


# -- bad input --------------------------------------------------------------------------
GOOD_Q = np.zeros((4, 10), np.uint8)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("data, indices, lengths, weights, blob, match", [
    (np.zeros((4, 10), F), [0], [1], None, "data", "must be uint8"),
    (np.zeros((4, 8), np.uint8), [0], [1], None, "data", "more than 8 columns"),
    (np.zeros(10, np.uint8), [0], [1], None, "data", "rank 2"),
    (GOOD_Q, [0, 4], [2], None, "indices", "out of range"),
    (GOOD_Q, [0, -1], [2], None, "indices", "out of range"),
    (GOOD_Q, [0, 1], [1], None, "lengths", "must sum to 2"),
    (GOOD_Q, [0, 1], [3, -1], None, "lengths", "non-negative"),
    (GOOD_Q, np.array([0.0]), [1], None, "indices", "int32 or int64"),
    (GOOD_Q, [0, 1], [2], np.ones(3, F), "weights", "one per index"),
    (GOOD_Q, [0, 1], [2], np.ones(2), "weights", "float32"),
])
def test_lookup_errors_name_op_and_blob_and_change_nothing(engine, data, indices, lengths,
                                                           weights, blob, match):
    op_type = SLS_TYPES[1] if weights is not None else SLS_TYPES[0]
    inputs = {"data": data}
    if weights is not None:
        inputs["weights"] = weights
    inputs.update(indices=np.asarray(indices), lengths=np.asarray(lengths, np.int32))
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("out", np.full(3, 7.0, F))  # an output that must survive a failure
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), ["out"],
                                                      engine=engine))
    assert op_type in str(err.value) and f"'{blob}'" in str(err.value)
    assert_unchanged(before)


def test_gather_errors():
    workspace.FeedBlob("data", GOOD_Q)
    workspace.FeedBlob("ind", np.array([1, 4]))
    before = snapshot()
    with pytest.raises(EnforceError, match="out of range") as err:
        workspace.RunOperatorOnce(core.CreateOperator("GatherFused8BitRowwise",
                                                      ["data", "ind"], ["g"]))
    assert "GatherFused8BitRowwise" in str(err.value) and "'ind'" in str(err.value)
    assert_unchanged(before)


# -- the corpus nets (Glow's Caffe2-importer models) ------------------------------------
def run_pair(nets_dir, stem, feeds):
    """Init net, then the predict net with ``feeds``; returns (workspace blobs, predict net)."""
    paths = [nets_dir / f"{stem}_{kind}_net.pbtxt" for kind in ("init", "predict")]
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path.name} is not in {nets_dir}")
    init, predict = (protoio.load_net(p) for p in paths)
    missing = sorted({op.type for op in list(init.op) + list(predict.op)}
                     - set(registry.schemas()))
    if missing:
        pytest.skip(f"needs operator(s) not in caffe2lite yet: {', '.join(missing)}")
    workspace.RunNetOnce(init)
    produced = {o for op in init.op for o in op.output}
    assert set(predict.external_input) - produced == set(feeds)
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(predict)
    return predict


def dequantized_fused_table(q):
    """The table by Caffe2's formula: code * scale + bias, scale/bias from the last 8 bytes."""
    sb = np.array([struct.unpack("<ff", bytes(row[-8:])) for row in q], F)
    return q[:, :-8].astype(F) * sb[:, :1] + sb[:, 1:]


def segment_sum(table, indices, lengths, weights=None):
    w = np.ones(len(indices), F) if weights is None else weights
    out, p = np.zeros((len(lengths), table.shape[1]), F), 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            out[k] += w[p] * table[indices[p]]
            p += 1
    return out


def test_glow_fused_sls_net(nets_dir):
    indices, lengths = np.array([2, 0, 1, 2, 0, 0, 0, 0], np.int64), np.array([2, 0, 2, 1, 3],
                                                                              np.int32)
    predict = run_pair(nets_dir, "pytorch__glow__fused_rowwise_quantized_sparse_lengths_sum",
                       {"indices": indices, "lengths": lengths})
    result = workspace.FetchBlob(predict.external_output[0])
    expected = segment_sum(dequantized_fused_table(workspace.FetchBlob("data")), indices,
                           lengths)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)
    # Glow's own expectation for these rows: [[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]]
    np.testing.assert_allclose(result[0], [5.5, 6.9], atol=0.01)


def test_glow_fused_weighted_sls_net(nets_dir):
    indices = np.array([1, 0, 2, 0, 1, 2, 2, 0], np.int32)
    lengths = np.array([3, 0, 3, 2], np.int32)
    predict = run_pair(
        nets_dir, "pytorch__glow__fused_rowwise_quantized_sparse_lengths_weighted_sum",
        {"indices": indices, "lengths": lengths})
    result = workspace.FetchBlob(predict.external_output[0])
    table = dequantized_fused_table(workspace.FetchBlob("data"))
    np.testing.assert_allclose(table[:, 0], [2.0, -0.5, 13.0])  # Glow's table
    expected = segment_sum(table, indices, lengths, workspace.FetchBlob("weights"))
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("lengths", [[0, 0, 0], []])
def test_only_empty_bags_or_none(engine, lengths):
    q = quantize(np.arange(12, dtype=F).reshape(2, 6))
    for op_type in SLS_TYPES:
        weights = np.zeros(0, F) if "Weighted" in op_type else None
        got = lookup(op_type, q, np.zeros(0, np.int64), np.array(lengths, np.int32), weights,
                     engine)
        assert got.shape == (len(lengths), 6) and got.dtype == F and not got.any()


@pytest.fixture
def three_threads():
    from caffe2lite.operators import _parallel

    saved = _parallel.num_threads()
    _parallel.set_num_threads(3)
    yield
    _parallel.set_num_threads(saved)


def test_native_threads_share_the_bags_and_stop_at_a_bad_index(three_threads):
    """40,000 lookups: enough chunks of bags for pool threads to join the C kernel."""
    op_type = SLS_TYPES[1]
    if "NATIVE" not in {e for (t, d, e) in registry.kernels() if t == op_type}:
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    rng = np.random.default_rng(6)
    q = quantize(rng.standard_normal((300, 8)).astype(F))
    lengths = rng.integers(0, 5, 20000).astype(np.int32)
    indices = rng.integers(0, 300, int(lengths.sum()))
    weights = rng.standard_normal(indices.size).astype(F)
    outs = [lookup(op_type, q, indices, lengths, weights, engine=e) for e in ("NUMPY", "NATIVE")]
    assert same_bits(outs[0], outs[1])
    indices[-3] = 300
    with pytest.raises(EnforceError, match=f"element {indices.size - 3} is 300"):
        lookup(op_type, q, indices, lengths, weights, engine="NATIVE")


def test_empty_table():
    q = np.zeros((0, 12), np.uint8)
    got = lookup(SLS_TYPES[0], q, np.zeros(0, np.int32), np.array([0, 0], np.int32))
    assert got.shape == (2, 4) and not got.any()
    with pytest.raises(EnforceError, match="out of range"):
        lookup(SLS_TYPES[0], q, np.zeros(1, np.int32), np.array([1], np.int32), engine="NATIVE")


def test_shape_inference():
    shapes, types = workspace.InferShapesAndTypes(
        [_net_of([("FloatToFused8BitRowwiseQuantized", ["x"], ["q"]),
                  ("SparseLengthsMeanFused8BitRowwise", ["q", "i", "l"], ["m"]),
                  ("GatherFused8BitRowwise", ["q", "i"], ["g"]),
                  ("Fused8BitRowwiseQuantizedToHalfFloat", ["q"], ["h"])])],
        {"x": [7, 5], "i": [9], "l": [3]}, {"i": 10, "l": 2})
    assert shapes["q"] == [7, 13] and shapes["m"] == [3, 5] and shapes["g"] == [9, 5]
    assert shapes["h"] == [7, 5]


def _net_of(ops):
    net = core.Net("quantized_shapes")
    for op_type, inputs, outputs in ops:
        net.Proto().op.extend([core.CreateOperator(op_type, inputs, outputs)])
    return net


# -- the HalfScaleBias variants (4 trailing bytes: float16 scale and bias) ----------------
def ref_quantize_half_sb_row(row):
    """Caffe2's FloatToFusedNBitRowwiseQuantizedSBHalf__base at bit_rate 8, one row."""
    row = [F(v) for v in row]
    lo = F(np.float16(min(row)))
    span = F(max(row) - lo)
    scale = np.float16(1.0) if span == 0 else np.float16(F(span / F(255)))
    if scale == 0:
        scale = np.float16(1.0)
    inverse = F(F(1) / F(scale))
    if np.isinf(inverse):
        scale, inverse = np.float16(1.0), F(1)
    codes = [min(255, max(0, int(np.rint(F(F(v - lo) * inverse))))) for v in row]
    return bytes(codes) + struct.pack("<ee", scale, np.float16(lo))


@pytest.mark.parametrize("source", [np.float32, np.float16])
def test_half_scale_bias_variants(source):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((9, 11)) * rng.uniform(0.01, 300, (9, 1))).astype(source)
    x[1] = 0.75  # constant: scale 1
    x[2, :] = x[2, 0] + np.float16(1e-4) * np.arange(11)  # tiny range
    prefix = "Float" if source == np.float32 else "HalfFloat"
    q = quantize(x, f"{prefix}ToFused8BitRowwiseQuantizedHalfScaleBias")
    expected = np.frombuffer(b"".join(ref_quantize_half_sb_row(r) for r in x.astype(F)),
                             np.uint8).reshape(9, 15)
    assert same_bits(q, expected)
    for op in ("Fused8BitRowwiseQuantizedHalfScaleBiasToFloat",
               "Fused8BitRowwiseQuantizedHalfScaleBiasToHalfFloat"):
        y = run_op(op, {"q": q}, "y")[0]
        sb = q[:, -4:].copy().view("<f2").astype(F)
        ref = q[:, :-4].astype(F) * sb[:, :1] + sb[:, 1:]
        assert same_bits(y, ref)  # float32 output for both, as Caffe2 registered them
    np.testing.assert_allclose(y, x.astype(F), atol=float(np.abs(x).max()) / 255 + 1e-3)
