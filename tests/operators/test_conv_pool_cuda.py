"""Conv, ConvTranspose and pooling (and gradients) on CUDA agree with the CPU.

The kernels are one xp-generic body (strided views, pad, matmul); these tests run
them through CuPy on a GPU and skip elsewhere (``pytest -m cuda --fake-cuda``
rehearses them against tests/fake_cupy.py).  Sums of products are compared within
1e-4: cuBLAS and OpenBLAS add in different orders.
"""

import numpy as np
import pytest
from device_utils import requires_cuda, run_on

from caffe2lite import core
from caffe2lite.testing import run_op

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
W = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
B = rng.standard_normal(6).astype(np.float32)
WT = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
DY = rng.standard_normal((2, 6, 4, 3)).astype(np.float32)

CASES = [
    ("Conv", {"X": X, "W": W, "b": B}, ["Y"], dict(kernel=3, pad=1, stride=2, group=2)),
    ("Conv", {"X": X, "W": W[:, :, :1, :1].repeat(2, axis=1).copy()}, ["Y"], dict(kernel=1)),
    ("ConvGradient", {"X": X, "W": W, "dY": DY}, ["dW", "db", "dX"],
     dict(kernel=3, pad=1, stride=2, group=2)),
    ("ConvTranspose", {"X": X, "W": WT}, ["Y"], dict(kernel=3, stride=2, pad=1, adj=1)),
    ("MaxPool", {"X": X}, ["Y"], dict(kernel=3, stride=2, pad=1)),
    ("AveragePool", {"X": X}, ["Y"], dict(kernel=3, stride=2, legacy_pad=3)),
    ("AveragePool", {"X": X}, ["Y"], dict(global_pooling=1)),
    ("MaxPool", {"X": X}, ["Y"], dict(kernel=2, order="NHWC")),
    ("LpPool", {"X": X}, ["Y"], dict(kernel=2, stride=2, p=3.0)),
]


def assert_agree(op, feeds, outputs):
    cpu, cpu_error = run_on(op, feeds, "CPU", outputs)
    gpu, gpu_error = run_on(op, feeds, "CUDA", outputs)
    assert cpu_error is None and gpu_error is None, (cpu_error, gpu_error)
    for name in outputs:
        assert gpu[name].shape == cpu[name].shape and gpu[name].dtype == cpu[name].dtype
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-4, atol=1e-4, err_msg=name)


@requires_cuda
@pytest.mark.parametrize("op_type,feeds,outputs,args", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_matches_cpu(op_type, feeds, outputs, args):
    assert_agree(core.CreateOperator(op_type, list(feeds), outputs, **args), feeds, outputs)


@requires_cuda
@pytest.mark.parametrize("op_type", ["MaxPoolGradient", "AveragePoolGradient",
                                     "LpPoolGradient"])
def test_cuda_pool_gradients_match_cpu(op_type):
    args = dict(kernel=3, stride=2, pad=1)
    forward = core.CreateOperator(op_type[:-len("Gradient")], ["X"], ["Y"], **args)
    (Y,) = run_op(forward, [X])
    op = core.CreateOperator(op_type, ["X", "Y", "dY"], ["dX"], **args)
    assert_agree(op, {"X": X, "Y": Y, "dY": np.ones_like(Y)}, ["dX"])
