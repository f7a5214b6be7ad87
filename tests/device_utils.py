"""Run operator tests per device: the same random cases on CPU and CUDA must agree.

``DEVICES`` parametrises a test over CPU and CUDA; the CUDA case carries the
``cuda`` marker and skips, with the reason (no CuPy / no GPU), where CUDA
cannot be used.  ``run_on`` runs one OperatorDef in a private workspace on
one device and returns host copies of the blobs it names (or the error, with
the blobs as they were after it); ``assert_devices_agree`` compares CPU and
CUDA on the same inputs -- values within a per-dtype tolerance, or the same
error class with every blob left unchanged on both.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.devices.cuda import unavailable_reason

CUDA_REASON = unavailable_reason()
CUDA_MARKS = [pytest.mark.cuda,
              pytest.mark.skipif(CUDA_REASON is not None, reason=f"CUDA: {CUDA_REASON}")]
DEVICES = [pytest.param("CPU", id="CPU"),
           pytest.param("CUDA", id="CUDA", marks=CUDA_MARKS)]


def requires_cuda(test):
    """Decorator: the ``cuda`` marker, and a skip with the reason where CUDA is missing."""
    for mark in CUDA_MARKS:
        test = mark(test)
    return test

# Agreement between devices (the contract): float32 1e-6, float16 1e-3.
TOLERANCE = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1e-6,
             np.dtype(np.float64): 1e-12}


def device_option(device: str, device_id: int = 0):
    """A DeviceOption for 'CPU' or 'CUDA' (device_id used for CUDA only)."""
    if device.upper() == "CPU":
        return caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CPU)
    return caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA, device_id=device_id)


def skip_unless_cuda():
    if CUDA_REASON is not None:
        pytest.skip(f"CUDA: {CUDA_REASON}")


def on_device(op_def, device: str, device_id: int = 0):
    """A copy of op_def placed on ``device``."""
    placed = caffe2_pb2.OperatorDef()
    placed.CopyFrom(op_def)
    placed.device_option.CopyFrom(device_option(device, device_id))
    return placed


def run_on(op_def, feeds: dict, device: str, fetch=None, device_id: int = 0):
    """Run op_def once on ``device`` in a fresh workspace fed with ``feeds``.

    Returns (host copies of the blobs in ``fetch`` (default: feeds and
    outputs), the exception raised or None).
    """
    names = list(fetch) if fetch is not None else list(dict.fromkeys(
        list(feeds) + list(op_def.output)))
    option = device_option(device, device_id)
    with workspace.WorkspaceGuard(f"device_utils_{device}"):
        workspace.ResetWorkspace()
        for name, value in feeds.items():
            workspace.FeedBlob(name, value, option)
        error = None
        try:
            workspace.RunOperatorOnce(on_device(op_def, device, device_id))
        except Exception as exc:  # returned for the caller to compare
            error = exc
        fetched = {n: workspace.FetchBlob(n) for n in names
                   if workspace.HasBlob(n) and _written(n)}
        workspace.ResetWorkspace()
    return fetched, error


def _written(name):
    return workspace.current().blob_dict.get(name) is not None


def assert_close(actual, expected, what=""):
    """Equal shapes and dtypes; values within TOLERANCE[dtype] (relative and absolute)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    tol = TOLERANCE.get(actual.dtype)
    if tol is None:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=tol, atol=tol, err_msg=what)


def assert_devices_agree(op_def, feeds: dict, fetch=None, needs_real_cuda=True):
    """CPU and CUDA give the same blobs, or fail alike leaving the blobs as fed.

    Skips (with the reason) where CUDA is unavailable, unless
    ``needs_real_cuda=False`` (the caller installed tests/fake_cupy.py).
    Returns the CPU blobs.
    """
    if needs_real_cuda:
        skip_unless_cuda()
    cpu, cpu_error = run_on(op_def, feeds, "CPU", fetch)
    gpu, gpu_error = run_on(op_def, feeds, "CUDA", fetch)
    if cpu_error is not None or gpu_error is not None:
        assert type(cpu_error) is type(gpu_error), \
            f"CPU raised {cpu_error!r}, CUDA raised {gpu_error!r}"
        for name, value in feeds.items():
            np.testing.assert_array_equal(cpu[name], value, err_msg=f"CPU changed '{name}'")
            np.testing.assert_array_equal(gpu[name], value, err_msg=f"CUDA changed '{name}'")
        return cpu
    assert cpu.keys() == gpu.keys()
    for name in cpu:
        assert_close(gpu[name], cpu[name], f"blob '{name}' CUDA vs CPU")
    return cpu
