"""Name and device scopes (Caffe2's ``scope`` module), one per thread.

As in Caffe2, a nested ``DeviceScope`` inherits the enclosing scope's
``node_name`` (unless it names its own) and adds its ``extra_info`` to the
enclosing scope's, sorted; ``EmptyNameScope`` / ``EmptyDeviceScope`` switch
the scopes off inside a block (a net-level DeviceOption then decides).
"""

from __future__ import annotations

import contextlib
import threading

from caffe2lite.proto import caffe2_pb2

_NAMESCOPE_SEPARATOR = "/"
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
    if isinstance(prefix, bytes):
        prefix = prefix.decode("ascii")
    assert isinstance(prefix, str) or prefix is None, \
        "NameScope takes in a string as its argument."
    old = CurrentNameScope()
    prefix = prefix + _NAMESCOPE_SEPARATOR if prefix else ""
    _state.namescope = prefix if reset else old + prefix
    try:
        yield
    finally:
        _state.namescope = old


@contextlib.contextmanager
def DeviceScope(device_option, node_name=None):  # noqa: N802
    """Ops and fed blobs made inside the block default to ``device_option``.

    Inside another DeviceScope the new option keeps the outer ``node_name``
    when it sets none, and carries the outer ``extra_info`` entries too.
    """
    new = caffe2_pb2.DeviceOption()
    if device_option:
        assert isinstance(device_option, caffe2_pb2.DeviceOption), \
            "DeviceScope takes in a caffe2_pb2.DeviceOption as its argument."
        new.CopyFrom(device_option)
    else:
        assert node_name, "At least one argument should be non-null in DeviceScope"
    if node_name:
        new.node_name = node_name
    old = CurrentDeviceScope()
    if old is not None:
        if old.HasField("node_name") and not new.HasField("node_name"):
            new.node_name = old.node_name
        new.extra_info.extend(old.extra_info)
    new.extra_info.sort()
    _state.devicescope = new
    try:
        yield
    finally:
        _state.devicescope = old


@contextlib.contextmanager
def EmptyNameScope():  # noqa: N802
    """No name scope inside the block (names are used as given)."""
    old = CurrentNameScope()
    _state.namescope = ""
    try:
        yield
    finally:
        _state.namescope = old


@contextlib.contextmanager
def EmptyDeviceScope():  # noqa: N802
    """No device scope inside the block, so ops get no DeviceOption of their own
    and the net-level one (if any) decides."""
    old = CurrentDeviceScope()
    _state.devicescope = None
    try:
        yield
    finally:
        _state.devicescope = old
