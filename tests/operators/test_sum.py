"""Sum of n same-shape tensors, and its gradient (each input gets the output gradient)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.runtime import registry


def feed(arrays):
    names = [f"x{i}" for i in range(len(arrays))]
    for name, a in zip(names, arrays):
        workspace.FeedBlob(name, a)
    return names


@given(n=st.integers(1, 5), shape=st.lists(st.integers(0, 3), max_size=3),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64]))
def test_sum_matches_numpy(n, shape, dtype):
    rng = np.random.default_rng(n)
    arrays = [np.asarray(rng.standard_normal(shape) * 100).astype(dtype) for _ in range(n)]
    names = feed(arrays)
    workspace.RunOperatorOnce(core.CreateOperator("Sum", names, ["s"]))
    s = workspace.FetchBlob("s")
    expected = arrays[0].copy()
    for a in arrays[1:]:
        expected = expected + a
    assert s.dtype == dtype and s.shape == tuple(shape)
    np.testing.assert_array_equal(s, expected)


def test_sum_in_place_on_the_first_input_and_inputs_untouched():
    a, b = np.ones(3, np.float32), np.arange(3, dtype=np.float32)
    names = feed([a, b])
    workspace.RunOperatorOnce(core.CreateOperator("Sum", names, ["x0"]))
    np.testing.assert_array_equal(workspace.FetchBlob("x0"), a + b)
    np.testing.assert_array_equal(workspace.FetchBlob("x1"), b)


def test_single_input_sum_is_a_copy():
    feed([np.arange(4.0)])
    workspace.RunOperatorOnce(core.CreateOperator("Sum", ["x0"], ["s"]))
    blobs = workspace.current().blobs
    assert not np.shares_memory(blobs["s"], blobs["x0"])


@pytest.mark.parametrize("arrays, output, error, match", [
    ([np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)], "s", EnforceError,
     "input 1 \\(blob 'x1'\\) has shape \\(3, 2\\).*blob 'x0'.*shape \\(2, 3\\)"),
    ([np.ones((2, 3), np.float32), np.ones((3,), np.float32)], "s", EnforceError,
     "input 1 \\(blob 'x1'\\) has shape \\(3,\\)"),
    ([np.ones(2, np.float32), np.ones(2, np.float64)], "s", EnforceError,
     "blob 'x1'.*dtype float64.*float32"),
    ([np.ones(2, np.bool_), np.ones(2, np.bool_)], "s", EnforceError,
     "blob 'x0'.*bool.*Sum supports"),
    ([np.ones(2, np.float32), np.ones(2, np.float32)], "x1", SchemaError,
     "input 1 and output 0 are both blob 'x1'"),
])
def test_sum_bad_input_names_blobs_and_changes_nothing(arrays, output, error, match):
    names = feed(arrays)
    workspace.FeedBlob("s", np.array([5.0]))
    with pytest.raises(error, match=match) as info:
        workspace.RunOperatorOnce(core.CreateOperator("Sum", names, [output]))
    assert "Sum" in str(info.value)
    for name, a in zip(names, arrays):
        np.testing.assert_array_equal(workspace.FetchBlob(name), a)
        assert workspace.FetchBlob(name).dtype == a.dtype
    np.testing.assert_array_equal(workspace.FetchBlob("s"), [5.0])


def test_sum_gradient_gives_every_input_the_output_gradient():
    maker = registry.get_schema("Sum").gradient
    op = core.CreateOperator("Sum", ["a", "b", "c"], ["s"])
    assert maker(op, ["s_grad"]) == ([], ["s_grad", "s_grad", "s_grad"])
    sparse = core.GradientSlice("i", "v")
    assert maker(op, [sparse]) == ([], [sparse] * 3)
