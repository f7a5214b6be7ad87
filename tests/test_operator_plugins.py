"""A user's operators reach every program: --import, CAFFE2LITE_IMPORT, entry points.

Each case runs in a fresh process (the registry lists plugin packages once, at
its first question), with a throw-away operator module written to tmp_path; the
entry point comes from a dist-info folder on PYTHONPATH, as an installed
distribution would declare it, so nothing is installed into the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caffe2lite.runtime import registry

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("caffe2lite")  # the console script pip installed
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "caffe2lite"]

TRIPLE_OPS = '''
from caffe2lite.runtime import OpSchema, register_kernel, register_schema

register_schema(OpSchema("PluginTriple", num_inputs=1, num_outputs=1, doc="Y = 3 X."))


@register_kernel("PluginTriple")
def triple(ctx, x):
    return (x * 3,)
'''

NET = '''
name: "uses_a_plugin"
op { output: "x" type: "ConstantFill" arg { name: "shape" ints: 2 } arg { name: "value" f: 1.5 } }
op { input: "x" output: "y" type: "PluginTriple" }
external_output: "y"
'''


@pytest.fixture
def plugin(tmp_path):
    (tmp_path / "triple_ops.py").write_text(TRIPLE_OPS)
    (tmp_path / "net.pbtxt").write_text(NET)
    return tmp_path


def _run(argv, cwd, **env):
    environ = {k: v for k, v in os.environ.items() if k != registry.IMPORT_ENV}
    return subprocess.run(argv, cwd=cwd, env=dict(environ, **env), capture_output=True,
                          text=True, timeout=120)


def test_import_flag_before_or_after_the_command_finds_a_module_in_the_current_folder(plugin):
    unknown = _run([*CLI, "ops", "PluginTriple"], plugin)
    assert unknown.returncode == 1 and "unknown operator type 'PluginTriple'" in unknown.stderr
    before = _run([*CLI, "--import", "triple_ops", "ops", "PluginTriple"], plugin)
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith("PluginTriple\n") and "Y = 3 X." in before.stdout
    after = _run([*CLI, "run", "net.pbtxt", "--import", "triple_ops"], plugin)
    assert after.returncode == 0, after.stderr
    assert "[4.5 4.5]" in after.stdout  # 3 * 1.5


def test_a_module_that_cannot_be_imported_is_named_with_its_source(plugin):
    flag = _run([*CLI, "ops", "--import", "no_such_ops", "--import", "triple_ops"], plugin)
    assert flag.returncode == 1 and "Traceback" not in flag.stderr
    assert flag.stderr == ("caffe2lite: error: operator package 'no_such_ops', named by "
                           "--import no_such_ops, cannot be imported: No module named "
                           "'no_such_ops'\n")
    env = _run([*CLI, "ops", "Relu"], plugin, CAFFE2LITE_IMPORT="triple_ops, gone_ops")
    assert env.returncode == 1
    assert ("operator package 'gone_ops', named by CAFFE2LITE_IMPORT=triple_ops, gone_ops, "
            "cannot be imported") in env.stderr


def test_CAFFE2LITE_IMPORT_serves_any_program(plugin):
    (plugin / "other_ops.py").write_text(TRIPLE_OPS.replace("Triple", "Other")
                                         .replace("3 X", "X + 1").replace("x * 3", "x + 1"))
    script = ("import numpy as np\n"
              "from caffe2lite import core, workspace\n"
              "workspace.FeedBlob('x', np.array([1.0, 2.0], np.float32))\n"
              "net = core.Net('n')\n"
              "net.PluginOther(net.PluginTriple('x', 't'), 'y')\n"
              "workspace.RunNetOnce(net)\n"
              "print(workspace.FetchBlob('y').tolist())\n")
    done = _run([sys.executable, "-c", script], plugin, CAFFE2LITE_IMPORT="triple_ops,other_ops",
                PYTHONPATH=str(plugin))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[4.0, 7.0]\n"


def _distribution(site: Path, name: str, entry_points: str) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info folder."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_an_entry_point_declares_operators(plugin, monkeypatch):
    site = plugin / "site"
    _distribution(site, "tripleplugin", "[caffe2lite.operators]\ntriple = triple_ops\n")
    (plugin / "triple_ops.py").rename(site / "triple_ops.py")
    monkeypatch.syspath_prepend(str(site))
    assert ("triple_ops", "entry point 'triple' of tripleplugin (group caffe2lite.operators)") \
        in registry.plugin_packages({})
    done = _run([*CLI, "run", "net.pbtxt"], plugin, PYTHONPATH=str(site))
    assert done.returncode == 0, done.stderr
    assert "[4.5 4.5]" in done.stdout


def test_plugin_packages_reads_the_environment_variable_in_order():
    names = [name for name, _ in registry.plugin_packages({"CAFFE2LITE_IMPORT": " a.b ,c,, "})]
    assert names[:2] == ["a.b", "c"]
