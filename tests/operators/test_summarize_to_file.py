"""Summarize's to_file: one line of '%g' numbers per run in <root>/<input>.summary, as
Caffe2's summarize_op.h wrote it (the file started afresh by the op's first run)."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot


def stats(x):
    x64 = x.astype(np.float64)
    return [x.min(), x.max(), x64.mean(), x64.std(ddof=1)]


def test_each_run_appends_a_line_in_the_root_folder(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    (tmp_path / "scope#w.summary").write_text("left by an earlier process\n")
    net = core.Net("m2_summaries")
    net.Summarize("scope/w", [], to_file=1)
    workspace.FeedBlob("scope/w", np.zeros(2, np.float32))
    workspace.CreateNet(net)
    rows = []
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(20).astype(np.float32)
        workspace.FeedBlob("scope/w", x)
        workspace.RunNet(net)
        rows.append(stats(x))
    lines = (tmp_path / "scope#w.summary").read_text().splitlines()
    assert len(lines) == 3  # the old content went with the op's first run
    for line, want in zip(lines, rows):
        got = [float(v) for v in line.split(" ")]
        np.testing.assert_allclose(got, want, rtol=1e-5)  # '%g' keeps 6 digits
        assert line == " ".join("%g" % np.float32(v) for v in want)


def test_the_output_is_given_too_and_a_bad_input_writes_nothing(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    x = np.arange(4, dtype=np.float32)
    workspace.FeedBlob("x", x)
    workspace.RunOperatorOnce(core.CreateOperator("Summarize", ["x"], ["s"], to_file=1))
    np.testing.assert_allclose(workspace.FetchBlob("s"), stats(x), rtol=1e-6)
    assert (tmp_path / "x.summary").read_text().count("\n") == 1
    workspace.FeedBlob("e", np.zeros(0, np.float32))
    before = snapshot()
    with pytest.raises(EnforceError, match="non-empty float"):
        workspace.RunOperatorOnce(core.CreateOperator("Summarize", ["e"], [], to_file=1))
    assert_unchanged(before)
    assert not (tmp_path / "e.summary").exists()
