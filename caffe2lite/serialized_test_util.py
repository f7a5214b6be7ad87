"""Caffe2's ``caffe2.python.serialized_test.serialized_test_util`` (``serial``).

Caffe2's operator tests decorate with ``@serial.given(...)`` and derive from
``serial.SerializedTestCase``, which also wrote the golden ``.zip`` files of its
serialized tests.  Here ``given`` is hypothesis's ``given`` and the test case is
``hypothesis_test_util.HypothesisTestCase``: the tests run and check the same,
nothing is written.  (Caffe2's golden files themselves are read by
tests/test_caffe2_golden.py.)
"""

from __future__ import annotations

from caffe2lite.hypothesis_test_util import HypothesisTestCase  # first: says if hypothesis is missing

from hypothesis import given  # noqa: E402,I001

SerializedTestCase = HypothesisTestCase

__all__ = ["given", "SerializedTestCase"]
