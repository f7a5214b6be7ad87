"""SigmoidCrossEntropyWithLogits against the textbook formula written here in float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)          # log(1 / (1 + exp(-x))), stable


def reference(log_D_trick=False, unjoined_lr_loss=False):
    def ref(x, t):
        x, t = x.astype(np.float64), t.astype(np.float64)
        if unjoined_lr_loss:
            # positives count as log-odds t * x, negatives as log(1 - sigmoid(x))
            terms = t * x + (1 - t) * log_sigmoid(-x)
        elif log_D_trick:
            terms = (2 * t - 1) * log_sigmoid(x)
        else:
            terms = t * log_sigmoid(x) + (1 - t) * log_sigmoid(-x)
        loss = -terms.mean(axis=-1) if x.ndim else -terms
        return (loss,)
    return ref


@settings(max_examples=20)
@given(shape=st.sampled_from([(4, 3), (2, 3, 5), (7,), (1, 1), (0, 3), ()]),
       mode=st.sampled_from([{}, {"log_D_trick": True}, {"unjoined_lr_loss": True}]),
       scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 2**16))
def test_matches_reference(shape, mode, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    t = rng.random(shape).astype(np.float32)
    op = core.CreateOperator("SigmoidCrossEntropyWithLogits", ["x", "t"], ["loss"], **mode)
    (loss,) = check_reference(op, [x, t], reference(**mode), threshold=1e-5)
    assert loss.shape == shape[:-1] and loss.dtype == np.float32
    if x.ndim:
        check_gradient(op, [x.astype(np.float64), t.astype(np.float64)], 0, threshold=1e-4)


def test_large_logits_stay_finite():
    x = np.array([[-200.0, 200.0, 0.0]], np.float32)
    t = np.array([[0.0, 1.0, 1.0]], np.float32)
    op = core.CreateOperator("SigmoidCrossEntropyWithLogits", ["x", "t"], ["loss"])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        check_reference(op, [x, t], lambda x, t: (np.array([np.log(2.0) / 3]),), threshold=1e-6)


@pytest.mark.parametrize("mode", [{}, {"log_D_trick": True}, {"unjoined_lr_loss": True}])
def test_gradient_by_finite_differences(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)) * 2
    t = (rng.random((3, 4)) > 0.5).astype(np.float64)
    op = core.CreateOperator("SigmoidCrossEntropyWithLogits", ["x", "t"], ["loss"], **mode)
    check_gradient(op, [x, t], 0)
    _, g_input = core.GradientRegistry.GetGradientForOp(op, ["loss_grad"])
    assert g_input == ["x_grad", None]      # targets get no gradient


@pytest.mark.parametrize("x, t, kwargs, message", [
    (np.ones((2, 3)), np.ones((2, 2)), {}, r"input 0 'logits' \(blob '.*'\) has shape \(2, 3\) and input 1 'targets'"),
    (np.ones((2, 3)), np.ones((2, 3), np.int32), {}, r"input 1 'targets' \(blob '.*'\) must be a float tensor"),
    (np.ones((2, 3)), np.ones((2, 3)), {"log_D_trick": True, "unjoined_lr_loss": True},
     "cannot both be set"),
])
def test_bad_input(x, t, kwargs, message):
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("t", t)
    workspace.FeedBlob("loss", np.array([3.0]))
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SigmoidCrossEntropyWithLogits", ["x", "t"], ["loss"], **kwargs))
    np.testing.assert_array_equal(workspace.FetchBlob("loss"), [3.0])
