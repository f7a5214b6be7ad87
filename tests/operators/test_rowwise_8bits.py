"""The older 8-bit row-wise layout (codes + a separate (N, 2) scale_bias), against Caffe2's
formulas written here.

From lengths_reducer_rowwise_8bit_ops.h: per row (dim 0; the other dims
flattened) bias = min; a row with max - min < 1e-10 gets scale 1 and zero
codes, others scale = (max - min) / 255 and codes round((x - bias) * (1 /
scale)) with Eigen's round (half away from zero).  The lookups run perfkernels'
EmbeddingLookupGenericSlow: per row (w * scale) * code + (w * bias), summed
left to right from 0, a mean times 1.0f / length.  All float32, bit for bit.
"""

import math

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import NO_GRADIENT, registry
from helpers import assert_unchanged, run_op, snapshot

F = np.float32
LOOKUPS = ["SparseLengthsSum8BitsRowwise", "SparseLengthsWeightedSum8BitsRowwise",
           "SparseLengthsMean8BitsRowwise", "SparseLengthsWeightedMean8BitsRowwise"]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def round_half_away(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def ref_quantize(x):
    rows = x.reshape(x.shape[0], -1)
    codes = np.zeros(rows.shape, np.uint8)
    scale_bias = np.zeros((rows.shape[0], 2), F)
    for i, row in enumerate(rows):
        lo, hi = F(row.min()), F(row.max())
        if F(hi - lo) < F(1e-10):
            scale_bias[i] = (1.0, lo)
            continue
        scale = F(F(hi - lo) / F(255))
        scale_bias[i] = (scale, lo)
        inverse = F(F(1) / scale)
        # float64 holds the float32 product exactly, so round() sees the float32 value
        codes[i] = [round_half_away(float(F(F(v - lo) * inverse))) for v in row]
    return codes.reshape(x.shape), scale_bias


def ref_dequantize(codes, scale_bias):
    rows = codes.reshape(codes.shape[0], -1)
    out = np.empty(rows.shape, F)
    for i, row in enumerate(rows):
        s, b = scale_bias[i]
        out[i] = [F(F(F(c) * s) + b) for c in row]
    return out.reshape(codes.shape)


def ref_lookup(codes, scale_bias, indices, lengths, weights=None, mean=False):
    rows = codes.reshape(codes.shape[0], -1)
    out = np.zeros((len(lengths), rows.shape[1]), F)
    p = 0
    for k, n in enumerate(lengths):
        acc = np.zeros(rows.shape[1], F)
        for _ in range(int(n)):
            r = int(indices[p])
            w = F(1) if weights is None else F(weights[p])
            s, b = F(w * scale_bias[r, 0]), F(w * scale_bias[r, 1])
            acc = acc + (s * rows[r].astype(F) + b)
            p += 1
        if mean and n:
            acc = acc * F(F(1) / F(n))
        out[k] = acc
    return out.reshape((len(lengths),) + codes.shape[1:])


def engines():
    have = {e for (t, d, e) in registry.kernels() if t == LOOKUPS[0] and d == 0}
    native = pytest.param("NATIVE", marks=pytest.mark.skipif(
        "NATIVE" not in have, reason="the optional C library (caffe2lite/_native) is not built"))
    return ["NUMPY", native]


def quantize(x):
    return run_op("FloatToRowwiseQuantized8Bits", {"x": x}, ["q", "sb"])


def test_quantize_and_dequantize_match_caffe2():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((17, 3, 4)) * rng.uniform(0.01, 1e4, (17, 1, 1))).astype(F)
    x[2] = 4.25  # a constant row
    x[5] = -x[5]
    codes, scale_bias = quantize(x)
    ref_codes, ref_sb = ref_quantize(x)
    assert codes.dtype == np.uint8 and codes.shape == x.shape and scale_bias.shape == (17, 2)
    assert same_bits(codes, ref_codes) and same_bits(scale_bias, ref_sb)
    assert not codes[2].any() and scale_bias[2].tolist() == [1.0, 4.25]
    back = run_op("Rowwise8BitQuantizedToFloat", {"q": codes, "sb": scale_bias}, "y")[0]
    assert same_bits(back, ref_dequantize(codes, scale_bias))
    assert same_bits(back[2], x[2])
    step = (x.reshape(17, -1).max(1) - x.reshape(17, -1).min(1)) / 255
    assert np.all(np.abs(back - x).reshape(17, -1) <= step[:, None] * 0.5001 + 1e-6 * np.abs(
        x.reshape(17, -1)))


def test_quantize_rounds_half_away_from_zero():
    x = np.array([[0, 2.5, 3.5, 4.5, 254.5, 255]], F)  # scale 1, inverse 1
    codes, scale_bias = quantize(x)
    assert codes[0].tolist() == [0, 3, 4, 5, 255, 255]
    assert scale_bias.tolist() == [[1.0, 0.0]]


