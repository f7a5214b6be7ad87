"""The shape / sequence / segment ops' xp-generic kernels on CUDA agree with CPU
(skipped without CuPy and a GPU; rehearsed on tests/fake_cupy.py with --fake-cuda)."""

import numpy as np
import pytest
from device_utils import CUDA_MARKS, assert_devices_agree

from caffe2lite import core

pytestmark = CUDA_MARKS

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
ROWS = np.arange(12, dtype=np.float32).reshape(6, 2) / 3
L32 = np.array([2, 0, 3, 1], np.int32)
IDS = np.array([0, 0, 1, 3, 3, 3], np.int32)
CASES = [
    ("TopK", ["x"], ["v", "i", "f"], {"x": X}, dict(k=2, axis=1)),
    ("Tile", ["x"], ["y"], {"x": X}, dict(tiles=2, axis=2)),
    ("NumpyTile", ["x", "r"], ["y"], {"x": X, "r": np.array([1, 2, 1], np.int64)}, {}),
    ("LengthsTile", ["r", "l"], ["y"], {"r": ROWS[:4], "l": L32}, {}),
    ("Expand", ["x", "s"], ["y"], {"x": X[:, :1], "s": np.array([2, 3, 4], np.int64)}, {}),
    ("ExpandDims", ["x"], ["y"], {"x": X}, dict(dims=[0])),
    ("Where", ["c", "x", "x2"], ["y"], {"c": X > 1, "x": X, "x2": -X}, {}),
    ("OneHot", ["i", "n"], ["y"], {"i": np.array([2, 0], np.int64),
                                   "n": np.array(3, np.int64)}, {}),
    ("BatchBucketOneHot", ["d", "l", "b"], ["y"],
     {"d": ROWS, "l": np.array([1, 2], np.int32),
      "b": np.array([1.0, 0.5, 2.0], np.float32)}, {}),
    ("Bucketize", ["x"], ["y"], {"x": X}, dict(boundaries=[0.5, 1.5, 2.5])),
    ("Percentile", ["x", "p", "l"], ["y"],
     {"x": ROWS, "p": np.array([[0, .1], [1, .5], [2, .9], [1, .3]], np.float32),
      "l": np.array([3, 1], np.int32)}, {}),
    ("AddPadding", ["r", "l"], ["y", "yl"], {"r": ROWS, "l": np.array([2, 4], np.int32)}, {}),
    ("PackSegments", ["l", "r"], ["y", "m"], {"l": np.array([2, 4], np.int32), "r": ROWS},
     dict(return_presence_mask=1)),
    ("BooleanMask", ["r", "m"], ["y", "i"], {"r": ROWS, "m": ROWS[:, 0] > 1}, {}),
    ("SequenceMask", ["x", "l"], ["y"], {"x": X, "l": np.array([1, 2], np.int32)},
     dict(mode="sequence", axis=1)),
    ("ReversePackedSegs", ["x", "l"], ["y"], {"x": X, "l": np.array([2, 0, 1], np.int64)}, {}),
    ("Im2Col", ["x4"], ["y"], {"x4": X.reshape(1, 2, 3, 4)}, dict(kernel=2, pad=1)),
    ("PadImage", ["x4"], ["y"], {"x4": X.reshape(1, 2, 3, 4)}, dict(pad=1, mode="reflect")),
    ("Histogram", ["x"], ["y"], {"x": X}, dict(bin_edges=[0.0, 1.0, 2.0, 3.0])),
    ("SortedSegmentRangeLogSumExp", ["r", "s"], ["y"], {"r": ROWS, "s": IDS}, {}),
    ("UnsortedSegmentMean", ["r", "s"], ["y"], {"r": ROWS, "s": IDS[::-1].copy()}, {}),
    ("LengthsMax", ["r", "l"], ["y"], {"r": ROWS, "l": np.array([2, 0, 4], np.int32)}, {}),
    ("LengthsTopK", ["v", "l"], ["y", "i"], {"v": ROWS[:, 0].copy(), "l": L32}, dict(k=2)),
    ("SegmentIdsToRanges", ["s"], ["y"], {"s": IDS}, {}),
    ("LengthsToWeights", ["l"], ["y"], {"l": L32}, {}),
    ("Range", ["a", "b"], ["y"], {"a": np.array(2), "b": np.array(9)}, {}),
    ("Find", ["i", "q"], ["y"], {"i": np.array([3, 1, 3], np.int32),
                                 "q": np.array([3, 2], np.int32)}, {}),
]


@pytest.mark.parametrize("op_type, inputs, outputs, feeds, kwargs", CASES,
                         ids=[c[0] for c in CASES])
def test_cuda_matches_cpu(op_type, inputs, outputs, feeds, kwargs):
    assert_devices_agree(core.CreateOperator(op_type, inputs, outputs, **kwargs), feeds)
