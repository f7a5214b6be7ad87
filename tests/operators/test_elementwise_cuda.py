"""The elementwise/layout ops' xp-generic kernels on CUDA agree with CPU (skipped without
CuPy and a GPU; rehearsed with ``pytest -m cuda --fake-cuda``)."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not workspace.has_cuda_support(), reason="needs CuPy and an NVIDIA GPU"),
]

CUDA = core.DeviceOption(caffe2_pb2.CUDA, 0)
A = np.linspace(0.5, 3.0, 24).astype(np.float32).reshape(2, 3, 4)
B = np.linspace(1.0, 2.0, 4).astype(np.float32)
I = np.array([7, -7, 6, -1], np.int32)
J = np.array([2, 2, -4, 3], np.int32)
M = np.array([True, False, True, False])
CASES = [
    ("Sub", ["a", "b"], ["y"], {"a": A, "b": B}, {}),
    ("Div", ["i", "j"], ["y"], {"i": I, "j": J}, {}),
    ("DivGradient", ["a", "a", "b", "a"], ["da", "db"], {"a": A, "b": B}, {}),
    ("SubGradient", ["a", "a", "b"], ["da", "db"], {"a": A, "b": B}, {}),
    ("LT", ["a", "b"], ["y"], {"a": A, "b": B}, {}),
    ("EQ", ["i", "j"], ["y"], {"i": I, "j": J}, {}),
    ("Xor", ["m", "n"], ["y"], {"m": M, "n": M[::-1].copy()}, {}),
    ("Not", ["m"], ["y"], {"m": M}, {}),
    ("Sqrt", ["a"], ["y"], {"a": A}, {}),
    ("Log", ["a"], ["y"], {"a": A}, {}),
    ("Exp", ["a"], ["y"], {"a": A}, {}),
    ("Abs", ["a"], ["y"], {"a": -A}, {}),
    ("AbsGradient", ["a", "a"], ["y"], {"a": A}, {}),
    ("Negative", ["i"], ["y"], {"i": I}, {}),
    ("Sqr", ["a"], ["y"], {"a": A}, {}),
    ("Transpose", ["a"], ["y"], {"a": A}, dict(axes=[1, 2, 0])),
    ("NCHW2NHWC", ["a"], ["y"], {"a": A}, {}),
    ("NHWC2NCHW", ["a"], ["y"], {"a": A}, {}),
    ("Flatten", ["a"], ["y"], {"a": A}, dict(axis=2)),
    ("FlattenToVec", ["a"], ["y"], {"a": A}, {}),
    ("ResizeLike", ["a", "b"], ["y"], {"a": A[0, 0], "b": B}, {}),
    ("Cast", ["a"], ["y"], {"a": A}, dict(to="INT32")),
    ("Clip", ["a"], ["y"], {"a": A}, {"min": 1.0, "max": 2.0}),
    ("ClipGradient", ["a", "a"], ["y"], {"a": A}, {"min": 1.0, "max": 2.0}),
    ("Shape", ["a"], ["y"], {"a": A}, dict(axes=[2, 0])),
    ("Size", ["a"], ["y"], {"a": A}, {}),
    ("BatchMatMul", ["a", "c"], ["y"], {"a": A, "c": A.transpose(0, 2, 1).copy()}, {}),
    ("BatchMatMul", ["b", "a"], ["y"], {"a": A, "b": B[:3].copy()}, dict(broadcast=1)),
    ("Pow", ["a"], ["y"], {"a": A}, dict(exponent=1.5)),
    ("Pow", ["a", "b"], ["y"], {"a": A, "b": B}, dict(broadcast=1)),
    ("SumReduceLike", ["a", "b3"], ["y"], {"a": A, "b3": B[:3].copy()}, dict(axis=1)),
]


def run_on(device_option, op_type, inputs, outputs, feeds, **kwargs):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value, device_option)
    op = core.CreateOperator(op_type, inputs, outputs, device_option=device_option, **kwargs)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(o) for o in outputs]


@pytest.mark.parametrize("op_type, inputs, outputs, feeds, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_matches_cpu(op_type, inputs, outputs, feeds, kwargs):
    expected = run_on(None, op_type, inputs, outputs, feeds, **kwargs)
    got = run_on(CUDA, op_type, inputs, outputs, feeds, **kwargs)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-6)
