"""caffe2lite.dyndep: InitOpsLibrary loads Python operator files and modules, knows
Caffe2's own library names, refuses C++ libraries and ignores the rest, as Caffe2 did."""

from __future__ import annotations

import logging
import textwrap

import numpy as np
import pytest

from caffe2lite import core, dyndep, workspace
from caffe2lite.errors import OperatorNotRegistered
from caffe2lite.runtime import registry

OPS_SOURCE = textwrap.dedent('''\
    from caffe2lite.runtime import OpSchema, register_kernel, register_schema

    register_schema(OpSchema("{op}", num_inputs=1, num_outputs=1, doc="Y = 3 * X"))
    register_kernel("{op}")(lambda ctx, x: (3 * x,))
    ''')


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test starts with no library loaded and drops the operators it registers."""
    monkeypatch.setattr(dyndep, "_IMPORTED_DYNDEPS", set())
    with registry.isolated():
        yield


def _run_triple(op_type):
    workspace.FeedBlob("x", np.array([1.0, -2.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator(op_type, ["x"], ["y"]))
    return workspace.FetchBlob("y")


def test_a_python_file_registers_its_operators_once(tmp_path):
    path = tmp_path / "triple_ops.py"
    path.write_text(OPS_SOURCE.format(op="DyndepFileTriple"))
    assert not core.IsOperator("DyndepFileTriple")
    dyndep.InitOpsLibrary(str(path))
    assert core.IsOperator("DyndepFileTriple")
    np.testing.assert_array_equal(_run_triple("DyndepFileTriple"), [3.0, -6.0])
    dyndep.InitOpsLibrary(str(path))  # loaded: not run again (a second register_schema
    # of the op would raise SchemaError)
    assert str(path) in dyndep.GetImportedOpsLibraries()


def test_an_importable_module_name(tmp_path, monkeypatch):
    package = tmp_path / "dyndep_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "quad_ops.py").write_text(OPS_SOURCE.format(op="DyndepModuleTriple"))
    monkeypatch.syspath_prepend(str(tmp_path))
    dyndep.InitOpsLibrary("dyndep_pkg.quad_ops")
    np.testing.assert_array_equal(_run_triple("DyndepModuleTriple"), [3.0, -6.0])
    assert dyndep.GetImportedOpsLibraries() == {"dyndep_pkg.quad_ops"}


def test_a_broken_file_raises_and_is_not_recorded(tmp_path):
    path = tmp_path / "broken_ops.py"
    path.write_text("raise RuntimeError('no operators today')\n")
    with pytest.raises(RuntimeError, match="no operators today"):
        dyndep.InitOpsLibrary(str(path))
    assert dyndep.GetImportedOpsLibraries() == set()


def test_a_shared_library_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "libmy_ops.so"
    path.write_bytes(b"\x7fELF")
    with pytest.raises(OperatorNotRegistered, match="shared library of C.. Caffe2 "
                                                    "operators.*register_schema"):
        dyndep.InitOpsLibrary(str(path))


@pytest.mark.parametrize("name", ["@/caffe2/caffe2/mpi:mpi_ops", "//caffe2/caffe2/mpi:mpi_ops"])
def test_a_caffe2_library_caffe2lite_lacks_warns_with_the_missing_ops(name, caplog):
    with caplog.at_level(logging.DEBUG, logger="caffe2lite.dyndep"):
        dyndep.InitOpsLibrary(name)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MPIBroadcast" in warnings[0].getMessage()
    assert dyndep.GetImportedOpsLibraries() == set()


def test_a_caffe2_library_caffe2lite_has_is_a_debug_no_op(monkeypatch, caplog):
    monkeypatch.setitem(dyndep.CAFFE2_LIBRARIES, "caffe2_fake_ops", ("Relu", "Sigmoid"))
    with caplog.at_level(logging.DEBUG, logger="caffe2lite.dyndep"):
        dyndep.InitOpsLibrary("/opt/caffe2/lib/libcaffe2_fake_ops.so")  # not a file here
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "nothing to load" in caplog.records[0].getMessage()


def test_anything_else_is_ignored_with_a_warning_as_caffe2_did(caplog):
    with caplog.at_level(logging.WARNING, logger="caffe2lite.dyndep"):
        dyndep.InitOpsLibrary("/nowhere/custom_ops.so")
        dyndep.InitOpsLibrary("not a module name")
    assert [r.getMessage().split(" as ")[0] for r in caplog.records] == [
        "Ignoring /nowhere/custom_ops.so", "Ignoring not a module name"]
    assert dyndep.GetImportedOpsLibraries() == set()
