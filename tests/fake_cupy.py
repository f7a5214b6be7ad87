"""A stand-in for CuPy backed by NumPy, so the CUDA plumbing is tested on any machine.

It models what caffe2lite's runtime relies on -- ``cupy.ndarray`` arrays
tagged with the GPU they live on (``.device.id``, ``.get()``,
``__cuda_array_interface__``), ``cupy.cuda.Device`` as the current-device
context manager, ``getDeviceCount``, ``asarray``/``asnumpy``/``copy``,
NumPy's functions returning device arrays, and ``RawModule`` whose kernels
run on the host (tests/cuda_emulation.py) -- not GPU performance.  Real GPU
behaviour is checked by the ``cuda``-marked tests on a GPU machine.
"""

from __future__ import annotations

import types

import numpy as np

_current = [0]  # stack of current device ids


class Device:
    """cupy.cuda.Device: a GPU id, and the 'current device' while used as a context."""

    def __init__(self, device_id=0):
        self.id = int(device_id)

    def __enter__(self):
        _current.append(self.id)
        return self

    def __exit__(self, *exc):
        _current.pop()

    def synchronize(self):
        pass  # NumPy work is done when the call returns

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class ndarray(np.ndarray):  # noqa: N801 (CuPy's name)
    """A NumPy array that says it lives on fake GPU ``device.id``."""

    def __array_finalize__(self, obj):
        self._device_id = getattr(obj, "_device_id", _current[-1])

    @property
    def device(self):
        return Device(self._device_id)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "version": 3,
                "data": (self.__array_interface__["data"][0], False)}

    @property
    def data(self):  # CuPy's MemoryPointer: only .ptr is modelled
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def get(self):
        return np.array(self.view(np.ndarray), copy=True)


def _on_current(array):
    out = np.array(array, copy=True).view(ndarray)
    out._device_id = _current[-1]
    return out


def _wrap(result):
    """NumPy results become device arrays on the current device."""
    if type(result) is np.ndarray:
        return _on_current(result)
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def _device_function(fn):
    def call(*args, **kwargs):
        return _wrap(fn(*args, **kwargs))

    call.__name__ = getattr(fn, "__name__", "fn")
    return call


class _Generator:
    """cupy.random.Generator: NumPy's, drawing device arrays."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return _device_function(getattr(self._rng, name))


def make_fake_cupy(device_count=1, count_error=None):
    """A module that imports as ``cupy``, reporting ``device_count`` GPUs.

    ``count_error``: an exception getDeviceCount raises (a broken driver).
    """
    mod = types.ModuleType("cupy")
    mod.__fake__ = True

    def get_device_count():
        if count_error is not None:
            raise count_error
        return device_count

    def device_properties(device_id):
        return {"name": f"fake GPU {device_id} (NumPy)".encode(), "totalGlobalMem": 0}

    mod.__version__ = "fake"
    mod.ndarray = ndarray
    mod.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count,
                                      getDeviceProperties=device_properties,
                                      runtimeGetVersion=lambda: 0),
        memory=types.SimpleNamespace(OutOfMemoryError=MemoryError),
        Device=Device,
        Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=lambda: None)))
    mod.random = types.SimpleNamespace(default_rng=_Generator)
    mod.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None)
    mod.testing = types.SimpleNamespace(
        assert_allclose=lambda a, b, **kw: np.testing.assert_allclose(asnumpy(a), asnumpy(b), **kw))

    def asarray(a, dtype=None):
        if isinstance(a, ndarray) and a._device_id == _current[-1] and \
                (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return _on_current(np.asarray(a, dtype=dtype))

    def asnumpy(a):
        return a.get() if isinstance(a, ndarray) else np.asarray(a)

    def array(a, dtype=None, copy=True, order="K"):
        return _on_current(np.array(a, dtype=dtype, copy=True, order=order))

    def copy(a, order="K"):
        return _on_current(np.array(a, copy=True, order=order))

    mod.asarray, mod.asnumpy, mod.array, mod.copy = asarray, asnumpy, array, copy

    def raw_module(code=None, options=(), **kwargs):  # kernels run on the host
        from cuda_emulation import RawModule

        return RawModule(code=code, options=options, **kwargs)

    mod.RawModule = raw_module

    def __getattr__(name):  # everything else: NumPy's, returning device arrays
        value = getattr(np, name)
        if callable(value) and not isinstance(value, (type, np.ufunc)):
            return _device_function(value)
        return value  # dtypes, ufuncs (which keep the subclass), constants

    mod.__getattr__ = __getattr__
    return mod
