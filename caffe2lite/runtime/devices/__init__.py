"""Device contexts: one small module per device, imported only when first used.

``context_for(device_option)`` maps a DeviceOption to its DeviceContext
(``xp``, ``device_id``, ``to_device``, ``to_host``, ``synchronize``).  CPU is
NumPy; CUDA (``devices/cuda.py``) imports CuPy only when a CUDA device is
first asked for, so ``import caffe2lite`` works without CuPy or a GPU.
"""

from __future__ import annotations

import importlib

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import DeviceUnavailable, EnforceError

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
        module = importlib.import_module(f"caffe2lite.runtime.devices.{module_name}")
        ctx = module.DeviceContext(device_id)
        _contexts[key] = ctx
    return ctx


def cpu_context():
    return context_for(None)


def device_key(device_option=None) -> tuple[int, int]:
    """(device_type, device_id) of a DeviceOption; every CPU option is (CPU, 0)."""
    if device_option is None or device_option.device_type == caffe2_pb2.CPU:
        return (caffe2_pb2.CPU, 0)
    return (device_option.device_type, device_option.device_id)


def key_name(key: tuple[int, int]) -> str:
    """'CPU' or 'CUDA:1': how errors name a device."""
    if key[0] == caffe2_pb2.CPU:
        return "CPU"
    name = "CUDA" if key[0] == caffe2_pb2.CUDA else f"device_type {key[0]}"
    return f"{name}:{key[1]}"


def is_device_array(value) -> bool:
    """True for arrays in GPU memory (CuPy, or anything with the CUDA array interface).

    Asked of the type: on an instance, CuPy builds the interface dict each time.
    """
    return hasattr(type(value), "__cuda_array_interface__")


def location(value):
    """The device key an array lives on, or None for a value that is not an array.

    Used on the CUDA path, on error paths and by the workspace; never by the CPU hot loop.
    """
    if type(value) is np.ndarray:
        return (caffe2_pb2.CPU, 0)
    if is_device_array(value):
        device = getattr(value, "device", None)
        return (caffe2_pb2.CUDA, int(getattr(device, "id", 0)))
    if isinstance(value, (np.ndarray, np.generic)):
        return (caffe2_pb2.CPU, 0)
    return None


def to_host(value):
    """A NumPy array for a device array (a copy); any other value as it is."""
    if not is_device_array(value):
        return value
    get = getattr(value, "get", None)
    if get is None:
        raise EnforceError(f"cannot copy a {type(value).__name__} from the GPU to the host: "
                           f"caffe2lite holds device data as CuPy arrays")
    return get()


def blob_devices(op_def, schema):
    """Caffe2's device inference: (device keys of the inputs, of the outputs).

    Every blob lives on the op's device unless the schema's ``infer_device``
    says otherwise (cross-device copies).
    """
    infer = getattr(schema, "infer_device", None)
    if infer is None:
        key = device_key(op_def.device_option if op_def.HasField("device_option") else None)
        return [key] * len(op_def.input), [key] * len(op_def.output)
    inputs, outputs = infer(op_def)
    return [device_key(o) for o in inputs], [device_key(o) for o in outputs]


def wrong_device_error(where, what, index, name, found, expected) -> EnforceError:
    """The error for a blob on the wrong device, saying how to move it."""
    if expected[0] == caffe2_pb2.CPU:
        fix = "copy it to the host first (CopyGPUToCPU or EnsureCPUOutput)"
    elif found[0] == caffe2_pb2.CPU:
        fix = (f"copy it to the GPU first (CopyCPUToGPU under a {key_name(expected)} "
               f"DeviceOption) or feed it with that DeviceOption")
    else:
        fix = f"copy it to {key_name(expected)} first"
    return EnforceError(f"{where}: {what} {index} ('{name}') is on {key_name(found)}, "
                        f"but the op expects it on {key_name(expected)}: {fix}")


def device_option_equal(opt1, opt2, ignore_node_name=True, ignore_random_seed=True) -> bool:
    """Caffe2's core.device_option_equal: same device (node name and random seed
    compared only when asked)."""
    if not opt1 or not opt2:
        return opt1 == opt2
    if not ignore_node_name and opt1.node_name != opt2.node_name:
        return False
    if not ignore_random_seed and opt1.random_seed != opt2.random_seed:
        return False
    if not opt1.device_type or not opt2.device_type:
        return opt1.device_type == opt2.device_type  # both CPU
    return opt1.device_id == opt2.device_id and opt1.device_type == opt2.device_type
