"""Caffe2's ``context`` module: classes whose instances form a per-thread stack.

``with Foo() as f:`` pushes ``f``; ``Foo.current()`` is the innermost one.  A
``DefaultManaged`` class makes a default instance when none is active (the
optimizer and regularizer contexts of model_helper are such classes).
"""

from __future__ import annotations

import functools
import inspect
import threading


class _ContextInfo:
    def __init__(self, cls, allow_default):
        self.cls = cls
        self.allow_default = allow_default
        self._local_stack = threading.local()

    @property
    def _stack(self):
        if not hasattr(self._local_stack, "obj"):
            self._local_stack.obj = []
        return self._local_stack.obj

    def enter(self, value):
        self._stack.append(value)

    def exit(self, value):
        assert len(self._stack) > 0, f"Context {self.cls} is empty."
        assert self._stack.pop() == value

    def get_active(self, required=True):
        if not self._stack:
            if not required:
                return None
            assert self.allow_default, f"Context {self.cls} is required but none is active."
            self.enter(self.cls())
        return self._stack[-1]


_CONTEXTS: dict[type, _ContextInfo] = {}


def _info(cls) -> _ContextInfo:
    if cls not in _CONTEXTS:
        assert issubclass(cls, Managed), f"must be a context managed class, got {cls}"
        _CONTEXTS[cls] = _ContextInfo(cls, allow_default=issubclass(cls, DefaultManaged))
    return _CONTEXTS[cls]


def _managed_classes(obj):
    return [cls for cls in inspect.getmro(obj.__class__)
            if issubclass(cls, Managed) and cls not in (Managed, DefaultManaged)]


class Managed:
    """Makes a class context managed: ``with Foo() as f: assert f == Foo.current()``."""

    @classmethod
    def current(cls, value=None, required=True):
        if value is not None:
            assert isinstance(value, cls), \
                f"Wrong context type. Expected: {cls}, got {type(value)}."
            return value
        return _info(cls).get_active(required=required)

    def __enter__(self):
        for cls in _managed_classes(self):
            _info(cls).enter(self)
        return self

    def __exit__(self, *args):
        for cls in _managed_classes(self):
            _info(cls).exit(self)

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return wrapper


class DefaultManaged(Managed):
    """Like Managed, but ``current()`` makes an instance when none is active."""
