"""Undeclared operator arguments: ignored with one warning (Caffe2's behaviour), or errors
with the strict switch; declared arguments of the wrong type are errors either way."""

import logging
import subprocess
import sys

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError
from helpers import assert_unchanged, snapshot


def test_an_undeclared_argument_is_ignored_with_one_warning_per_type_and_name(caplog,
                                                                             monkeypatch):
    from caffe2lite.runtime import arguments

    monkeypatch.setattr(arguments, "_warned", set())  # as in a fresh process
    workspace.FeedBlob("x", np.array([-1.0, 2.0], np.float32))
    with caplog.at_level(logging.WARNING, logger="caffe2lite"):
        for _ in range(3):  # Caffe2's test helpers pass counter_halflife to every optimizer
            workspace.RunOperatorOnce(core.CreateOperator(
                "Scale", ["x"], ["y"], scale=3.0, counter_halflife=-1))
        workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["z"], scale=3.0,
                                                      ws_nbytes_limit=5, mystery="a"))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [-3.0, 6.0])
    warnings = [r.getMessage() for r in caplog.records if "is not one" in r.getMessage()]
    assert len(warnings) == 2, warnings  # counter_halflife once, mystery once; the
    assert "'counter_halflife'" in warnings[0] and "Scale takes (scale)" in warnings[0]
    assert "'mystery'" in warnings[1]    # runtime arguments (ws_nbytes_limit) say nothing


def test_a_declared_argument_of_the_wrong_type_is_still_an_error():
    workspace.FeedBlob("x", np.ones(2, np.float32))
    before = snapshot()
    with pytest.raises(ArgumentError, match=r"argument 'scale' must be float"):
        workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["y"], scale="big"))
    assert_unchanged(before)


def test_strict_switch_refuses_undeclared_arguments_naming_op_and_argument(strict_args):
    workspace.FeedBlob("x", np.ones(2, np.float32))
    net = core.Net("strict")
    net.Relu("x", "r")
    net.Scale("r", "y", scale=2.0, sclae=1.0)
    before = snapshot()
    with pytest.raises(ArgumentError, match=r"op #1 Scale in net \"strict.*\": unknown "
                                            r"argument 'sclae' \(Scale takes: scale; strict"):
        workspace.CreateNet(net)
    assert_unchanged(before)


def test_strict_switch_from_the_environment_and_the_command_line(tmp_path):
    net = tmp_path / "net.pbtxt"
    net.write_text('name: "n" op { input: "x" output: "y" type: "Scale" '
                   'arg { name: "scale" f: 2.0 } arg { name: "sclae" f: 1.0 } }')
    x = tmp_path / "x.npy"
    np.save(x, np.ones(2, np.float32))
    command = [sys.executable, "-m", "caffe2lite", "run", str(net), "--feed", f"x={x}"]
    lenient = subprocess.run(command, capture_output=True, text=True)
    assert lenient.returncode == 0, lenient.stderr
    assert "'sclae'" in lenient.stderr and "ignored" in lenient.stderr
    strict = subprocess.run(command + ["--strict-args"], capture_output=True, text=True)
    assert strict.returncode != 0 and "unknown argument 'sclae'" in strict.stderr
    import os
    env_strict = subprocess.run(command, capture_output=True, text=True,
                                env={**os.environ, "CAFFE2LITE_STRICT_ARGS": "1"})
    assert env_strict.returncode != 0 and "unknown argument 'sclae'" in env_strict.stderr
