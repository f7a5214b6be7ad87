"""Name and device scopes (Caffe2's ``scope`` module), one per thread."""

from __future__ import annotations

import contextlib
import threading

_SEPARATOR = "/"
_state = threading.local()


def CurrentNameScope() -> str:  # noqa: N802 (Caffe2's public name)
    """The current name prefix, '' or ending with '/' (e.g. 'a/b/')."""
    return getattr(_state, "namescope", "")


def CurrentDeviceScope():  # noqa: N802
    """The DeviceOption set by the innermost DeviceScope, or None."""
    return getattr(_state, "devicescope", None)


@contextlib.contextmanager
def NameScope(prefix, reset: bool = False):  # noqa: N802
    """Prefix blob names made inside the block with ``prefix/``."""
    prefix = prefix.decode("ascii") if isinstance(prefix, bytes) else str(prefix or "")
    old = CurrentNameScope()
    if reset:
        new = prefix + _SEPARATOR if prefix else ""
    else:
        new = old + prefix + _SEPARATOR if prefix else old
    _state.namescope = new
    try:
        yield
    finally:
        _state.namescope = old


@contextlib.contextmanager
def DeviceScope(device_option, node_name=None):  # noqa: N802
    """Ops and fed blobs made inside the block default to ``device_option``."""
    from caffe2lite.proto import caffe2_pb2

    new = caffe2_pb2.DeviceOption()
    if device_option is not None:
        new.CopyFrom(device_option)
    if node_name:
        new.node_name = node_name
    old = CurrentDeviceScope()
    _state.devicescope = new
    try:
        yield
    finally:
        _state.devicescope = old
