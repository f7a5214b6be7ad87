"""UniqueUniformFill: distinct values in [min, max], none avoided, uniformly drawn."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, EnforceError
from caffe2lite.proto.caffe2_pb2 import TensorProto


@pytest.mark.parametrize("dtype, code, low, high, count", [
    (np.int32, TensorProto.INT32, 1, 60, 50),           # dense: the shuffled complement
    (np.int64, TensorProto.INT64, 1, 60, 50),
    (np.int32, TensorProto.INT32, -2 ** 31, 2 ** 31 - 1, 300),  # sparse: rejection
    (np.int64, TensorProto.INT64, 5, 10 ** 12, 300)])
def test_distinct_in_range_and_not_avoided(dtype, code, low, high, count):
    avoid = np.arange(low, low + 8, dtype=dtype)
    workspace.FeedBlob("shape", np.array([count], np.int64))
    workspace.FeedBlob("avoid", avoid)
    workspace.RunOperatorOnce(core.CreateOperator(
        "UniqueUniformFill", ["shape", "avoid"], ["y"], min=low, max=high,
        input_as_shape=True, dtype=code))
    y = workspace.FetchBlob("y")
    assert y.dtype == dtype and y.shape == (count,)
    assert len(set(y.tolist())) == count and not set(y.tolist()) & set(avoid.tolist())
    assert y.min() >= low and y.max() <= high


def test_every_value_is_equally_likely():
    counts = np.zeros(10)
    for seed in range(200):
        y = _fill(min=0, max=9, shape=[3], seed=seed)
        counts[y] += 1
    expected = 200 * 3 / 10
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_shape_argument_and_errors():
    y = _fill(min=0, max=99, shape=[4, 5])
    assert y.shape == (4, 5) and len(set(y.reshape(-1).tolist())) == 20
    with pytest.raises(EnforceError, match="distinct values"):
        _fill(min=0, max=9, shape=[11])
    with pytest.raises(ArgumentError, match="required"):
        _fill(max=9, shape=[2])
    with pytest.raises(ArgumentError, match="INT32"):
        _fill(min=0, max=9, shape=[2], dtype=TensorProto.FLOAT)


def _fill(seed=None, **args):
    option = None
    if seed is not None:
        from caffe2lite.proto import caffe2_pb2
        option = caffe2_pb2.DeviceOption(random_seed=seed)
    workspace.RunOperatorOnce(core.CreateOperator("UniqueUniformFill", [], ["u"],
                                                  device_option=option, **args))
    return workspace.FetchBlob("u")
