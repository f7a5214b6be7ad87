"""tools/caffe2_suite.py: the port changes imports and nothing else, tests are counted
and failures classified, and a run over a tiny suite reports what happened."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import caffe2_suite  # noqa: E402

# The sample sources name Caffe2's package through this placeholder, so that no line of the
# repository imports Caffe2's modules, not even as test data.
C2 = "caffe2"


def sample(text: str) -> str:
    """``text`` dedented, with ``{c2}`` standing for Caffe2's package name."""
    return textwrap.dedent(text).replace("{c2}", C2)


SOURCE = sample('''\
    """Mentions {c2}.python.core in a docstring."""
    from {c2}.python import core, workspace
    import {c2}.python.hypothesis_test_util as hu
    import {c2}.python.serialized_test.serialized_test_util as serial
    from {c2}.proto import caffe2_pb2
    import {c2}.proto.caffe2_pb2 as pb
    from {c2}.python.operator_test.adagrad_test_helper import (
        ref_adagrad,
    )
    NAME = "{c2}.python.core"  # {c2}.python in a comment
    ''')


def test_port_rewrites_imports_only():
    ported = caffe2_suite.port_source(SOURCE)
    assert "from caffe2lite import core, workspace" in ported
    assert "import caffe2lite.hypothesis_test_util as hu" in ported
    assert "import caffe2lite.serialized_test.serialized_test_util as serial" in ported
    assert "from caffe2lite.proto import caffe2_pb2" in ported
    assert "import caffe2lite.proto.caffe2_pb2 as pb" in ported
    assert "from adagrad_test_helper import (" in ported
    # strings, docstrings and comments are left as written
    assert sample('"""Mentions {c2}.python.core in a docstring."""') in ported
    assert sample('NAME = "{c2}.python.core"  # {c2}.python in a comment') in ported
    assert len(ported.splitlines()) == len(SOURCE.splitlines())


def test_tests_are_counted_from_source(tmp_path):
    path = tmp_path / "x_test.py"
    path.write_text(textwrap.dedent('''\
        class Base:
            def test_a(self): pass
            def helper(self): pass
        class Child(Base):
            def test_b(self): pass
        def test_c(): pass
        '''))
    assert caffe2_suite.count_tests(path) == 4  # a, c, and Child's a and b


@pytest.mark.parametrize("line, expected", [
    ("OperatorNotRegistered: op GRUUnit: unknown operator type 'GRUUnit'; see",
     ("missing operator", "GRUUnit")),
    ("AttributeError: Method Squeeze is not a registered operator. Did you mean: []",
     ("missing operator", "Squeeze")),
    ("ModuleNotFoundError: No module named 'caffe2lite.model_helper'",
     ("missing module", "caffe2lite.model_helper")),
    ("ImportError: cannot import name 'rand_array' from 'caffe2lite.test_util' (x.py)",
     ("missing attribute", "caffe2lite.test_util.rand_array")),
    ("AttributeError: module 'caffe2lite.utils' has no attribute 'debug'",
     ("missing attribute", "caffe2lite.utils.debug")),
    ("AssertionError: Arrays are not almost equal to 7 decimals",
     ("assertion", "AssertionError: Arrays are not almost equal to # decimals")),
])
def test_failure_lines_are_classified(line, expected):
    assert caffe2_suite.classify(line) == expected


def test_a_run_reports_passes_failures_and_causes(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "mixed_test.py").write_text(sample('''\
        import unittest
        import numpy as np
        from {c2}.python import core, workspace

        class T(unittest.TestCase):
            def test_relu(self):
                workspace.FeedBlob("x", np.array([-1.0, 2.0], np.float32))
                workspace.RunOperatorOnce(core.CreateOperator("Relu", ["x"], ["y"]))
                np.testing.assert_array_equal(workspace.FetchBlob("y"), [0.0, 2.0])
            def test_missing(self):
                workspace.RunOperatorOnce(core.CreateOperator("NoSuchOp", [], ["y"]))
            @unittest.skip("not here")
            def test_skipped(self):
                pass
        '''))
    (suite / "broken_test.py").write_text(sample("from {c2}.python import no_such_module\n"
                                                 "def test_one():\n    pass\n"))
    report = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "caffe2_suite.py"), str(suite),
                           "--report", str(report), "--jobs", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "**Pass rate: 1 / 4 tests = 25.0%**" in text
    assert "| mixed_test.py | 3 | 1 | 1 | 0 | 1 |" in text
    assert "| broken_test.py | 1 | 0 | 0 | 1 | 0 |" in text
    assert "| 1 | `NoSuchOp` |" in text
    assert "no_such_module" in text


def test_compat_getargspec_is_a_named_tuple():
    # Caffe2's tests read inspect.getargspec(f).defaults (matmul_op_test); run in a
    # child process, as the compat code changes numpy and inspect for good.
    probe = caffe2_suite.COMPAT_SOURCE + textwrap.dedent('''
        def f(a, b, threshold=1e-4, *rest, **options):
            pass
        spec = inspect.getargspec(f)
        assert spec.args == ["a", "b", "threshold"] and spec.defaults == (1e-4,), spec
        assert (spec.varargs, spec.keywords) == ("rest", "options")
        ''')
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
