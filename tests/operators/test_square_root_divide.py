"""SquareRootDivide against DATA[i] / sqrt(SCALE[i]) written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


@pytest.mark.parametrize("scale_dtype", [np.float32, np.int32, np.int64])
def test_square_root_divide(scale_dtype):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((4, 2, 3)).astype(np.float32)
    scale = np.array([4, 0, 9, 2], scale_dtype)

    def ref(data, scale):
        factor = np.where(scale == 0, 1.0, 1 / np.sqrt(np.maximum(scale, 1e-30)))
        return [(data * factor[:, None, None]).astype(np.float32)]

    op = core.CreateOperator("SquareRootDivide", ["data", "scale"], ["out"])
    check_reference(op, [data, scale], ref, threshold=1e-6)
    check_gradient(op, [data, scale], 0, threshold=1e-2)
    inplace = core.CreateOperator("SquareRootDivide", ["data", "scale"], ["data"])
    check_reference(inplace, [data, scale], ref, threshold=1e-6)


def test_negative_scale_is_an_error():
    workspace.FeedBlob("data", np.ones((2, 2), np.float32))
    workspace.FeedBlob("scale", np.array([1.0, -1.0], np.float32))
    with pytest.raises(EnforceError, match="element 1 is -1.0 < 0"):
        workspace.RunOperatorOnce(core.CreateOperator("SquareRootDivide", ["data", "scale"],
                                                      ["out"]))
