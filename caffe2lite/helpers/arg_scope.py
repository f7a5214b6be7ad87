"""Caffe2's ``arg_scope``: default keyword arguments for brew helpers inside a block.

    with brew.arg_scope([brew.conv, brew.fc], order="NHWC"):
        brew.conv(model, ...)   # gets order="NHWC" unless it passes its own

Scopes nest per thread; an inner scope adds to (and overrides) the outer one.
"""

import contextlib
import copy
import threading

_threadlocal_scope = threading.local()


@contextlib.contextmanager
def arg_scope(single_helper_or_list, **kwargs):
    if not isinstance(single_helper_or_list, list):
        assert callable(single_helper_or_list), \
            "arg_scope is only supporting single or a list of helper functions."
        single_helper_or_list = [single_helper_or_list]
    old_scope = copy.deepcopy(get_current_scope())
    for helper in single_helper_or_list:
        assert callable(helper), \
            "arg_scope is only supporting a list of callable helper functions."
        helper_key = helper.__name__
        if helper_key not in old_scope:
            _threadlocal_scope.current_scope[helper_key] = {}
        _threadlocal_scope.current_scope[helper_key].update(kwargs)
    try:
        yield
    finally:
        _threadlocal_scope.current_scope = old_scope


def get_current_scope():
    """{helper name: default kwargs} in effect in this thread."""
    if not hasattr(_threadlocal_scope, "current_scope"):
        _threadlocal_scope.current_scope = {}
    return _threadlocal_scope.current_scope
