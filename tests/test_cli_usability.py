"""The `caffe2lite` command where a new user trips: closed pipes, feeds, missing operators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caffe2lite import cli, workspace

_SCRIPT = Path(sys.executable).with_name("caffe2lite")  # the console script pip installed
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "caffe2lite"]


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv", [["ops"], ["ops", "Relu"]])
def test_a_closed_pipe_is_a_normal_end(argv):
    """`caffe2lite ops | head`: the reader is gone before anything is written (the
    read end is closed at once), so every write meets a broken pipe."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen([*CLI, *argv], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)
    _, err = child.communicate(timeout=120)
    assert (child.returncode, err) == (0, b"")


PREDICT = """
name: "classifier"
external_input: "data"
external_input: "w"
external_input: "b"
op { input: "data" input: "w" input: "b" output: "y" type: "FC" }
external_output: "y"
"""

INIT = """
name: "classifier_init"
op { output: "w" type: "ConstantFill" arg { name: "shape" ints: 3 ints: 4 }
     arg { name: "value" f: 0.5 } }
op { output: "b" type: "ConstantFill" arg { name: "shape" ints: 3 } }
"""


@pytest.fixture
def nets(tmp_path):
    (tmp_path / "predict.pbtxt").write_text(PREDICT)
    (tmp_path / "init.pbtxt").write_text(INIT)
    return tmp_path


def test_a_feed_the_net_does_not_read_is_refused_naming_its_data_inputs(nets, capsys):
    rc, out, err = _run(capsys, "run", nets / "predict.pbtxt", "--init", nets / "init.pbtxt",
                        "--feed", "dta=random:2,4")
    assert (rc, out) == (1, "")
    assert err == ("caffe2lite: error: --feed dta: net \"classifier\" has no input 'dta'; "
                   "its data inputs: data\n")
    rc, out, err = _run(capsys, "run", nets / "predict.pbtxt", "--init", nets / "init.pbtxt",
                        "--feed", "data=zeros:2,4")
    assert rc == 0, err
    assert "[[0. 0. 0.]" in out  # 0 . 0.5 + 0


def test_without_an_init_net_every_input_is_data_and_random_init_checks_first(nets, capsys):
    rc, _, err = _run(capsys, "run", nets / "predict.pbtxt", "--feed", "dta=zeros:2,4")
    assert rc == 1 and err.endswith("has no input 'dta'; its data inputs: data, w, b\n")
    rc, _, err = _run(capsys, "run", nets / "predict.pbtxt", "--width", "w=3",
                      "--feed", "dta=zeros:2,4")  # before param_init asks for data's shape
    assert rc == 1 and "--feed dta" in err


def test_a_net_without_declared_inputs_takes_the_blobs_it_reads(tmp_path, capsys):
    (tmp_path / "bare.pbtxt").write_text('name: "bare"\n'
                                         'op { input: "x" output: "y" type: "Relu" }\n'
                                         'op { input: "y" output: "z" type: "Relu" }\n')
    rc, out, err = _run(capsys, "run", tmp_path / "bare.pbtxt", "--feed", "x=zeros:2",
                        "--fetch", "z")
    assert rc == 0, err
    workspace.ResetWorkspace()  # as a new `caffe2lite` process would start
    rc, _, err = _run(capsys, "run", tmp_path / "bare.pbtxt", "--feed", "y=zeros:2")
    assert rc == 1 and "has no input 'y'; its data inputs: x" in err


def test_missing_operators_are_reported_before_anything_else(tmp_path, capsys):
    """Without the check, --random-init failed first on FC's weight: no shape function
    gives the shape of the missing operator's output."""
    (tmp_path / "needs.pbtxt").write_text(
        'name: "needs"\nexternal_input: "data"\nexternal_input: "w"\nexternal_input: "b"\n'
        'op { input: "data" output: "h" type: "NoSuchNorm" }\n'
        'op { input: "h" input: "w" input: "b" output: "y" type: "FC" }\n'
        'op { input: "y" output: "z" type: "NoSuchSoftmax" }\n')
    rc, _, err = _run(capsys, "run", tmp_path / "needs.pbtxt", "--width", "w=3",
                      "--feed", "data=zeros:2,4")
    assert rc == 1
    assert err == ('caffe2lite: error: net "needs" uses operators not implemented in '
                   'caffe2lite: NoSuchNorm, NoSuchSoftmax (`caffe2lite show` summarises the '
                   'net)\n')


def test_the_model_zoo_placeholder_input_can_be_fed(nets_dir, capsys):
    """TrafficLight's init net sets ``data`` to a one-element placeholder: still an input."""
    stem = nets_dir / "Miyuan2018__TrafficLight-Test__"
    rc, _, err = _run(capsys, "run", f"{stem}predict_net.pb", "--init", f"{stem}init_net.pb",
                      "--feed", "dta=zeros:1,3,32,32")
    assert rc == 1 and err.endswith("has no input 'dta'; its data inputs: data\n")
