"""This branch's xp-generic kernels on CUDA agree with CPU (skipped without CuPy and a
GPU; rehearsed on tests/fake_cupy.py with --fake-cuda)."""

import numpy as np
import pytest
from device_utils import CUDA_MARKS, assert_devices_agree

from caffe2lite import core

pytestmark = CUDA_MARKS

RNG = np.random.default_rng(0)
IMG = RNG.random((2, 3, 5, 4)).astype(np.float32)
ROWS = RNG.standard_normal((6, 4)).astype(np.float32)
CASES = [
    ("LC2D", ["x", "w", "b"], ["y"],
     {"x": IMG, "w": RNG.random((4, 3, 2, 3, 2, 2)).astype(np.float32),
      "b": RNG.random((4, 3, 2)).astype(np.float32)}, dict(kernels=[2, 2])),
    ("LC1DGradient", ["x", "w", "dy"], ["dw", "db", "dx"],
     {"x": IMG[:, :, 0], "w": RNG.random((3, 2, 3, 2)).astype(np.float32),
      "dy": RNG.random((2, 2, 3)).astype(np.float32)}, dict(kernels=[2])),
    ("UpsampleBilinear", ["x"], ["y"], {"x": IMG}, dict(height_scale=2.0, width_scale=1.5)),
    ("UpsampleBilinearGradient", ["dy", "x"], ["dx"],
     {"dy": RNG.random((2, 3, 10, 6)).astype(np.float32), "x": IMG}, {}),
    ("IntegralImage", ["x"], ["y"], {"x": IMG}, {}),
    ("IntegralImageGradient", ["x", "dy"], ["dx"],
     {"x": IMG, "dy": RNG.random((2, 3, 6, 5)).astype(np.float32)}, {}),
    ("Glu", ["x"], ["y"], {"x": ROWS}, {}),
    ("RMSNorm", ["x", "g", "b"], ["y", "r"],
     {"x": ROWS, "g": ROWS[0].copy(), "b": ROWS[1].copy()}, dict(eps=1e-3)),
    ("BernoulliJSD", ["p", "t"], ["l"], {"p": IMG[0, 0], "t": IMG[0, 1]}, {}),
    ("SquareRootDivide", ["x", "s"], ["y"],
     {"x": ROWS, "s": np.array([4, 0, 9, 1, 2, 3], np.int64)}, {}),
    ("Conditional", ["c", "t", "f"], ["y"],
     {"c": np.array([True, False] * 3), "t": ROWS, "f": -ROWS}, {}),
    ("ScaleBlobs", ["x", "x2"], ["y", "y2"], {"x": ROWS, "x2": IMG}, dict(scale=0.5)),
    ("EnsureClipped", ["x", "i", "g"], ["x"],
     {"x": ROWS, "i": np.array([4, 1], np.int64), "g": ROWS[:2].copy()}, dict(min=0.0)),
    ("SparseLpRegularizer", ["x", "i"], ["x"],
     {"x": ROWS, "i": np.array([4, 1, 4], np.int64)}, dict(p=1.0, reg_lambda=0.1)),
]


@pytest.mark.parametrize("op_type, inputs, outputs, feeds, kwargs", CASES,
                         ids=[c[0] for c in CASES])
def test_cuda_matches_cpu(op_type, inputs, outputs, feeds, kwargs):
    assert_devices_agree(core.CreateOperator(op_type, inputs, outputs, **kwargs), feeds)
