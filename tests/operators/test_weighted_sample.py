"""WeightedSample / WeightedMultiSampling: draws follow the weights."""

import numpy as np
from _train_helpers import assert_fails_unchanged

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op


def test_one_hot_weights_pick_their_index():
    weights = np.zeros((4, 5), np.float32)
    weights[np.arange(4), [3, 0, 4, 2]] = 1.0
    values = np.arange(20, dtype=np.float32).reshape(4, 5)
    index, picked = run_op("WeightedSample", {"w": weights, "v": values}, ["i", "p"])
    np.testing.assert_array_equal(index, [3, 0, 4, 2])
    np.testing.assert_array_equal(picked, values[np.arange(4), [3, 0, 4, 2]])
    assert index.dtype == np.int32
    (empty,) = run_op("WeightedSample", {"w": np.zeros((3, 0), np.float32)}, "i")
    assert empty.shape == (0,)


def test_multi_sampling_frequencies_follow_weights():
    weights = np.array([1.0, 0.0, 3.0], np.float32)
    (draws,) = run_op("WeightedMultiSampling", {"w": weights}, "i", num_samples=4000)
    counts = np.bincount(draws, minlength=3) / 4000
    assert counts[1] == 0 and abs(counts[2] - 0.75) < 0.04
    (shaped,) = run_op("WeightedMultiSampling", {"w": weights, "s": np.zeros((2, 3))}, "i")
    assert shaped.shape == (2, 3) and set(shaped.ravel()) <= {0, 2}
    assert_fails_unchanged(core.CreateOperator("WeightedMultiSampling", ["w"], ["i"],
                                               num_samples=2),
                           {"w": np.array([1.0, -1.0], np.float32)}, EnforceError, "negative")
