"""Caffe2's ``scope`` module: name and device scopes, one per thread.

The scopes are state the engine reads too (a blob fed or an operator run
inside a DeviceScope lands on its device), so they live in
``caffe2lite.runtime.scope``; this is their Caffe2 name.
"""

from caffe2lite.runtime.scope import (_NAMESCOPE_SEPARATOR, CurrentDeviceScope,  # noqa: F401
                                      CurrentNameScope, DeviceScope, EmptyDeviceScope,
                                      EmptyNameScope, NameScope)
