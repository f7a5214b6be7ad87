"""Caffe2's ``caffe2.python._import_c_extension``: the C extension module itself, which in
caffe2lite is ``caffe2lite.pybind_state`` (``workspace.C``); importing this name gives
that module, as Caffe2's tests (``import caffe2.python._import_c_extension as C``) expect."""

import sys

from caffe2lite import pybind_state

sys.modules[__name__] = pybind_state
