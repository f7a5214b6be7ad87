"""The CPU device: blobs are NumPy arrays."""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.devices import is_device_array, to_host


class DeviceContext:
    """CPU context: ``xp`` is NumPy; copies to/from the host are no-ops."""

    device_type = caffe2_pb2.CPU
    name = "CPU"
    xp = np

    def __init__(self, device_id: int = 0):
        self.device_id = 0

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def to_device(value):
        """Return a NumPy array for ``value`` (CuPy arrays are copied to the host)."""
        return to_host(value)

    to_host = to_device

    @staticmethod
    def copy_to_device(value):
        """A new C-contiguous NumPy array holding ``value`` (GPU data is downloaded)."""
        return np.array(to_host(value), copy=True, order="C")

    @staticmethod
    def is_device_array(value) -> bool:
        """A host array (GPU arrays may subclass ndarray, so they are excluded)."""
        return isinstance(value, np.ndarray) and not is_device_array(value)

    @staticmethod
    def guard_kernel(kernel, op_def, schema, where):
        """CPU kernels run unwrapped: the CPU hot loop pays nothing for device checks
        (a GPU input is diagnosed only when the op fails, in Operator.failure)."""
        return kernel

    @staticmethod
    def synchronize() -> None:
        pass

    @staticmethod
    def rng(seed):
        return np.random.default_rng(seed)

    def __repr__(self):
        return "DeviceContext(CPU)"
