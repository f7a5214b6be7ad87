"""Caffe2's ``caffe2.python.serialized_test.serialized_test_util`` (``serial``).

Caffe2's operator tests decorate with ``@serial.given(...)`` and derive from
``serial.SerializedTestCase``.  As in Caffe2, ``serial.given`` runs one example,
drawn with hypothesis seed 0 (Caffe2 ran it twice: once to compare with or write its
golden ``.zip`` files, once more as a plain hypothesis test; here the golden files are
neither written nor compared, so once is enough -- tests/test_caffe2_golden.py reads
Caffe2's golden files instead).  ``_output_context`` and ``DATA_DIR`` are there
because Caffe2's ``operator_test/conftest.py`` sets them from its command line.
"""

from __future__ import annotations

import functools
import os
import threading

# isort: off
# hu first: without hypothesis it says what to install, before ``import hypothesis`` fails
from caffe2lite.hypothesis_test_util import HypothesisTestCase
import hypothesis
# isort: on

operator_test_type = "operator_test"
TOP_DIR = os.path.dirname(os.path.realpath(__file__))
DATA_SUFFIX = "data"
DATA_DIR = os.path.join(TOP_DIR, DATA_SUFFIX)
# Set by Caffe2's conftest.py: should_generate_output, output_dir,
# disable_serialized_check, disable_gen_coverage (only the last two are honoured: no
# golden file is ever written or compared).
_output_context = threading.local()


def given(*given_args, **given_kwargs):
    """hypothesis's ``given``, one example, seed 0 (Caffe2's serialized ``given``).

    Settings the test already carries (a ``@settings(deadline=...)`` under this
    decorator, as Caffe2's tests write it) are kept, only ``max_examples`` becomes 1:
    today's hypothesis refuses a second ``settings`` on one function, so the test is
    wrapped and the settings are derived from its own."""
    def wrapper(f):
        inner = getattr(f, "_hypothesis_internal_use_settings", None)

        @functools.wraps(f, updated=())
        def test(*args, **kwargs):
            return f(*args, **kwargs)
        one = hypothesis.settings(inner, max_examples=1) if inner is not None else \
            hypothesis.settings(max_examples=1)
        return hypothesis.seed(0)(one(hypothesis.given(*given_args, **given_kwargs)(test)))
    return wrapper


class SerializedTestCase(HypothesisTestCase):
    """Caffe2's SerializedTestCase: a HypothesisTestCase whose reference checks would also
    have been compared with golden files (here they are not)."""

    should_serialize = False

    def assertSerializedOperatorChecks(self, inputs, outputs, gradient_operator,  # noqa: N802
                                       op, device_option, atol=1e-7, rtol=1e-7):
        """Caffe2 compared the outputs with (or wrote) the op's golden file here;
        caffe2lite keeps no golden files of its own, so there is nothing to compare."""
        if getattr(_output_context, "should_generate_output", False):
            raise NotImplementedError("serialized_test_util: caffe2lite does not write "
                                      "golden files (--generate-serialized)")


__all__ = ["given", "SerializedTestCase", "DATA_DIR", "TOP_DIR"]
