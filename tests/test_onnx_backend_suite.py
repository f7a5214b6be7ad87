"""ONNX's own backend test suite over caffe2lite.onnx.backend (CPU).

Every node case onnx ships, the real-model cases it builds offline (the
"light" zoo models: AlexNet, Inception, ResNet-50, SqueezeNet, ... with
generated weights) and its simple / PyTorch-converted cases run here, except
those tests/onnx_backend_exclusions.py lists, each under its reason (an
operator another branch is adding, an ONNX op with no Caffe2 mapping, a type
Caffe2 had no number for, ...).  tools/onnx_backend_exclusions.py rewrites
that list from a full run and prints the pass rates BENCHMARKS.md records.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile

import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")

import onnx.backend.test  # noqa: E402
from onnx_backend_exclusions import EXCLUDED  # noqa: E402

import caffe2lite.onnx.backend as backend  # noqa: E402

# The real-model cases write their generated inputs under $ONNX_HOME: keep them out of ~.
if "ONNX_HOME" not in os.environ:
    os.environ["ONNX_HOME"] = tempfile.mkdtemp(prefix="caffe2lite_onnx_home_")
    atexit.register(shutil.rmtree, os.environ["ONNX_HOME"], True)

_suite = onnx.backend.test.BackendTest(backend, __name__)
_suite.include(r"_cpu$")
for _reason, _names in EXCLUDED.items():
    _suite.exclude("^(" + "|".join(re.escape(n) for n in _names) + ")$")

globals().update(_suite.test_cases)
