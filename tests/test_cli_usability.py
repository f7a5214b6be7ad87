"""The `caffe2lite` command where a new user trips: closed pipes, feeds, missing operators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caffe2lite import cli

CLI = Path(sys.executable).with_name("caffe2lite")  # the console script pip installed


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv", [["ops"], ["ops", "Relu"]])
def test_a_closed_pipe_is_a_normal_end(argv):
    """`caffe2lite ops | head`: the reader is gone before anything is written (the
    read end is closed at once), so every write meets a broken pipe."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen([CLI, *argv], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)
    _, err = child.communicate(timeout=120)
    assert (child.returncode, err) == (0, b"")
