"""The CUDA device: blobs are CuPy arrays on GPU ``device_id``.

CuPy is imported here, and this module is imported only when a CUDA
DeviceOption is first used, so ``import caffe2lite`` and everything on the
CPU work on a machine without CuPy or a GPU.  Asking for CUDA there raises
``DeviceUnavailable`` saying which of the two is missing.

Every CUDA kernel runs through ``guard_kernel``: with the op's GPU made
current (CuPy allocates on the current device), after checking that each
input array lives where the op expects it, so a NumPy input is an error
rather than a silent host computation.  The checks cost a few microseconds
per op on the CUDA path only; the CPU executor never sees them.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.devices import (blob_devices, is_device_array, key_name, location, to_host,
                                        wrong_device_error)
from caffe2lite.runtime.errors import DeviceUnavailable, OperatorError

_HOST = (caffe2_pb2.CPU, 0)


def _import_cupy():
    """(cupy, number of GPUs), or DeviceUnavailable saying why CUDA cannot be used."""
    try:
        import cupy
    except ImportError as e:
        raise DeviceUnavailable(
            "CUDA device requested but CuPy is not installed (" + str(e) + "): install "
            "caffe2lite with the [cuda] extra (pip install 'caffe2lite[cuda]', which "
            "brings cupy-cuda12x) on a machine with an NVIDIA GPU") from e
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as e:  # CUDA driver missing or broken
        raise DeviceUnavailable(f"CUDA device requested but no usable GPU was found: CuPy "
                                f"could not query the CUDA driver ({type(e).__name__}: {e})") from e
    if count == 0:
        raise DeviceUnavailable("CUDA device requested but no GPU is present (CuPy is "
                                "installed, the CUDA driver reports 0 devices)")
    return cupy, count


def unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can (for skips and diagnostics)."""
    try:
        _import_cupy()
    except DeviceUnavailable as e:
        return str(e)
    return None


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
        self.key = (caffe2_pb2.CUDA, device_id)
        self.device = cupy.cuda.Device(device_id)

    @staticmethod
    def is_available() -> bool:
        return unavailable_reason() is None

    def to_device(self, value):
        """``value`` as a CuPy array on this GPU: host data is uploaded, another GPU's
        array is copied over, an array already here is returned as it is."""
        with self.device:
            if isinstance(value, self.xp.ndarray):
                if value.device.id == self.device_id:
                    return value
                return self.xp.copy(value)  # allocates on the current device
            return self.xp.asarray(value)

    def copy_to_device(self, value):
        """A new C-contiguous CuPy array on this GPU holding ``value`` (never shared)."""
        with self.device:
            if not isinstance(value, self.xp.ndarray) and is_device_array(value):
                value = self.xp.asarray(value)  # wraps foreign GPU memory, no copy yet
            if isinstance(value, self.xp.ndarray):
                return self.xp.copy(value, order="C")  # also copies across GPUs
            return self.xp.array(value, order="C")

    @staticmethod
    def to_host(value):
        return to_host(value)

    def is_device_array(self, value) -> bool:
        return isinstance(value, self.xp.ndarray) and value.device.id == self.device_id

    def synchronize(self) -> None:
        """Wait for all work on this GPU (every stream)."""
        self.device.synchronize()

    def rng(self, seed):
        with self.device:
            return self.xp.random.default_rng(seed)

    def guard_kernel(self, kernel, op_def, schema, where):
        """Wrap ``kernel`` so that it runs on this GPU with its blobs on the right devices.

        Input arrays must be where Caffe2's device inference puts them (the
        op's GPU unless the schema's ``infer_device`` says otherwise; any
        device with ``inputs_can_cross_devices``).  Outputs are checked the
        same way; scalars are moved to the output's device.
        """
        in_keys, out_keys = blob_devices(op_def, schema)
        check_inputs = not schema.inputs_can_cross_devices
        in_names, out_names = list(op_def.input), list(op_def.output)
        device, xp, here = self.device, self.xp, self.key

        def place_output(j, value):
            expected = out_keys[j]
            if isinstance(value, (np.generic, int, float)):
                return xp.asarray(value) if expected == here else np.asarray(value)
            found = location(value)
            if found is None or found == expected:
                return value
            if expected == here and found == _HOST:
                raise OperatorError(f"{where}: kernel returned a NumPy array for output {j} "
                                    f"('{out_names[j]}'), expected a CuPy array on "
                                    f"{key_name(here)} (write the kernel against ctx.xp)")
            raise wrong_device_error(where, "output", j, out_names[j], found, expected)

        def guarded(ctx, *inputs):
            if check_inputs:
                for i, value in enumerate(inputs):
                    found = location(value)
                    if found is not None and found != in_keys[i]:
                        raise wrong_device_error(where, "input", i, in_names[i], found,
                                                 in_keys[i])
            with device:
                results = kernel(ctx, *inputs)
                if type(results) is not tuple:
                    results = tuple(results) if isinstance(results, list) else (results,)
                if len(results) != len(out_keys):
                    return results  # the runtime's output check reports the count
                return tuple(place_output(j, v) for j, v in enumerate(results))

        guarded.__wrapped__ = kernel
        return guarded

    def __repr__(self):
        return f"DeviceContext(CUDA:{self.device_id})"

