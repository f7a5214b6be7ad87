"""The CPU device: blobs are NumPy arrays."""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2


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
        if hasattr(value, "get") and not isinstance(value, np.ndarray):
            return value.get()
        return value

    to_host = to_device

    @staticmethod
    def is_device_array(value) -> bool:
        return isinstance(value, np.ndarray)

    @staticmethod
    def synchronize() -> None:
        pass

    @staticmethod
    def rng(seed):
        return np.random.default_rng(seed)

    def __repr__(self):
        return "DeviceContext(CPU)"
