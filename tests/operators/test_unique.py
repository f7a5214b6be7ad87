"""Unique against a NumPy reference (sorted distinct values, int32 remapping)."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry
from helpers import run_op


@given(st.lists(st.integers(-5, 5), max_size=15), st.sampled_from([np.int32, np.int64]))
def test_unique_with_remapping(values, dtype):
    x = np.array(values, dtype=dtype)
    distinct = sorted(set(values))
    unique, remap = run_op("Unique", {"X": x}, ["U", "R"])
    assert unique.dtype == dtype and remap.dtype == np.int32 and remap.shape == x.shape
    np.testing.assert_array_equal(unique, np.array(distinct, dtype=dtype))
    np.testing.assert_array_equal(remap, [distinct.index(v) for v in values])
    only, = run_op("Unique", {"X": x}, ["U2"])
    np.testing.assert_array_equal(only, unique)


def test_unique_bad_inputs():
    op = core.CreateOperator("Unique", ["X"], ["U"])
    assert_fails_unchanged(op, {"X": np.ones((2, 2), np.int32)}, EnforceError, "vector")
    assert_fails_unchanged(op, {"X": np.ones(3, np.float32)}, EnforceError, "int32 or int64")
    assert registry.get_schema("Unique").gradient == SHOULD_NOT_DO_GRADIENT
