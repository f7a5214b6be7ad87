"""Caffe2's ``build`` module: what the running build was compiled with.

Caffe2's tests skip on these (``@unittest.skipIf(build.CAFFE2_NO_OPERATOR_SCHEMA, ...)``);
caffe2lite always has its operator schemas, and its build options are the few that
describe it.
"""

from caffe2lite import pybind_state as C

CAFFE2_NO_OPERATOR_SCHEMA = C.define_caffe2_no_operator_schema
build_options = C.get_build_options()
