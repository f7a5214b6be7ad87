"""The device model: lazy CuPy, clear errors without it, placement checks, GPU fallback.

Most tests run the CUDA code path against ``tests/fake_cupy.py`` (NumPy
posing as CuPy) so they run on every machine; the ``real`` variant of the
``gpu`` fixture runs the same tests with CuPy on a GPU, and skips with the
reason elsewhere.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from device_utils import (CUDA_REASON, DEVICES, assert_close, assert_devices_agree, device_option,
                          run_on)
from fake_cupy import make_fake_cupy

from caffe2lite import core, workspace
from caffe2lite.errors import DeviceUnavailable, EnforceError, OperatorNotRegistered
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import OpSchema, devices, registry

ROOT = Path(__file__).resolve().parents[1]
CUDA0 = device_option("CUDA", 0)


@pytest.fixture
def fresh_devices(monkeypatch):
    """No cached device contexts, before and after (a fake CuPy must not leak)."""
    monkeypatch.setattr(devices, "_contexts", {})


def _install_fake(monkeypatch, **kwargs):
    fake = make_fake_cupy(**kwargs)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return fake


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.cuda)])
def gpu(request, monkeypatch, fresh_devices):
    """The CuPy module the CUDA device uses: NumPy posing as two GPUs, or the real one."""
    if request.param == "fake":
        return _install_fake(monkeypatch, device_count=2)
    if CUDA_REASON is not None:
        pytest.skip(f"CUDA: {CUDA_REASON}")
    import cupy

    return cupy


def _gpu_count(cp):
    return cp.cuda.runtime.getDeviceCount()


# -- without CuPy or a GPU ---------------------------------------------------
def test_import_and_cpu_run_never_import_cupy():
    code = ("import sys, numpy as np\n"
            "from caffe2lite import core, workspace\n"
            "workspace.FeedBlob('x', np.array([-1.0, 2.0], np.float32))\n"
            "workspace.RunOperatorOnce(core.CreateOperator('Relu', ['x'], ['y']))\n"
            "assert list(workspace.FetchBlob('y')) == [0.0, 2.0]\n"
            "assert 'cupy' not in sys.modules, 'cupy imported by CPU work'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_cupy_gives_device_unavailable_naming_reason(monkeypatch, fresh_devices):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    workspace.FeedBlob("x", np.ones(3, np.float32))
    op = core.CreateOperator("Relu", ["x"], ["y"], device_option=CUDA0)
    with pytest.raises(DeviceUnavailable, match=r"op Relu.*CuPy is not installed.*\[cuda\]"):
        workspace.RunOperatorOnce(op)
    with pytest.raises(DeviceUnavailable, match="CuPy is not installed"):
        workspace.FeedBlob("z", np.ones(2, np.float32), CUDA0)
    assert workspace.Blobs() == ["x"]
    np.testing.assert_array_equal(workspace.FetchBlob("x"), np.ones(3, np.float32))
    assert workspace.NumCudaDevices() == 0


def test_zero_devices_and_broken_driver(monkeypatch, fresh_devices):
    workspace.FeedBlob("x", np.ones(3, np.float32))
    op = core.CreateOperator("Relu", ["x"], ["y"], device_option=CUDA0)
    _install_fake(monkeypatch, device_count=0)
    with pytest.raises(DeviceUnavailable, match="no GPU is present.*0 devices"):
        workspace.RunOperatorOnce(op)
    _install_fake(monkeypatch, count_error=RuntimeError("cudaErrorInsufficientDriver"))
    with pytest.raises(DeviceUnavailable, match="no usable GPU.*cudaErrorInsufficientDriver"):
        workspace.RunOperatorOnce(op)
    assert not workspace.HasBlob("y")


def test_context_basics(gpu):
    ctx = devices.context_for(CUDA0)
    assert ctx is devices.context_for(CUDA0)  # one context per GPU
    assert ctx.name == "CUDA" and ctx.device_id == 0 and ctx.xp is gpu
    assert ctx.is_available() and repr(ctx) == "DeviceContext(CUDA:0)"
    x = ctx.copy_to_device(np.arange(3, dtype=np.float32))
    assert ctx.is_device_array(x) and ctx.to_device(x) is x
    ctx.synchronize()
    np.testing.assert_array_equal(ctx.to_host(x), [0, 1, 2])
    draws = [ctx.rng(7).standard_normal(4) for _ in range(2)]
    assert ctx.is_device_array(draws[0])
    np.testing.assert_array_equal(gpu.asnumpy(draws[0]), gpu.asnumpy(draws[1]))


def test_device_id_out_of_range(gpu):
    n = _gpu_count(gpu)
    workspace.FeedBlob("x", np.ones(3, np.float32))
    op = core.CreateOperator("Relu", ["x"], ["y"], device_option=device_option("CUDA", n))
    with pytest.raises(DeviceUnavailable, match=rf"CUDA device {n} requested but only {n}"):
        workspace.RunOperatorOnce(op)


def test_unsupported_device_type():
    opt = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.PROTO_OPENCL)
    with pytest.raises(DeviceUnavailable, match="not supported by caffe2lite"):
        workspace.FeedBlob("x", np.ones(2, np.float32), opt)


# -- feeding, fetching, running on the GPU -----------------------------------
def test_feed_fetch_round_trip(gpu):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    assert workspace.FeedBlob("x", x, CUDA0) is True
    held = workspace.current().blob_dict["x"]
    assert isinstance(held, gpu.ndarray) and held.device.id == 0
    x[0, 0] = 99.0  # FeedBlob copied
    out = workspace.FetchBlob("x")
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2])
    # a device array fed to the CPU is downloaded, fed to the GPU it is copied
    workspace.FeedBlob("h", held)
    assert type(workspace.current().blob_dict["h"]) is np.ndarray
    workspace.FeedBlob("g", held, CUDA0)
    assert workspace.current().blob_dict["g"] is not held
    with pytest.raises(EnforceError, match="cannot live on CUDA"):
        workspace.FeedBlob("s", np.array(["a", "b"]), CUDA0)


def test_float64_fed_to_cuda_is_kept_with_a_warning(gpu, caplog):
    with caplog.at_level(logging.WARNING, logger="caffe2lite"):
        workspace.FeedBlob("d", np.arange(3.0), CUDA0)
        workspace.FeedBlob("f", np.arange(3.0, dtype=np.float32), CUDA0)
    assert caplog.messages == ["FeedBlob('d'): a float64 array goes to CUDA:0; most kernels "
                               "there expect float32"]
    assert workspace.FetchBlob("d").dtype == np.float64  # as Caffe2: fed all the same


def test_device_scope_places_feeds_and_ops(gpu):
    with core.DeviceScope(CUDA0):
        workspace.FeedBlob("x", np.array([-1.0, 3.0], np.float32))
        op = core.CreateOperator("Relu", ["x"], ["y"])
    assert op.device_option.device_type == caffe2_pb2.CUDA
    workspace.RunOperatorOnce(op)
    assert isinstance(workspace.current().blob_dict["y"], gpu.ndarray)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [0.0, 3.0])


def test_net_device_option_places_every_op(gpu):
    x = np.array([[-2.0, 1.5], [0.5, -0.1]], np.float32)
    workspace.FeedBlob("x", x, CUDA0)
    net = core.Net("on_gpu")
    net.Relu("x", "y")
    net.ReluGradient(["y", "x"], "dx")
    net.RunAllOnGPU(0)
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    for name in ("y", "dx"):
        assert isinstance(workspace.current().blob_dict[name], gpu.ndarray)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.maximum(x, 0))
    np.testing.assert_array_equal(workspace.FetchBlob("dx"), np.where(x > 0, x, 0))


def test_serialize_device_blob_records_device(gpu):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    workspace.FeedBlob("x", x, CUDA0)
    blob = caffe2_pb2.BlobProto.FromString(workspace.SerializeBlob("x"))
    assert blob.tensor.device_detail.device_type == caffe2_pb2.CUDA
    assert list(blob.tensor.dims) == [2, 3]
    np.testing.assert_array_equal(np.asarray(blob.tensor.float_data, np.float32), x.ravel())
    workspace.DeserializeBlob("y", blob.SerializeToString())
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x)


# -- blobs on the wrong device -----------------------------------------------
def test_host_input_to_cuda_op_is_an_error(gpu):
    workspace.FeedBlob("x", np.ones(3, np.float32))  # on the host
    op = core.CreateOperator("Relu", ["x"], ["y"], device_option=CUDA0)
    with pytest.raises(EnforceError, match=r"op Relu: input 0 \('x'\) is on CPU, but the op "
                                           r"expects it on CUDA:0.*CopyCPUToGPU"):
        workspace.RunOperatorOnce(op)
    assert workspace.current().blob_dict.get("y") is None


def test_gpu_input_to_cpu_op_is_an_error(gpu):
    workspace.FeedBlob("x", np.ones(3, np.float32), CUDA0)
    op = core.CreateOperator("Relu", ["x"], ["y"])
    with pytest.raises(EnforceError, match=r"input 0 \('x'\) is on CUDA:0, but the op expects "
                                           r"it on CPU.*CopyGPUToCPU"):
        workspace.RunOperatorOnce(op)
    assert workspace.current().blob_dict.get("y") is None


def test_other_gpu_input_is_an_error(gpu):
    if _gpu_count(gpu) < 2:
        pytest.skip("needs 2 GPUs")
    workspace.FeedBlob("x", np.ones(3, np.float32), device_option("CUDA", 1))
    op = core.CreateOperator("Relu", ["x"], ["y"], device_option=CUDA0)
    with pytest.raises(EnforceError, match=r"is on CUDA:1, but the op expects it on CUDA:0"):
        workspace.RunOperatorOnce(op)


def test_ops_run_on_their_own_gpu(gpu):
    if _gpu_count(gpu) < 2:
        pytest.skip("needs 2 GPUs")
    cuda1 = device_option("CUDA", 1)
    workspace.FeedBlob("x", np.array([-1.0, 4.0], np.float32), cuda1)
    workspace.RunOperatorOnce(core.CreateOperator("Relu", ["x"], ["y"], device_option=cuda1))
    assert workspace.current().blob_dict["y"].device.id == 1
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [0.0, 4.0])


# -- no CUDA kernel: an error, or Caffe2's GPU fallback -----------------------
def _register_cpu_only(monkeypatch, op_type, fallback):
    """A throwaway op with only a CPU kernel, removed from the registry after the test."""
    registry.load_operator_packages()
    seen = []

    def kernel(ctx, x, scale):
        seen.append((type(x), ctx.xp, ctx.device.name))
        ctx.enforce(scale.size == 1, "input 1 ('scale') must hold one value, got ",
                    scale.size)
        return x * scale.reshape(()), "done"

    monkeypatch.setitem(registry._schemas, op_type, OpSchema(
        op_type, num_inputs=2, num_outputs=2, cpu_fallback=fallback,
        doc="test op: (X * scale, 'done')"))
    monkeypatch.setitem(registry._kernels, (op_type, caffe2_pb2.CPU, ""), kernel)
    return seen


def test_cuda_op_without_kernel_names_what_exists(gpu, monkeypatch):
    _register_cpu_only(monkeypatch, "TestCpuOnly", fallback=False)
    workspace.FeedBlob("x", np.ones(2, np.float32), CUDA0)
    workspace.FeedBlob("s", np.ones(1, np.float32), CUDA0)
    op = core.CreateOperator("TestCpuOnly", ["x", "s"], ["y", "msg"], device_option=CUDA0)
    with pytest.raises(OperatorNotRegistered, match=r"no implementation of 'TestCpuOnly' on "
                                                    r"device CUDA.*CPU/DEFAULT"):
        workspace.RunOperatorOnce(op)


def test_gpu_fallback_copies_in_runs_cpu_and_copies_out(gpu, monkeypatch):
    seen = _register_cpu_only(monkeypatch, "TestFallback", fallback=True)
    x = np.array([1.0, -2.0, 3.0], np.float32)
    workspace.FeedBlob("x", x, CUDA0)
    workspace.FeedBlob("s", np.array([2.0], np.float32))  # a host input is shared, as Caffe2
    op = core.CreateOperator("TestFallback", ["x", "s"], ["y", "msg"], device_option=CUDA0)
    workspace.RunOperatorOnce(op)
    assert seen == [(np.ndarray, np, "CPU")]
    y = workspace.current().blob_dict["y"]
    assert isinstance(y, gpu.ndarray) and y.device.id == 0
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x * 2)
    assert workspace.FetchBlob("msg") == b"done"  # a string blob: bytes, as Caffe2 fetched it
    # the CPU kernel's error names the op; nothing is written
    workspace.FeedBlob("s", np.ones(2, np.float32), CUDA0)
    with pytest.raises(EnforceError, match=r"op TestFallback.*'scale'.*got 2"):
        workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x * 2)


def test_scalar_outputs_land_on_the_gpu(gpu, monkeypatch):
    registry.load_operator_packages()
    monkeypatch.setitem(registry._schemas, "TestScalar", OpSchema(
        "TestScalar", num_inputs=1, num_outputs=2, doc="test op: (sum(X) as a NumPy "
                                                         "scalar, 3)"))

    def kernel(ctx, x):
        return np.float32(1.5), 3

    monkeypatch.setitem(registry._kernels, ("TestScalar", caffe2_pb2.CUDA, ""), kernel)
    workspace.FeedBlob("x", np.ones(2, np.float32), CUDA0)
    workspace.RunOperatorOnce(core.CreateOperator("TestScalar", ["x"], ["a", "b"],
                                                  device_option=CUDA0))
    for name, value in (("a", 1.5), ("b", 3)):
        assert isinstance(workspace.current().blob_dict[name], gpu.ndarray)
        assert workspace.FetchBlob(name) == value


def test_numpy_output_from_cuda_kernel_is_an_error(gpu, monkeypatch):
    registry.load_operator_packages()
    monkeypatch.setitem(registry._schemas, "TestHostOut", OpSchema(
        "TestHostOut", num_inputs=1, num_outputs=1, doc="test op: a NumPy copy of X"))
    monkeypatch.setitem(registry._kernels, ("TestHostOut", caffe2_pb2.CUDA, ""),
                        lambda ctx, x: (np.zeros(2, np.float32),))
    workspace.FeedBlob("x", np.ones(2, np.float32), CUDA0)
    with pytest.raises(Exception, match=r"kernel returned a NumPy array for output 0 \('y'\)"):
        workspace.RunOperatorOnce(core.CreateOperator("TestHostOut", ["x"], ["y"],
                                                      device_option=CUDA0))



# -- the per-device helpers, on the model operator -----------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_relu_matches_numpy_on_each_device(device, dtype):
    x = np.random.default_rng(1).standard_normal((5, 7)).astype(dtype)
    blobs, error = run_on(core.CreateOperator("Relu", ["x"], ["y"]), {"x": x}, device)
    assert error is None
    assert_close(blobs["y"], np.where(x > 0, x, dtype(0)), f"Relu on {device}")


@pytest.mark.parametrize("seed", range(3))
def test_relu_cpu_and_cuda_agree(seed):
    x = np.random.default_rng(seed).standard_normal((4, 9)).astype(np.float32)
    assert_devices_agree(core.CreateOperator("Relu", ["x"], ["y"]), {"x": x})
    # bad input fails alike on both devices and leaves the blobs as fed
    assert_devices_agree(core.CreateOperator("ReluGradient", ["x", "x"], ["dx"],
                                             unknown_arg=1), {"x": x})
