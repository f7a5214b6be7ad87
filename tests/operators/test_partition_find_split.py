"""LengthsTopK, LengthsPad, LengthsSplit, Partition / LengthsPartition / GatherByKey,
Find and KeySplit against Python loops."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

segments_st = st.lists(st.lists(st.integers(-3, 3).map(float), max_size=5), max_size=4)


@given(segments_st, st.integers(1, 4))
def test_lengths_top_k(segments, k):
    data = np.array([v for s in segments for v in s], np.float32)
    lengths = np.array([len(s) for s in segments], np.int32)
    values, indices = run_op("LengthsTopK", {"d": data, "l": lengths}, ["v", "i"], k=k)
    for s, vrow, irow in zip(segments, values, indices):
        ranked = sorted(range(len(s)), key=lambda j: (-s[j], j))[:k]
        assert list(irow) == ranked + [-1] * (k - len(ranked))
        assert list(vrow) == [s[j] for j in ranked] + [0.0] * (k - len(ranked))
    assert indices.dtype == np.int32 and values.shape == (len(segments), k)


def test_lengths_top_k_gradient():
    data = np.random.default_rng(0).permutation(7).astype(np.float64)
    check_gradient(core.CreateOperator("LengthsTopK", ["d", "l"], ["v", "i"], k=2),
                   [data, np.array([3, 0, 4], np.int32)], 0)


@given(segments_st, st.integers(0, 2))
def test_lengths_pad(segments, extra):
    data = np.array([v for s in segments for v in s], np.float32)
    lengths = np.array([len(s) for s in segments], np.int32)
    target = max([len(s) for s in segments] + [1]) + extra
    (out,) = run_op("LengthsPad", {"d": data, "l": lengths}, "o", target_length=target,
                    padding_value=9.0)
    want = [v for s in segments for v in s + [9.0] * (target - len(s))]
    np.testing.assert_array_equal(out, np.array(want, np.float32))
    if segments and max(len(s) for s in segments) > 1:
        op = core.CreateOperator("LengthsPad", ["d", "l"], ["o"], target_length=1)
        assert_fails_unchanged(op, {"d": data, "l": lengths}, EnforceError,
                               "larger than target length")


@given(st.lists(st.integers(0, 20), max_size=5), st.integers(1, 6))
def test_lengths_split(lengths, parts):
    (out,) = run_op("LengthsSplit", {"l": np.array(lengths, np.int32)}, "o", n_split=parts)
    want = []
    for n in lengths:
        want += [n // parts + (1 if j < n % parts else 0) for j in range(parts)]
    np.testing.assert_array_equal(out, want)
    (over,) = run_op("LengthsSplit", {"l": np.array(lengths, np.int32),
                                      "n": np.array([parts], np.int32)}, "o", n_split=99)
    np.testing.assert_array_equal(over, want)


@given(st.lists(st.integers(-9, 9), max_size=8), st.integers(1, 3), st.booleans())
def test_partition_and_gather_by_key(keys, parts, pack):
    k = np.array(keys, np.int64)
    x = np.arange(len(keys) * 2, dtype=np.float32).reshape(-1, 2)
    outs = [f"{name}_p{p}" for p in range(parts) for name in ("k", "x")]
    got = run_op("Partition", {"k": k, "x": x}, outs, pack_first_input=pack)
    for p in range(parts):
        rows = [i for i, key in enumerate(keys) if key % parts == p]
        np.testing.assert_array_equal(got[2 * p], [keys[i] // parts if pack else keys[i]
                                                   for i in rows])
        np.testing.assert_array_equal(got[2 * p + 1].reshape(-1, 2), x[rows].reshape(-1, 2))
    shards = {f"s{p}": got[2 * p + 1] for p in range(parts)}
    (back,) = run_op("GatherByKey", {"k": k, **shards}, "b")
    np.testing.assert_array_equal(back, x)
    lengths = np.array([len(keys) // 2, len(keys) - len(keys) // 2], np.int32)
    outs = [f"{name}_p{p}" for p in range(parts) for name in ("l", "k", "x")]
    got = run_op("LengthsPartition", {"l": lengths, "k": k, "x": x}, outs)
    for p in range(parts):
        split = [sum(1 for key in keys[:lengths[0]] if key % parts == p),
                 sum(1 for key in keys[lengths[0]:] if key % parts == p)]
        np.testing.assert_array_equal(got[3 * p], split)


@given(st.lists(st.integers(0, 5), max_size=8), st.lists(st.integers(0, 7), max_size=5))
def test_find_and_key_split(index, queries):
    idx = np.array(index, np.int32)
    (pos,) = run_op("Find", {"i": idx, "q": np.array(queries, np.int32)}, "o", missing_value=-7)
    np.testing.assert_array_equal(
        pos, [max((j for j, v in enumerate(index) if v == q), default=-7) for q in queries])
    outs = [f"y{c}" for c in range(6)]
    got = run_op("KeySplit", {"k": np.array(index, np.int64)}, outs, categorical_limit=6)
    for c, out in enumerate(got):
        np.testing.assert_array_equal(out, [j for j, v in enumerate(index) if v == c])
        assert out.dtype == np.int32
