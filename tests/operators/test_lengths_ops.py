"""LengthsToRanges, LengthsGather, LengthsRangeFill against NumPy loops."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, registry
from helpers import run_op

lengths_lists = st.lists(st.integers(0, 4), max_size=8)


@given(lengths_lists)
def test_lengths_to_ranges_and_range_fill(lengths):
    arr = np.array(lengths, np.int32)
    ranges, fill = run_op("LengthsToRanges", {"l": arr}, ["r"])[0], \
        run_op("LengthsRangeFill", {"l": arr}, ["f"])[0]
    offset, want_ranges, want_fill = 0, [], []
    for n in lengths:
        want_ranges.append([offset, n])
        want_fill.extend(range(n))
        offset += n
    assert ranges.dtype == np.int32 and ranges.shape == (len(lengths), 2)
    np.testing.assert_array_equal(ranges, np.array(want_ranges, np.int32).reshape(-1, 2))
    assert fill.dtype == np.int32
    np.testing.assert_array_equal(fill, np.array(want_fill, np.int32))


def test_documented_examples():
    np.testing.assert_array_equal(
        run_op("LengthsToRanges", {"l": np.array([1, 3, 0, 2], np.int32)}, ["r"])[0],
        [[0, 1], [1, 3], [4, 0], [4, 2]])
    np.testing.assert_array_equal(
        run_op("LengthsRangeFill", {"l": np.array([4, 3, 1], np.int32)}, ["f"],
               maxOutputSize=8)[0], [0, 1, 2, 3, 0, 1, 2, 0])
    np.testing.assert_array_equal(
        run_op("LengthsGather", {"items": np.arange(10, dtype=np.int64),
                                 "len": np.array([0, 2, 3, 1, 4], np.int32),
                                 "idx": np.array([0, 2, 4], np.int32)}, ["out"])[0],
        [2, 3, 4, 6, 7, 8, 9])


@given(lengths_lists.filter(len), st.data())
def test_lengths_gather(lengths, data):
    idx = data.draw(st.lists(st.integers(0, len(lengths) - 1), max_size=6))
    lens = np.array(lengths, np.int32)
    items = np.arange(lens.sum() * 2, dtype=np.float32).reshape(-1, 2)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    want = [items[offsets[i]:offsets[i] + lens[i]] for i in idx]
    want = np.concatenate(want) if want else np.zeros((0, 2), np.float32)
    got, = run_op("LengthsGather", {"items": items, "lengths": lens,
                                    "indices": np.array(idx, np.int64)}, ["out"])
    assert got.shape == want.shape and got.dtype == items.dtype
    np.testing.assert_array_equal(got, want)


def test_lengths_ops_bad_inputs():
    for op_type in ("LengthsToRanges", "LengthsRangeFill"):
        op = core.CreateOperator(op_type, ["l"], ["o"])
        assert_fails_unchanged(op, {"l": np.array([1, 2], np.int64)}, EnforceError, "int32")
        assert_fails_unchanged(op, {"l": np.ones((2, 2), np.int32)}, EnforceError, "vector")
        assert_fails_unchanged(op, {"l": np.array([1, -1], np.int32)}, EnforceError, "negative")
    ok = {"items": np.ones(5, np.float32), "lengths": np.array([2, 3], np.int32),
          "indices": np.array([1], np.int32)}
    op = core.CreateOperator("LengthsGather", list(ok), ["out"])
    assert_fails_unchanged(op, {**ok, "indices": np.array([2], np.int32)}, EnforceError,
                           "'indices'.*index 2.*\\[0, 2\\)")
    assert_fails_unchanged(op, {**ok, "items": np.ones(4, np.float32)}, EnforceError,
                           "'items'.*4 rows.*sum to 5")


def test_lengths_to_ranges_refuses_offsets_past_int32():
    op = core.CreateOperator("LengthsToRanges", ["l"], ["o"])
    top = np.iinfo(np.int32).max
    (ranges,) = run_op("LengthsToRanges", {"l": np.array([top, 1], np.int32)}, "ok")
    np.testing.assert_array_equal(ranges, [[0, top], [top, 1]])  # the last offset that fits
    assert_fails_unchanged(op, {"l": np.array([top, 1, 1], np.int32)}, EnforceError,
                           r"segment 2 starts at offset 2147483648, past the int32 range")


def test_gradient_declarations():
    assert registry.get_schema("LengthsToRanges").gradient is None  # Caffe2 registered none
    assert registry.get_schema("LengthsRangeFill").gradient == NO_GRADIENT
    assert registry.get_schema("LengthsGather").gradient == SHOULD_NOT_DO_GRADIENT


@given(lengths_lists, st.booleans())
def test_lengths_to_segment_ids_offsets_weights(lengths, last):
    arr = np.array(lengths, np.int64)
    (ids,) = run_op("LengthsToSegmentIds", {"l": arr}, "o")
    np.testing.assert_array_equal(ids, [i for i, n in enumerate(lengths) for _ in range(n)])
    assert ids.dtype == np.int32
    (offsets,) = run_op("LengthsToOffsets", {"l": arr}, "o", include_last_offset=last)
    want = [sum(lengths[:i]) for i in range(len(lengths) + (1 if last else 0))]
    np.testing.assert_array_equal(offsets, want)
    assert offsets.dtype == np.int64
    (weights,) = run_op("LengthsToWeights", {"l": arr}, "o", power=2.0)
    np.testing.assert_allclose(weights, [1 / n ** 2 for n in lengths for _ in range(n)],
                               rtol=1e-6)


@given(st.lists(st.integers(0, 5), max_size=8).map(sorted), st.integers(0, 3))
def test_segment_ids_to_lengths_and_ranges(ids, extra):
    arr = np.array(ids, np.int32)
    count = (ids[-1] + 1 if ids else 0) + extra
    data = np.zeros((count, 2))
    (lengths,) = run_op("SegmentIdsToLengths", {"s": arr, "d": data}, "o")
    np.testing.assert_array_equal(lengths, [ids.count(k) for k in range(count)])
    (ranges,) = run_op("SegmentIdsToRanges", {"s": arr, "d": data}, "o")
    last = ids[-1] if ids else -1
    starts = [next((i for i, v in enumerate(ids) if v >= k), 0) if k <= last else 0
              for k in range(count)]
    np.testing.assert_array_equal(ranges.reshape(-1, 2),
                                  np.array([[s, ids.count(k)] for k, s in enumerate(starts)],
                                           np.int32).reshape(-1, 2))


def test_segment_ids_must_be_sorted_and_ranges_shape_inference():
    op = core.CreateOperator("SegmentIdsToLengths", ["s"], ["o"])
    assert_fails_unchanged(op, {"s": np.array([1, 0], np.int32)}, EnforceError,
                           "must be sorted")
    from caffe2lite import workspace
    net = core.Net("ranges")
    net.LengthsToRanges("l", "r")
    shapes, types = workspace.InferShapesAndTypes([net], {"l": [5]},
                                                  blob_types={"l": core.DataType.INT32})
    assert shapes["r"] == [5, 2] and types["r"] == core.DataType.INT32
