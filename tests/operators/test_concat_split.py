"""Concat / Split against numpy.concatenate / stack / split written here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import registry
from caffe2lite.testing import check_gradient, check_reference


@settings(max_examples=20)
@given(sizes=st.lists(st.integers(0, 3), min_size=1, max_size=4), axis=st.integers(-3, 2),
       seed=st.integers(0, 2**16))
def test_concat_matches_numpy(sizes, axis, seed):
    rng = np.random.default_rng(seed)
    ax = axis % 3
    shapes = [tuple(s if d == ax else 2 for d in range(3)) for s in sizes]
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"X{i}" for i in range(len(inputs))]
    op = core.CreateOperator("Concat", names, ["Y", "split_info"], axis=axis)
    _, info = check_reference(op, inputs, lambda *xs: (np.concatenate(xs, axis=ax),
                                                       np.array(sizes, np.int32)))
    assert info.dtype == np.int32


def test_concat_add_axis_stacks_and_order_picks_the_channel_axis():
    a, b = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    op = core.CreateOperator("Concat", ["a", "b"], ["Y", "info"], axis=1, add_axis=1)
    check_reference(op, [a, b], lambda a, b: (np.stack([a, b], axis=1), np.array([1, 1])))
    op = core.CreateOperator("Concat", ["a", "b"], ["Y", "info"])          # NCHW: axis 1
    check_reference(op, [a, b], lambda a, b: (np.concatenate([a, b], 1), np.array([3, 3])))
    x = np.zeros((1, 2, 2, 3))
    op = core.CreateOperator("Concat", ["a", "b"], ["Y", "info"], order="NHWC")
    check_reference(op, [x, x], lambda a, b: (np.concatenate([a, b], 3), np.array([3, 3])))


@settings(max_examples=20)
@given(sizes=st.lists(st.integers(0, 3), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       how=st.sampled_from(["arg", "input"]))
def test_split_matches_numpy(sizes, seed, how):
    X = np.random.default_rng(seed).standard_normal((2, sum(sizes), 3))
    outputs = [f"Y{i}" for i in range(len(sizes))]
    expected = lambda X, *rest: tuple(np.split(X, np.cumsum(sizes)[:-1], axis=1))  # noqa: E731
    if how == "arg":
        op = core.CreateOperator("Split", ["X"], outputs, axis=1, split=sizes)
        check_reference(op, [X], expected)
    else:
        op = core.CreateOperator("Split", ["X", "s"], outputs, axis=1)
        check_reference(op, [X, np.array(sizes, np.int32)], expected)


def test_split_equal_parts_and_add_axis():
    X = np.arange(24.0).reshape(2, 6, 2)
    op = core.CreateOperator("Split", ["X"], ["a", "b", "c"])
    check_reference(op, [X], lambda X: tuple(np.split(X, 3, axis=1)))
    op = core.CreateOperator("Split", ["X"], ["a", "b"], axis=0, add_axis=1)
    check_reference(op, [X], lambda X: (X[0], X[1]))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_concat_gradient_by_finite_differences(index):
    rng = np.random.default_rng(index)
    inputs = [rng.standard_normal((2, n)) for n in (1, 3, 2)]
    op = core.CreateOperator("Concat", ["a", "b", "c"], ["Y", "info"], axis=-1)
    check_gradient(op, inputs, index)
    op = core.CreateOperator("Concat", ["a", "b"], ["Y", "info"], axis=0, add_axis=1)
    check_gradient(op, [inputs[1], inputs[1] + 1], min(index, 1))


def test_split_gradient_by_finite_differences():
    # a gradient for one output only: the other contributes zeros via ConstantFill
    if registry.get_schema("ConstantFill") is None:
        pytest.skip("ConstantFill is not registered (it comes with the basic ops)")
    # float32: ConstantFill's zeros are float32 unless told otherwise
    X = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    op = core.CreateOperator("Split", ["X"], ["a", "b"], axis=1, split=[2, 3])
    for out in (0, 1):
        check_gradient(op, [X], 0, output_index=out)


def test_split_gradient_concatenates_with_the_forward_axis():
    op = core.CreateOperator("Split", ["X"], ["a", "b"], axis=0, split=[1, 2])
    grad_ops, g_input = core.GradientRegistry.GetGradientForOp(op, ["a_grad", "b_grad"])
    assert g_input == ["X_grad"]
    (concat,) = grad_ops
    assert concat.type == "Concat" and list(concat.input) == ["a_grad", "b_grad"]
    assert list(concat.output) == ["X_grad", "_X_grad_dims"]
    assert {a.name for a in concat.arg} == {"axis"}
    a, b = np.ones((1, 2)), np.arange(4.0).reshape(2, 2)
    workspace.FeedBlob("a_grad", a)
    workspace.FeedBlob("b_grad", b)
    workspace.RunOperatorOnce(concat)
    np.testing.assert_array_equal(workspace.FetchBlob("X_grad"), np.concatenate([a, b]))


def test_concat_gradient_is_split_on_split_info():
    op = core.CreateOperator("Concat", ["a", "b"], ["Y", "info"], axis=0)
    (split,), g_input = core.GradientRegistry.GetGradientForOp(op, ["Y_grad", None])
    assert g_input == ["a_grad", "b_grad"]
    assert split.type == "Split" and list(split.input) == ["Y_grad", "info"]
    assert core.GradientRegistry.GetGradientForOp(op, [None, None]) == ([], [None, None])


@pytest.mark.parametrize("op, inputs, message", [
    (("Concat", ["a", "b"], ["Y", "i"], {"axis": 0}), [np.ones((2, 3)), np.ones((2, 2))],
     r"input 1 \(blob 'b'\) has shape \(2, 2\).*input 0 .*\(blob 'a'\).*except along axis 0"),
    (("Concat", ["a", "b"], ["Y", "i"], {"axis": 2}), [np.ones((2, 3)), np.ones((2, 3))],
     "axis 2 is out of range for rank 2"),
    (("Concat", ["a", "b"], ["Y", "i"], {}), [np.ones((1, 2)), np.ones((1, 2), np.float32)],
     r"input 1 \(blob 'b'\) has dtype float32, but input 0 .*\(blob 'a'\) has float64"),
    (("Concat", ["a"], ["Y", "i"], {"axis": 0, "order": "NHWC"}), [np.ones(2)],
     "shouldn't specify both"),
    (("Split", ["a"], ["Y", "Z"], {"axis": 0, "split": [1, 1]}), [np.ones(3)],
     r"split lengths \[1, 1\] add up to 2, but dimension 0 of input 0 'input' \(blob 'a'\) "
     r"is 3"),
    (("Split", ["a"], ["Y", "Z"], {"axis": 0}), [np.ones(3)], "not divisible into 2"),
    (("Split", ["a", "s"], ["Y"], {"axis": 0, "split": [3]}), [np.ones(3), np.array([3])],
     "do not pass in split in the argument"),
])
def test_bad_input_fails_and_leaves_blobs_unchanged(op, inputs, message):
    op_type, ins, outs, kwargs = op
    for name, value in zip(ins, inputs):
        workspace.FeedBlob(name, value)
    workspace.FeedBlob(outs[0], np.array([7.0]))
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ins, outs, **kwargs))
    np.testing.assert_array_equal(workspace.FetchBlob(outs[0]), [7.0])


@pytest.mark.parametrize("x", [np.array([1.5, -2.0], np.float32),
                               np.array([b"ab", b"cd"], dtype=object)])
def test_split_add_axis_of_a_vector_gives_0d_tensors(x):
    # Each output drops the split axis: a vector gives scalars (0-d tensors, not
    # NumPy scalars or bare objects), of the input's dtype.
    workspace.FeedBlob("X", x)
    workspace.RunOperatorOnce(core.CreateOperator("Split", ["X"], ["a", "b"], axis=0,
                                                  add_axis=1))
    for name, expected in zip("ab", x):
        out = workspace.FetchBlob(name)
        assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == x.dtype
        assert out[()] == expected