def test_rank_one_input_is_rows_of_one():
    x = np.array([3.0, -1.0, 7.5], F)
    codes, scale_bias = quantize(x)
    assert codes.tolist() == [0, 0, 0] and scale_bias.tolist() == [[1, 3], [1, -1], [1, 7.5]]


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("op_type", LOOKUPS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_lookups_match_caffe2_bit_for_bit(op_type, engine, index_dtype):
    rng = np.random.default_rng(1)
    codes, scale_bias = quantize((rng.standard_normal((30, 2, 5)) * 4).astype(F))
    lengths = np.array([4, 0, 2, 6, 1], index_dtype)
    indices = rng.integers(0, 30, int(lengths.sum())).astype(index_dtype)
    indices[4:6] = 11  # repeated ids
    weights = rng.standard_normal(indices.size).astype(F)
    weighted = "Weighted" in op_type
    inputs = {"data": codes}
    if weighted:
        inputs["scalars"] = weights
    inputs.update(indices=indices, lengths=lengths, scale_bias=scale_bias)
    got = run_op(op_type, inputs, "out", engine=engine)[0]
    expected = ref_lookup(codes, scale_bias, indices, lengths, weights if weighted else None,
                          mean="Mean" in op_type)
    assert got.shape == (5, 2, 5) and same_bits(got, expected)
    assert not got[1].any()


@pytest.mark.parametrize("op_type", LOOKUPS)
def test_engines_agree_on_wide_rows(op_type):
    if "NATIVE" not in {e for (t, d, e) in registry.kernels() if t == op_type}:
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    rng = np.random.default_rng(2)
    codes, scale_bias = quantize(rng.standard_normal((200, 64)).astype(F))
    lengths = rng.integers(0, 40, 300).astype(np.int32)
    indices = rng.integers(0, 200, int(lengths.sum()))
    inputs = {"data": codes}
    if "Weighted" in op_type:
        inputs["scalars"] = rng.standard_normal(indices.size).astype(F)
    inputs.update(indices=indices, lengths=lengths, scale_bias=scale_bias)
    outs = [run_op(op_type, inputs, "out", engine=e)[0] for e in ("NUMPY", "NATIVE")]
    assert same_bits(outs[0], outs[1])


def test_glow_rowwise_sls_net(nets_dir):
    from caffe2lite import protoio

    paths = [nets_dir / f"pytorch__glow__rowwise_quantized_sparse_lengths_sum_{k}_net.pbtxt"
             for k in ("init", "predict")]
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path.name} is not in {nets_dir}")
    init, predict = (protoio.load_net(p) for p in paths)
    workspace.RunNetOnce(init)
    produced = {o for op in init.op for o in op.output}
    assert set(predict.external_input) - produced == {"indices", "lengths"}
    indices = np.array([2, 0, 1, 2, 0, 0, 0, 0], np.int64)
    lengths = np.array([2, 0, 2, 1, 3], np.int32)
    workspace.FeedBlob("indices", indices)
    workspace.FeedBlob("lengths", lengths)
    workspace.RunNetOnce(predict)
    result = workspace.FetchBlob(predict.external_output[0])
    codes, sb = workspace.FetchBlob("data"), workspace.FetchBlob("scales_bias")
    table = codes.astype(F) * sb[:, :1] + sb[:, 1:]  # Caffe2's formula
    np.testing.assert_allclose(table, [[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]], atol=1e-6)
    expected = np.zeros((5, 2), F)
    p = 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            expected[k] += table[indices[p]]
            p += 1
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


def test_no_gradients_as_in_caffe2():
    for op_type in LOOKUPS + ["FloatToRowwiseQuantized8Bits", "Rowwise8BitQuantizedToFloat"]:
        assert registry.schemas()[op_type].gradient == NO_GRADIENT, op_type


CODES = np.zeros((4, 3), np.uint8)
SB = np.ones((4, 2), F)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("data, indices, lengths, sb, blob, match", [
    (np.zeros((4, 3), F), [0], [1], SB, "data", "must be uint8"),
    (CODES, [0], [1], np.ones((3, 2), F), "sb", r"\(4, 2\) matrix"),
    (CODES, [0], [1], np.ones((4, 3), F), "sb", r"\(4, 2\) matrix"),
    (CODES, [0], [1], np.ones((4, 2)), "sb", "must be float32"),
    (CODES, [0, 4], [2], SB, "indices", "out of range"),
    (CODES, [0, 1], [3], SB, "lengths", "must sum to 2"),
])
def test_lookup_errors_change_nothing(engine, data, indices, lengths, sb, blob, match):
    inputs = {"data": data, "indices": np.asarray(indices), "lengths": np.asarray(lengths),
              "sb": sb}
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator(LOOKUPS[0], list(inputs), ["out"],
                                                      engine=engine))
    assert LOOKUPS[0] in str(err.value) and f"'{blob}'" in str(err.value)
    assert_unchanged(before)


@pytest.mark.parametrize("op, inputs, match", [
    ("FloatToRowwiseQuantized8Bits", [np.zeros((2, 2))], "must be float32"),
    ("FloatToRowwiseQuantized8Bits", [np.float32(2)], "rank >= 1"),
    ("Rowwise8BitQuantizedToFloat", [CODES, np.ones((2, 2), F)], r"\(4, 2\) matrix"),
    ("Rowwise8BitQuantizedToFloat", [CODES.astype(F), SB], "must be uint8"),
])
def test_conversion_errors(op, inputs, match):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, np.asarray(value))
    before = snapshot()
    outputs = ["o0", "o1"] if op.startswith("Float") else ["o0"]
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(op, names, outputs))
    assert_unchanged(before)
