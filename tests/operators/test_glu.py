"""Glu against X1 * sigmoid(X2) written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


@pytest.mark.parametrize("shape, dim", [((3, 4), -1), ((2, 6, 3), 1), ((4,), 0),
                                        ((2, 2, 2), 0)])
def test_glu(shape, dim):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 30).astype(np.float32)
    axis = len(shape) - 1 if dim == -1 else dim

    def ref(x):
        a, b = np.split(x.astype(np.float64), 2, axis=axis)
        return [(a / (1 + np.exp(-b))).astype(np.float32)]

    out = check_reference(core.CreateOperator("Glu", ["x"], ["y"], dim=dim), [x], ref,
                          threshold=1e-6)
    assert np.isfinite(out[0]).all()  # large |x| neither overflows nor NaNs


@pytest.mark.parametrize("x, dim, match", [(np.zeros((3, 3), np.float32), -1, "divided by two"),
                                           (np.zeros((2, 2), np.float32), 2, "out of range"),
                                           (np.zeros((2, 2)), -1, "float32")])
def test_glu_errors(x, dim, match):
    workspace.FeedBlob("x", x)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("Glu", ["x"], ["y"], dim=dim))
