"""RMSNorm and its gradient against the formulas written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


@pytest.mark.parametrize("shape, axis, dtype", [((4, 6), 1, np.float32),
                                                ((2, 3, 4), -1, np.float64),
                                                ((2, 3, 2), 1, np.float32),
                                                ((0, 5), 1, np.float32)])
def test_rms_norm_and_gradients(shape, axis, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    a = axis % len(shape)
    inner = shape[a:]
    gamma = rng.standard_normal(inner).astype(dtype)
    beta = rng.standard_normal(inner).astype(dtype)
    eps = 1e-4

    def ref(x, gamma, beta):
        rows = x.reshape(int(np.prod(shape[:a])), int(np.prod(inner))).astype(np.float64)
        rrms = 1 / np.sqrt((rows ** 2).mean(axis=1) + eps)
        y = rows * rrms[:, None] * gamma.reshape(-1) + beta.reshape(-1)
        return [y.reshape(shape).astype(dtype), rrms.reshape(shape[:a]).astype(dtype)]

    op = core.CreateOperator("RMSNorm", ["x", "gamma", "beta"], ["y", "rrms"], axis=axis,
                             eps=eps)
    check_reference(op, [x, gamma, beta], ref, threshold=1e-5)
    if x.size:
        for i in range(3):
            check_gradient(op, [x, gamma, beta], i, threshold=2e-2)


def test_gradient_layout_and_errors():
    net = core.Net("rms")
    net.RMSNorm(["x", "g", "b"], ["y", "r"], eps=0.1)
    net.AddGradientOperators({"y": "y_grad"})
    grad = net.Proto().op[-1]
    assert list(grad.input) == ["y_grad", "x", "g", "r"]
    assert list(grad.output) == ["x_grad", "g_grad", "b_grad"]
    workspace.FeedBlob("x", np.ones((2, 3), np.float32))
    workspace.FeedBlob("g", np.ones(2, np.float32))
    workspace.FeedBlob("b", np.ones(3, np.float32))
    with pytest.raises(EnforceError, match="expected 3"):
        workspace.RunOperatorOnce(core.CreateOperator("RMSNorm", ["x", "g", "b"], ["y", "r"]))
    workspace.FeedBlob("x1", np.ones(3, np.float32))
    with pytest.raises(EnforceError, match="dim >= 2"):
        workspace.RunOperatorOnce(core.CreateOperator("RMSNorm", ["x1", "b", "b"],
                                                      ["y", "r"]))
