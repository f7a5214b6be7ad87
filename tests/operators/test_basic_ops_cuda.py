"""The basic ops' xp-generic kernels on CUDA agree with CPU (skipped without CuPy and a GPU)."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not workspace.has_cuda_support(), reason="needs CuPy and an NVIDIA GPU"),
]

CUDA = core.DeviceOption(caffe2_pb2.CUDA, 0)


def run_on(device_option, op_type, inputs, outputs, feeds, **kwargs):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value, device_option)
    op = core.CreateOperator(op_type, inputs, outputs, device_option=device_option, **kwargs)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(o) for o in outputs]


A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
B = np.linspace(-1, 1, 4).astype(np.float32)
CASES = [
    ("ConstantFill", [], ["y"], {}, dict(shape=[2, 3], value=1.5)),
    ("ConstantFill", ["s"], ["y"], {"s": np.array([3, 2], np.int64)},
     dict(input_as_shape=1, value=2, dtype=caffe2_pb2.TensorProto.INT32)),
    ("GivenTensorFill", [], ["y"], {}, dict(shape=[2, 2], values=[1.0, 2.0, 3.0, 4.0])),
    ("GivenTensorInt64Fill", [], ["y"], {}, dict(shape=[3], values=[1, 2, 3])),
    ("GivenTensorByteStringToUInt8Fill", [], ["y"], {}, dict(shape=[2], values=[b"\x01\xff"])),
    ("RangeFill", [], ["y"], {}, dict(shape=[2, 5])),
    ("Copy", ["a"], ["y"], {"a": A}, {}),
    ("Alias", ["a"], ["y"], {"a": A}, {}),
    ("Sum", ["a", "a2"], ["y"], {"a": A, "a2": A * 2}, {}),
    ("Scale", ["a"], ["y"], {"a": A}, dict(scale=0.5)),
    ("Add", ["a", "b"], ["y"], {"a": A, "b": B}, {}),
    ("Mul", ["a", "b3"], ["y"], {"a": A, "b3": B[:3].copy()}, dict(broadcast=1, axis=1)),
    ("MulGradient", ["a", "a", "b"], ["da", "db"], {"a": A, "b": B}, {}),
    ("AddGradient", ["a", "a", "b3"], ["da", "db"], {"a": A, "b3": B[:3].copy()},
     dict(broadcast=1, axis=1)),
]


@pytest.mark.parametrize("op_type, inputs, outputs, feeds, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_matches_cpu(op_type, inputs, outputs, feeds, kwargs):
    expected = run_on(None, op_type, inputs, outputs, feeds, **kwargs)
    got = run_on(CUDA, op_type, inputs, outputs, feeds, **kwargs)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-6)


@pytest.mark.parametrize("op_type, kwargs, low, high", [
    ("UniformFill", dict(min=-1.0, max=2.0), -1.0, 2.0),
    ("UniformIntFill", dict(min=0, max=3), 0, 3),
    ("GaussianFill", dict(mean=0.0, std=1.0), None, None),
    ("XavierFill", {}, -np.sqrt(3 / 20), np.sqrt(3 / 20)),
    ("MSRAFill", {}, None, None),
])
def test_cuda_random_fills_are_seeded_and_in_range(op_type, kwargs, low, high):
    option = core.DeviceOption(caffe2_pb2.CUDA, 0, random_seed=5)
    (a,) = run_on(option, op_type, [], ["y"], {}, shape=[10, 20], **kwargs)
    (b,) = run_on(option, op_type, [], ["y"], {}, shape=[10, 20], **kwargs)
    assert a.shape == (10, 20)
    np.testing.assert_array_equal(a, b)
    if low is not None:
        assert low <= a.min() and a.max() <= high
