"""The shared 'a failed op left every blob as it was' check catches each kind of change."""

import numpy as np
import pytest

from caffe2lite import workspace
from helpers import assert_unchanged, snapshot


@pytest.mark.parametrize("change", [
    lambda: workspace.FeedBlob("x", np.array([0.0, 2.0], np.float32)),       # a value
    lambda: workspace.FeedBlob("x", np.array([-0.0, 1.0], np.float32)),      # only the bits
    lambda: workspace.FeedBlob("x", np.array([0.0, 1.0], np.float64)),       # the dtype
    lambda: workspace.FeedBlob("x", np.array([[0.0, 1.0]], np.float32)),     # the shape
    lambda: workspace.FeedBlob("new", np.zeros(1, np.float32)),              # a blob added
    lambda: workspace.FeedBlob("s", "other"),                                 # a string blob
])
def test_assert_unchanged_catches(change):
    workspace.FeedBlob("x", np.array([0.0, 1.0], np.float32))
    workspace.FeedBlob("s", "text")
    before = snapshot()
    assert_unchanged(before)
    change()
    with pytest.raises(AssertionError):
        assert_unchanged(before)
