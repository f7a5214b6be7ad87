"""PackSegments / UnpackSegments against a loop over Caffe2's semantics."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op


@given(st.lists(st.integers(0, 4), max_size=5), st.integers(-1, 3), st.booleans())
def test_pack_unpack(lengths, max_length, pad_minf):
    lengths = np.array(lengths, np.int32)
    data = np.arange(lengths.sum() * 2, dtype=np.float32).reshape(-1, 2) + 1
    packed, present = run_op("PackSegments", {"l": lengths, "d": data}, ["p", "m"],
                             max_length=max_length, pad_minf=pad_minf,
                             return_presence_mask=True)
    width = max(lengths, default=0) if max_length < 0 else max_length
    pad = -np.inf if pad_minf else 0
    want = np.full((len(lengths), width, 2), pad, np.float32)
    want_present = np.zeros((len(lengths), width), bool)
    offset = 0
    for i, n in enumerate(lengths):
        kept = min(n, width)
        want[i, :kept] = data[offset:offset + kept]
        want_present[i, :kept] = True
        offset += n
    np.testing.assert_array_equal(packed, want)
    np.testing.assert_array_equal(present, want_present)
    (back,) = run_op("UnpackSegments", {"l": lengths, "p": packed}, "b",
                     max_length=max_length)
    want_back = [want[i, :min(n, width)] for i, n in enumerate(lengths)]
    np.testing.assert_array_equal(back, np.concatenate(want_back or [np.zeros((0, 2))])
                                  .reshape(-1, 2))


def test_gradients_strings_and_errors():
    rng = np.random.default_rng(0)
    lengths = np.array([2, 0, 3], np.int64)
    op = core.CreateOperator("PackSegments", ["l", "d"], ["p"])
    check_gradient(op, [lengths, rng.standard_normal((5, 2))], 1)
    op = core.CreateOperator("UnpackSegments", ["l", "p"], ["d"])
    check_gradient(op, [lengths, rng.standard_normal((3, 3, 2))], 1)
    strings = np.array([b"a", b"b", b"c"], dtype=object)
    (packed,) = run_op("PackSegments", {"l": np.array([1, 2], np.int32), "d": strings}, "p")
    assert packed.tolist() == [[b"a", b""], [b"b", b"c"]]
    assert_fails_unchanged(core.CreateOperator("PackSegments", ["l", "d"], ["p"]),
                           {"l": np.array([1, 3], np.int32), "d": np.ones((3, 2))},
                           EnforceError, "sums to 4")
    assert_fails_unchanged(core.CreateOperator("PackSegments", ["l", "d"], ["p"],
                                               pad_minf=True),
                           {"l": np.array([1], np.int32), "d": np.ones(1, np.int32)},
                           EnforceError, "pad_minf")
