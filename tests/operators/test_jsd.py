"""BernoulliJSD and its gradient against the entropy formulas written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def entropy(p):
    p = p.astype(np.float64)
    with np.errstate(all="ignore"):
        h = -p * np.log(p) - (1 - p) * np.log(1 - p)
    return np.where((p < 1e-20) | (1 - p < 1e-20), 0.0, h)


def test_bernoulli_jsd_and_gradient():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, (3, 4)).astype(np.float32)
    t = rng.uniform(0.05, 0.95, (3, 4)).astype(np.float32)
    t[0, 0], p[0, 1] = 0.0, 1.0  # the zero-entropy ends
    op = core.CreateOperator("BernoulliJSD", ["p", "t"], ["l"])
    check_reference(op, [p, t], lambda p, t: [
        (entropy((p + t) / 2) - (entropy(p) + entropy(t)) / 2).reshape(-1)], threshold=1e-5)
    p[0, 1] = 0.5  # away from the clamp, for finite differences
    check_gradient(op, [p, t], 0, threshold=1e-2, stepsize=1e-3)


def test_gradient_op_layout_and_errors():
    net = core.Net("jsd")
    net.BernoulliJSD(["p", "t"], ["l"])
    net.AddGradientOperators({"l": "l_grad"})
    grad = net.Proto().op[-1]
    assert (grad.type, list(grad.input), list(grad.output)) == (
        "BernoulliJSDGradient", ["l_grad", "p", "t"], ["p_grad"])
    workspace.FeedBlob("p", np.zeros(3, np.float32))
    workspace.FeedBlob("t", np.zeros(4, np.float32))
    with pytest.raises(EnforceError, match="expected 3"):
        workspace.RunOperatorOnce(core.CreateOperator("BernoulliJSD", ["p", "t"], ["l"]))
