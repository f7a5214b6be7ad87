"""Device contexts: one small module per device, imported only when first used.

``context_for(device_option)`` maps a DeviceOption to its DeviceContext
(``xp``, ``device_id``, ``to_device``, ``to_host``, ``synchronize``).  CPU is
NumPy; CUDA (``devices/cuda.py``) imports CuPy only when a CUDA device is
first asked for, so ``import caffe2lite`` works without CuPy or a GPU.
"""

from __future__ import annotations

import importlib

from caffe2lite.errors import DeviceUnavailable
from caffe2lite.proto import caffe2_pb2

_MODULES = {caffe2_pb2.CPU: "cpu", caffe2_pb2.CUDA: "cuda"}
_contexts: dict[tuple[int, int], object] = {}


def context_for(device_option=None):
    """The DeviceContext for a DeviceOption (None or unset = CPU)."""
    device_type = device_option.device_type if device_option is not None else caffe2_pb2.CPU
    device_id = device_option.device_id if device_option is not None else 0
    if device_type == caffe2_pb2.CPU:
        device_id = 0  # Caffe2 treats every CPU option as the same device.
    key = (device_type, device_id)
    ctx = _contexts.get(key)
    if ctx is None:
        module_name = _MODULES.get(device_type)
        if module_name is None:
            raise DeviceUnavailable(
                f"device type {device_type} ({caffe2_pb2.DeviceTypeProto.Name(device_type) if device_type in caffe2_pb2.DeviceTypeProto.values() else 'unknown'}) "
                f"is not supported by caffe2lite; supported: CPU (0), CUDA (1)")
        module = importlib.import_module(f"caffe2lite.devices.{module_name}")
        ctx = module.DeviceContext(device_id)
        _contexts[key] = ctx
    return ctx


def cpu_context():
    return context_for(None)
