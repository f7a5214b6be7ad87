"""Packaging: operators/ installs as caffe2lite.operators, never as a bare top-level package.

A top-level ``operators`` in site-packages would collide with any other
distribution of that name (issue #11, part 5).
"""

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import caffe2lite.operators
from caffe2lite.runtime import registry

ROOT = Path(__file__).resolve().parents[1]


def test_distribution_installs_one_top_level_package():
    top_level = importlib.metadata.distribution("caffe2lite").read_text("top_level.txt")
    assert top_level.split() == ["caffe2lite"]


def test_operators_folder_is_the_namespaced_package():
    assert Path(caffe2lite.operators.__file__).resolve().parent == ROOT / "operators"
    assert "caffe2lite.operators.relu" in _modules_after_registry_load()


def _modules_after_registry_load():
    registry.load_operator_packages()
    return sys.modules


def test_no_bare_operators_package_outside_the_repository(tmp_path):
    # Run from elsewhere so the repository root is not on sys.path.
    code = ("import importlib.util, caffe2lite.operators as ops;"
            "print(importlib.util.find_spec('operators') is None, ops.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["True", "caffe2lite.operators"]


def test_user_operator_module_registers_from_anywhere(tmp_path, monkeypatch):
    module = tmp_path / "my_user_ops.py"
    module.write_text(
        "from caffe2lite.runtime.registry import register_kernel, register_schema\n"
        "from caffe2lite.runtime.op_schema import OpSchema\n"
        "register_schema(OpSchema('PackagingTestNegate', num_inputs=1, num_outputs=1))\n"
        "@register_kernel('PackagingTestNegate')\n"
        "def negate(ctx, x):\n"
        "    return (-x,)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.util.find_spec("my_user_ops") is not None
    import my_user_ops  # noqa: F401  (registers at import)
    import numpy as np

    from caffe2lite import core, workspace
    workspace.FeedBlob("x", np.arange(3, dtype=np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("PackagingTestNegate", ["x"], ["y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), -np.arange(3, dtype=np.float32))


def _make_dry_run(target, tmp_path):
    """The commands ``make TARGET`` would run on a fresh machine (a venv not yet made)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed here")
    done = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_demo_installs_the_runtime_only(tmp_path):
    """The demo needs NumPy, protobuf, tqdm and threadpoolctl, not Ray or pytest."""
    installs = _make_dry_run("demo", tmp_path)
    assert [line.split("pip install")[1].strip() for line in installs] == ["-q --upgrade pip",
                                                                          "-q -e ."]


def test_make_test_installs_the_test_extras(tmp_path):
    installs = _make_dry_run("test", tmp_path)
    assert installs[-1].split("pip install")[1].strip() == "-q -e '.[test]'"
