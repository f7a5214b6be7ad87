"""ReplaceNaN against numpy.where(isnan) written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference
from helpers import assert_unchanged, snapshot


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, -3.5])
def test_every_nan_becomes_value(dtype, value):
    X = np.array([[1.0, np.nan], [np.inf, -np.nan]], dtype)
    op = core.CreateOperator("ReplaceNaN", ["X"], ["Y"], value=value)
    (Y,) = check_reference(op, [X], lambda x: (np.where(x != x, value, x),), threshold=0)
    assert Y.dtype == dtype


def test_in_place_and_integer_input():
    workspace.FeedBlob("X", np.array([np.nan, 2.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("ReplaceNaN", ["X"], ["X"], value=7.0))
    np.testing.assert_array_equal(workspace.FetchBlob("X"), [7.0, 2.0])
    workspace.FeedBlob("I", np.array([1, 2], np.int32))
    before = snapshot()
    with pytest.raises(EnforceError, match="blob .I.* float32 and float64"):
        workspace.RunOperatorOnce(core.CreateOperator("ReplaceNaN", ["I"], ["Y"]))
    assert_unchanged(before)
