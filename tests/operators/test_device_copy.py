"""CopyCPUToGPU, CopyGPUToCPU, CopyFromCPUInput, EnsureCPUOutput (operators/device_copy.py).

The CUDA side runs on NumPy posing as CuPy (tests/fake_cupy.py) everywhere,
and on real CuPy in the ``cuda``-marked variant on a GPU machine.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from device_utils import CUDA_REASON, device_option
from fake_cupy import make_fake_cupy

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import devices, registry

CUDA0 = device_option("CUDA", 0)
X = np.arange(-3, 9, dtype=np.float32).reshape(3, 4) / 4


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.cuda)])
def gpu(request, monkeypatch):
    monkeypatch.setattr(devices, "_contexts", {})
    if request.param == "fake":
        fake = make_fake_cupy(device_count=1)
        monkeypatch.setitem(sys.modules, "cupy", fake)
        return fake
    if CUDA_REASON is not None:
        pytest.skip(f"CUDA: {CUDA_REASON}")
    import cupy

    return cupy


def _held(name):
    return workspace.current().blob_dict.get(name)


def _run(op_type, x_on_gpu, device=CUDA0, x=X):
    workspace.FeedBlob("x", x, CUDA0 if x_on_gpu else None)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, ["x"], ["y"], device_option=device))
    return _held("y")


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.bool_])
def test_cpu_to_gpu_and_back(gpu, dtype):
    x = (X * 4).astype(dtype)
    y = _run("CopyCPUToGPU", False, x=x)
    assert isinstance(y, gpu.ndarray) and y.device.id == 0 and y.dtype == dtype
    workspace.RunOperatorOnce(core.CreateOperator("CopyGPUToCPU", ["y"], ["z"],
                                                  device_option=CUDA0))
    z = _held("z")
    assert type(z) is np.ndarray
    np.testing.assert_array_equal(z, x)
    z[0, 0] = 1  # a copy: the GPU blob is untouched
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x)


def test_copy_from_cpu_input_on_both_devices(gpu):
    y = _run("CopyFromCPUInput", False)
    assert isinstance(y, gpu.ndarray)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), X)
    y = _run("CopyFromCPUInput", False, device=None)
    assert type(y) is np.ndarray and y is not _held("x")
    np.testing.assert_array_equal(y, X)


@pytest.mark.parametrize("x_on_gpu", [True, False])
def test_ensure_cpu_output_on_cuda_takes_either(gpu, x_on_gpu):
    y = _run("EnsureCPUOutput", x_on_gpu)
    assert type(y) is np.ndarray and y is not _held("x")
    np.testing.assert_array_equal(y, X)


def test_ensure_cpu_output_on_cpu(gpu):
    y = _run("EnsureCPUOutput", False, device=None)
    assert type(y) is np.ndarray and y is not _held("x")
    np.testing.assert_array_equal(y, X)
    with pytest.raises(EnforceError, match=r"'x'.*must be a CPU \(NumPy\) tensor, got CUDA:0"):
        _run("EnsureCPUOutput", True, device=None)


@pytest.mark.parametrize("op_type, x_on_gpu, expected", [
    ("CopyCPUToGPU", True, r"must be a CPU \(NumPy\) tensor, got CUDA:0 array"),
    ("CopyGPUToCPU", False, r"must be a GPU \(CuPy\) tensor, got CPU array"),
    ("CopyFromCPUInput", True, r"must be a CPU \(NumPy\) tensor, got CUDA:0 array"),
])
def test_source_on_the_wrong_device(gpu, op_type, x_on_gpu, expected):
    with pytest.raises(EnforceError, match=rf"op {op_type}: input 0 \('x'\) {expected}"):
        _run(op_type, x_on_gpu)
    assert _held("y") is None
    np.testing.assert_array_equal(workspace.FetchBlob("x"), X)


@pytest.mark.parametrize("op_type", ["CopyCPUToGPU", "CopyGPUToCPU"])
def test_gpu_copies_on_a_cpu_device_option_are_host_copies(op_type):
    """Caffe2 had no CPU kernel here; caffe2lite copies on the host, so a GPU net
    switched to the CPU runs without a GPU."""
    y = _run(op_type, False, device=None)
    assert type(y) is np.ndarray and y is not _held("x")
    np.testing.assert_array_equal(y, X)


def test_gpu_to_cpu_on_cpu_accepts_a_gpu_input(gpu):
    y = _run("CopyGPUToCPU", True, device=None)
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, X)


def test_cpu_to_gpu_on_cpu_refuses_a_gpu_input(gpu):
    with pytest.raises(EnforceError, match=r"must be a CPU \(NumPy\) tensor, got CUDA:0"):
        _run("CopyCPUToGPU", True, device=None)


def test_copies_in_a_net(gpu):
    """The usual Caffe2 pattern: upload, compute on the GPU, download."""
    workspace.FeedBlob("x", X)
    net = core.Net("round_trip")
    net.CopyCPUToGPU("x", "x_gpu", device_option=CUDA0)
    net.Relu("x_gpu", "y_gpu", device_option=CUDA0)
    net.CopyGPUToCPU("y_gpu", "y", device_option=CUDA0)
    net.Relu("y", "z")
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    assert type(_held("y")) is np.ndarray and isinstance(_held("y_gpu"), gpu.ndarray)
    np.testing.assert_array_equal(_held("z"), np.maximum(X, 0))


def _grad(op_type, g_output):
    op = core.CreateOperator(op_type, ["x"], ["y"], device_option=CUDA0)
    return registry.get_schema(op_type).gradient(op, g_output)


@pytest.mark.parametrize("op_type, grad_type", [("CopyCPUToGPU", "CopyGPUToCPU"),
                                                 ("CopyGPUToCPU", "CopyCPUToGPU")])
def test_gradients_copy_back(op_type, grad_type):
    ops, g_input = _grad(op_type, ["y_grad"])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [(grad_type, ["y_grad"], ["x_grad"])]
    assert g_input == ["x_grad"]
    ops, g_input = _grad(op_type, [core.GradientSlice("y_gi", "y_gv")])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [(grad_type, ["y_gi"], ["x_grad_indices"]), (grad_type, ["y_gv"], ["x_grad_values"])]
    assert g_input == [core.GradientSlice("x_grad_indices", "x_grad_values")]


def test_gradient_declarations():
    assert registry.get_schema("EnsureCPUOutput").gradient == "NO_GRADIENT"
    assert registry.get_schema("CopyFromCPUInput").gradient is None  # Caffe2 registers none
    for op_type in ("CopyCPUToGPU", "CopyGPUToCPU", "CopyFromCPUInput", "EnsureCPUOutput"):
        assert registry.get_schema(op_type).inputs_can_cross_devices


def test_device_inference():
    op = core.CreateOperator("CopyCPUToGPU", ["x"], ["y"], device_option=CUDA0)
    ins, outs = devices.blob_devices(op, registry.get_schema("CopyCPUToGPU"))
    assert ins == [(caffe2_pb2.CPU, 0)] and outs == [(caffe2_pb2.CUDA, 0)]
    op = core.CreateOperator("EnsureCPUOutput", ["x"], ["y"], device_option=CUDA0)
    ins, outs = devices.blob_devices(op, registry.get_schema("EnsureCPUOutput"))
    assert ins == [(caffe2_pb2.CUDA, 0)] and outs == [(caffe2_pb2.CPU, 0)]
