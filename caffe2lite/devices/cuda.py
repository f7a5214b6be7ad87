"""The CUDA device: blobs are CuPy arrays on GPU ``device_id``.

CuPy is imported here, and this module is imported only when a CUDA
DeviceOption is first used.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.errors import DeviceUnavailable
from caffe2lite.proto import caffe2_pb2


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise DeviceUnavailable(
            "CUDA device requested but CuPy is not installed: install caffe2lite with the "
            "[cuda] extra (pip install '.[cuda]')") from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise DeviceUnavailable(f"CUDA device requested but no usable GPU was found: {e}") from e
    if count == 0:
        raise DeviceUnavailable("CUDA device requested but no GPU is present")
    return cupy, count


class DeviceContext:
    """CUDA context for one GPU: ``xp`` is CuPy."""

    device_type = caffe2_pb2.CUDA
    name = "CUDA"

    def __init__(self, device_id: int = 0):
        cupy, count = _import_cupy()
        if not 0 <= device_id < count:
            raise DeviceUnavailable(f"CUDA device {device_id} requested but only {count} "
                                    f"GPU(s) exist (ids 0..{count - 1})")
        self.xp = cupy
        self.device_id = device_id
        self.device = cupy.cuda.Device(device_id)

    @staticmethod
    def is_available() -> bool:
        try:
            _import_cupy()
        except DeviceUnavailable:
            return False
        return True

    def to_device(self, value):
        with self.device:
            return self.xp.asarray(value)

    def to_host(self, value):
        if isinstance(value, np.ndarray):
            return value
        return self.xp.asnumpy(value)

    def is_device_array(self, value) -> bool:
        return isinstance(value, self.xp.ndarray) and value.device.id == self.device_id

    def synchronize(self) -> None:
        with self.device:
            self.xp.cuda.Stream.null.synchronize()

    def rng(self, seed):
        with self.device:
            return self.xp.random.default_rng(seed)

    def __repr__(self):
        return f"DeviceContext(CUDA:{self.device_id})"
