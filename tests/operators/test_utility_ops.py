"""Print, LengthsToShape and Range."""

import logging

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import run_op


def test_print_logs_and_writes_file(caplog, tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    workspace.FeedBlob("t", np.array([[1.5, 2.0], [3.0, 1e-5]], np.float32))
    with caplog.at_level(logging.INFO, logger="caffe2lite"):
        workspace.RunOperatorOnce(core.CreateOperator("Print", ["t"], [], limit=3))
    assert "Tensor t of type float. Dims: (2,2,): 1.5,2,3" in caplog.text
    net = core.Net("printing")
    net.Print("t", [], to_file=1, every_n=2)
    workspace.CreateNet(net)
    for _ in range(3):
        workspace.RunNet("printing")  # runs 1 and 3 print
    lines = (tmp_path / "t.log").read_text().splitlines()
    assert lines == ["Tensor t of type float. Dims: (2,2,): 1.5,2,3,1e-05"] * 2
    workspace.ResetWorkspace()


@given(st.integers(0, 5), st.integers(0, 4))
def test_lengths_to_shape(n, length):
    (shape,) = run_op("LengthsToShape", {"l": np.full(n, length, np.int32)}, "s")
    np.testing.assert_array_equal(shape, [n, length if n else 0])
    assert shape.dtype == np.int32


def test_lengths_to_shape_refuses_unequal():
    assert_fails_unchanged(core.CreateOperator("LengthsToShape", ["l"], ["s"]),
                           {"l": np.array([2, 3], np.int32)}, EnforceError, "must be same")


@given(st.sampled_from([np.int32, np.int64, np.float32, np.float64]),
       st.integers(-5, 5), st.integers(-5, 12), st.sampled_from([1, 2, 3, -1, -2]),
       st.integers(1, 3))
def test_range_matches_arange(dtype, start, stop, step, n_inputs):
    values = [stop] if n_inputs == 1 else [start, stop] if n_inputs == 2 else [start, stop, step]
    names = ["a", "b", "c"][:n_inputs]
    (y,) = run_op("Range", {k: np.array(v, dtype) for k, v in zip(names, values)}, "y")
    want = np.arange(*[dtype(v) for v in values]).astype(dtype)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, want)


def test_range_errors():
    op = core.CreateOperator("Range", ["a", "b", "c"], ["y"])
    assert_fails_unchanged(op, {"a": np.array(0), "b": np.array(3), "c": np.array(0)},
                           EnforceError, "Step size cannot be 0")
    assert_fails_unchanged(op, {"a": np.array(0), "b": np.array(3.0), "c": np.array(1)},
                           EnforceError, "one type")
    with pytest.raises(EnforceError, match="scalar"):
        run_op("Range", {"s": np.array([1, 2])}, "y")
