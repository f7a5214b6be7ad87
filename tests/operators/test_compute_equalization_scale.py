"""ComputeEqualizationScale against Caffe2's column loop written out here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


def _loops(x, w):
    s = np.ones(w.shape[1], np.float32)
    for j in range(w.shape[1]):
        w_max = max(abs(float(v)) for v in w[:, j])
        x_max = max(abs(float(v)) for v in x[:, j])
        if w_max and x_max:
            s[j] = np.sqrt(w_max / x_max)
    return [s, 1 / s]


@pytest.mark.parametrize("outputs", [["s"], ["s", "s_inv"]])
def test_matches_the_column_loop(outputs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32) * 3
    x[:, 1] = 0  # a zero column: scale 1
    w[:, 2] = 0
    s_and_inv = check_reference(core.CreateOperator("ComputeEqualizationScale", ["x", "w"],
                                                    outputs), [x, w],
                                lambda x, w: _loops(x, w)[:len(outputs)], threshold=1e-6)
    assert s_and_inv[0][1] == 1 and s_and_inv[0][2] == 1
    # the point of the scales: X * S and W * S_INV keep X @ W.T
    s = s_and_inv[0]
    np.testing.assert_allclose((x * s) @ (w / s).T, x @ w.T, rtol=1e-5, atol=1e-5)


def test_columns_must_agree():
    workspace.FeedBlob("x", np.ones((2, 3), np.float32))
    workspace.FeedBlob("w", np.ones((2, 4), np.float32))
    with pytest.raises(EnforceError, match="input 0 .*\\(M, 4\\) matrix"):
        workspace.RunOperatorOnce(core.CreateOperator("ComputeEqualizationScale", ["x", "w"],
                                                      ["s", "i"]))
    assert not workspace.HasBlob("s")
