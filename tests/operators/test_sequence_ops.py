"""AddPadding, RemovePadding, GatherPadding, PadEmptySamples, ReversePackedSegs,
RemoveDataBlocks and FindDuplicateElements against loops over Caffe2's semantics."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

lengths_st = st.lists(st.integers(0, 3), max_size=4)


def pad_reference(data, lengths, start, end, start_pad, end_pad):
    rows, offset = [], 0
    for n in lengths:
        rows += [start_pad] * start + list(data[offset:offset + n]) + [end_pad] * end
        offset += n
    return np.array(rows, data.dtype).reshape((-1,) + data.shape[1:])


@given(lengths_st, st.integers(0, 2), st.integers(-1, 2), st.booleans())
def test_add_then_remove_padding(lengths, start, end_arg, with_pads):
    end = start if end_arg < 0 else end_arg
    lengths = np.array(lengths, np.int32)
    data = np.arange(lengths.sum() * 2, dtype=np.float32).reshape(-1, 2)
    pads = [np.array([-1, -2], np.float32), np.array([-3, -4], np.float32)]
    inputs = {"d": data, "l": lengths}
    if with_pads:
        inputs.update(s=pads[0], e=pads[1])
    out, out_lengths = run_op("AddPadding", inputs, ["o", "ol"], padding_width=start,
                              end_padding_width=end_arg)
    want = pad_reference(data, lengths, start, end,
                         *(pads if with_pads else [np.zeros(2, np.float32)] * 2))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out_lengths, lengths + start + end)
    back, back_lengths = run_op("RemovePadding", {"o": out, "ol": out_lengths}, ["b", "bl"],
                                padding_width=start, end_padding_width=end_arg)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_array_equal(back_lengths, lengths)
    if with_pads:
        s, e = run_op("GatherPadding", {"o": out, "ol": out_lengths}, ["s", "e"],
                      padding_width=start, end_padding_width=end_arg)
        np.testing.assert_array_equal(s, pads[0] * start * len(lengths))
        np.testing.assert_array_equal(e, pads[1] * end * len(lengths))


def test_padding_gradients_and_shapes():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 2))
    op = core.CreateOperator("AddPadding", ["d", "l", "s", "e"], ["o", "ol"], padding_width=2,
                             end_padding_width=1)
    inputs = [data, np.array([2, 3], np.int32), rng.standard_normal(2), rng.standard_normal(2)]
    for i in (0, 2, 3):
        check_gradient(op, inputs, i)
    op = core.CreateOperator("RemovePadding", ["d", "l"], ["o", "ol"], padding_width=1)
    check_gradient(op, [data, np.array([2, 3], np.int32)], 0)
    net = core.Net("pad")
    net.AddPadding(["d", "l"], ["o", "ol"], padding_width=2)
    shapes, types = workspace.InferShapesAndTypes([net], {"d": [5, 2], "l": [2]})
    assert shapes["o"] == [13, 2] and shapes["ol"] == [2]
    assert_fails_unchanged(core.CreateOperator("AddPadding", ["d", "l"], ["o"]),
                           {"d": data, "l": np.array([2, 2], np.int32)}, EnforceError,
                           "sums to 4.*5 rows")
    assert_fails_unchanged(core.CreateOperator("RemovePadding", ["d", "l"], ["o"],
                                               padding_width=2),
                           {"d": data, "l": np.array([2, 3], np.int32)}, EnforceError,
                           "shorter than the padding")


def test_pad_empty_samples():
    lengths = np.array([0, 2, 0, 1], np.int32)
    feature = np.array([[1, 1], [2, 2], [3, 3]], np.int64)
    names = np.array([b"a", b"b", b"c"], dtype=object)
    out_lengths, out, out_names = run_op("PadEmptySamples", {"l": lengths, "f": feature,
                                                             "n": names}, ["ol", "of", "on"])
    np.testing.assert_array_equal(out_lengths, [1, 2, 1, 1])
    np.testing.assert_array_equal(out, [[0, 0], [1, 1], [2, 2], [0, 0], [3, 3]])
    assert list(out_names) == [b"", b"a", b"b", b"", b"c"]


@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_reverse_packed_segs(steps, batch, data):
    lengths = np.array(data.draw(st.lists(st.integers(0, steps), min_size=batch,
                                          max_size=batch)), np.int64)
    x = np.arange(steps * batch * 2, dtype=np.float32).reshape(steps, batch, 2)
    (y,) = run_op("ReversePackedSegs", {"x": x, "l": lengths}, "y")
    want = x.copy()
    for i, n in enumerate(lengths):
        want[:n, i] = x[:n, i][::-1]
    np.testing.assert_array_equal(y, want)
    check_gradient(core.CreateOperator("ReversePackedSegs", ["x", "l"], ["y"]),
                   [x.astype(np.float64), lengths], 0)


def test_remove_data_blocks_and_find_duplicates():
    data = np.arange(10).reshape(5, 2)
    (out,) = run_op("RemoveDataBlocks", {"d": data, "i": np.array([3, 0, 3], np.int32)}, "o")
    np.testing.assert_array_equal(out, [[2, 3], [4, 5], [8, 9]])
    assert_fails_unchanged(core.CreateOperator("RemoveDataBlocks", ["d", "i"], ["o"]),
                           {"d": data, "i": np.array([5], np.int64)}, EnforceError,
                           "outside \\[0, 5\\)")
    values = [b"x", b"y", b"x", b"z", b"y", b"x"]
    (dups,) = run_op("FindDuplicateElements", {"d": np.array(values, dtype=object)}, "o")
    seen, want = set(), []
    for i, v in enumerate(values):
        if v in seen:
            want.append(i)
        seen.add(v)
    np.testing.assert_array_equal(dups, want)
    assert dups.dtype == np.int64


@given(st.lists(st.integers(0, 3), max_size=4))
def test_pack_unpack_rnn_sequence(lengths):
    lengths = np.array(lengths, np.int32)
    values = np.arange(lengths.sum() * 2, dtype=np.float64).reshape(-1, 2) + 1
    (packed,) = run_op("PackRNNSequence", {"v": values, "l": lengths}, "p")
    steps = max(lengths.tolist(), default=0)
    want = np.zeros((steps, lengths.size, 2))
    offset = 0
    for c, n in enumerate(lengths):
        want[:n, c] = values[offset:offset + n]
        offset += n
    np.testing.assert_array_equal(packed, want)
    (back,) = run_op("UnpackRNNSequence", {"p": packed, "l": lengths}, "b")
    np.testing.assert_array_equal(back, values)
    if lengths.sum():
        check_gradient(core.CreateOperator("PackRNNSequence", ["v", "l"], ["p"]),
                       [values, lengths], 0)
