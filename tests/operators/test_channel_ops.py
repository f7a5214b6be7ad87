"""ChannelShuffle, ChannelStats and NormalizePlanarYUV against NumPy written here."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def shuffle_ref(x, groups, order):
    channels = np.moveaxis(x, 1 if order == "NCHW" else -1, 0)
    c = channels.shape[0]
    perm = [g * (c // groups) + k for k in range(c // groups) for g in range(groups)]
    return np.moveaxis(channels[perm], 0, 1 if order == "NCHW" else -1)


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_channel_shuffle(order, groups):
    x = np.random.default_rng(groups).standard_normal((2, 6, 3, 2) if order == "NCHW"
                                                      else (2, 3, 2, 6))
    op = core.CreateOperator("ChannelShuffle", ["X"], ["Y"], group=groups, order=order)
    check_reference(op, [x], lambda x: (shuffle_ref(x, groups, order),))
    check_gradient(op, [x], 0)
    ops, _ = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [("ChannelShuffleGradient", ["Y_grad"])]
    assert_fails_unchanged(core.CreateOperator("ChannelShuffle", ["X"], ["Y"], group=4),
                           [x.astype(np.float32)], EnforceError, "do not split into 4")


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_channel_stats(order):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    op = core.CreateOperator("ChannelStats", ["X"], ["s", "ss"], order=order)
    axes = (0, 2, 3) if order == "NCHW" else (0, 1, 2)
    check_reference(op, [x], lambda x: (x.sum(axis=axes), (x ** 2).sum(axis=axes)))
    assert_inference_matches_run(op, [x])


def test_normalize_planar_yuv():
    rng = np.random.default_rng(2)
    x, mean, std = rng.uniform(0, 255, (2, 3, 4, 4)), rng.uniform(0, 128, (1, 3)), \
        rng.uniform(1, 60, (1, 3))
    op = core.CreateOperator("NormalizePlanarYUV", ["X", "M", "S"], ["Y"])
    check_reference(op, [x, mean, std], lambda x, m, s: (
        (x - m.reshape(1, 3, 1, 1)) / s.reshape(1, 3, 1, 1),))
    assert_fails_unchanged(op, [x, mean[:, :2], std], EnforceError, "must hold 3 values")
