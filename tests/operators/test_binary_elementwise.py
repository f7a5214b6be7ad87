"""Add and Mul (both broadcasting modes) and their gradients, against NumPy written here."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, EnforceError, GradientError, SchemaError
from caffe2lite.runtime import registry
from helpers import assert_unchanged, snapshot

NUMPY_FN = {"Add": np.add, "Mul": np.multiply}


def run(op_type, a, b, **kwargs):
    workspace.FeedBlob("A", a)
    workspace.FeedBlob("B", b)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, ["A", "B"], ["C"], **kwargs))
    return workspace.FetchBlob("C")


def legacy_view(a_shape, b_shape, axis=-1):
    """B reshaped for Caffe2's documented broadcast=1 rule: B's dims sit at A's `axis`
    (suffix matching by default), or B holds one element."""
    if int(np.prod(b_shape)) == 1:
        return (1,) * len(a_shape)
    if axis == -1:
        axis = len(a_shape) - len(b_shape)
    return (1,) * axis + tuple(b_shape) + (1,) * (len(a_shape) - axis - len(b_shape))


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_same_shape(op_type, dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4)) * 10).astype(dtype)
    b = (rng.standard_normal((3, 4)) * 10).astype(dtype)
    c = run(op_type, a, b)
    assert c.dtype == dtype
    np.testing.assert_array_equal(c, NUMPY_FN[op_type](a, b))


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
@pytest.mark.parametrize("a_shape, b_shape, axis", [
    ((2, 3, 4, 5), (), -1), ((2, 3, 4, 5), (5,), -1), ((2, 3, 4, 5), (4, 5), -1),
    ((2, 3, 4, 5), (3, 4), 1), ((2, 3, 4, 5), (2,), 0), ((2, 3, 4, 5), (1, 1), -1),
    ((3, 2), (3, 1), -1), ((2, 3, 4), (1, 3, 1), 0),
])
def test_legacy_broadcast(op_type, a_shape, b_shape, axis):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    kwargs = dict(broadcast=1) if axis == -1 else dict(broadcast=1, axis=axis)
    c = run(op_type, a, b, **kwargs)
    expected = NUMPY_FN[op_type](a, b.reshape(legacy_view(a_shape, b_shape, axis)))
    assert c.shape == a_shape
    np.testing.assert_allclose(c, expected, rtol=1e-6)


def test_legacy_broadcast_axis_str():
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    b = np.array([10, 20, 30], np.float32)
    c = run("Add", a, b, broadcast=1, axis_str="C", order="NCHW")
    np.testing.assert_array_equal(c, a + b.reshape(1, 3, 1))
    a4 = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    b5 = np.arange(5, dtype=np.float32)
    c = run("Mul", a4, b5, broadcast=1, axis_str="C", order="NHWC")
    np.testing.assert_array_equal(c, a4 * b5.reshape(1, 1, 1, 5))


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
@given(data=st.data())
def test_numpy_broadcast(op_type, data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
    a = data.draw(hnp.arrays(np.float64, shapes.input_shapes[0],
                             elements=st.floats(-100, 100)))
    b = data.draw(hnp.arrays(np.float64, shapes.input_shapes[1],
                             elements=st.floats(-100, 100)))
    c = run(op_type, a, b)
    assert c.shape == shapes.result_shape
    np.testing.assert_array_equal(c, NUMPY_FN[op_type](a, b))


def test_in_place_on_either_input():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.0, np.float32)
    workspace.FeedBlob("A", a)
    workspace.FeedBlob("B", b)
    workspace.RunOperatorOnce(core.CreateOperator("Mul", ["A", "B"], ["A"]))
    np.testing.assert_array_equal(workspace.FetchBlob("A"), a * b)
    workspace.RunOperatorOnce(core.CreateOperator("Add", ["A", "B"], ["B"]))
    np.testing.assert_array_equal(workspace.FetchBlob("B"), a * b + b)


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
@pytest.mark.parametrize("a, b, kwargs, out, error, match", [
    (np.ones((2, 3), np.float32), np.ones((4,), np.float32), {}, "C", EnforceError,
     "blob 'A'.*shape \\(2, 3\\).*blob 'B'.*shape \\(4,\\) cannot be broadcast"),
    (np.ones((2, 3), np.float32), np.ones((2, 3), np.float64), {}, "C", EnforceError,
     "blob 'A'.*float32 but input 1 'B' \\(blob 'B'\\) is float64"),
    (np.ones((2, 3), np.bool_), np.ones((2, 3), np.bool_), {}, "C", EnforceError,
     "blob 'A'.*bool"),
    (np.ones((2, 3), np.float32), np.ones((4,), np.float32), dict(broadcast=1), "C",
     EnforceError, "broadcast dimension mismatch: input 1 'B' \\(blob 'B'\\)"),
    (np.ones((3,), np.float32), np.ones((2, 3), np.float32), dict(broadcast=1), "C",
     EnforceError, "must not have more dims"),
    (np.ones((2, 3), np.float32), np.ones((3,), np.float32), dict(broadcast=1, axis=2), "C",
     EnforceError, "axis must be in \\[0, 1\\]"),
    (np.ones((2, 3), np.float32), np.ones((3,), np.float32), dict(axis=1), "C",
     ArgumentError, "unless broadcast=1"),
    (np.ones((2, 3), np.float32), np.ones((3,), np.float32),
     dict(broadcast=1, axis=1, axis_str="C"), "C", ArgumentError, "cannot be used together"),
    (np.ones((2, 3), np.float32), np.ones((3,), np.float32),
     dict(broadcast=1, axis_str="X"), "C", ArgumentError, "one letter of order"),
    (np.ones((1, 3), np.float32), np.ones((2, 3), np.float32), {}, "A", EnforceError,
     "in place on input 0 'A' \\(blob 'A'\\)"),
    (np.ones((2, 3), np.float32), np.ones((3,), np.float32), dict(broadcast=1), "B",
     EnforceError, "only input 0 may be written in place"),
])
def test_bad_input_names_op_and_blobs_and_changes_nothing(op_type, a, b, kwargs, out, error,
                                                          match):
    workspace.FeedBlob("A", a)
    workspace.FeedBlob("B", b)
    workspace.FeedBlob("C", np.array([7.0]))
    before = snapshot()
    with pytest.raises(error, match=match) as info:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["A", "B"], [out], **kwargs))
    assert op_type in str(info.value)
    assert_unchanged(before)


# -- gradients ---------------------------------------------------------------------------
def run_gradient_ops(op, g_output):
    """Call the schema's maker, copy the forward args as the gradient engine does, run."""
    ops, g_input = registry.get_schema(op.type).gradient(op, g_output)
    for grad_op in ops:
        grad_op.arg.extend(op.arg)
        workspace.RunOperatorOnce(grad_op)
    return ops, g_input


def numeric_gradient(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
@pytest.mark.parametrize("a_shape, b_shape, kwargs", [
    ((3, 4), (3, 4), {}), ((2, 3, 4), (4,), {}), ((3, 1), (1, 4), {}), ((2, 1, 4), (3, 1), {}),
    ((), (2, 3), {}), ((2, 3, 4), (3,), dict(broadcast=1, axis=1)),
    ((2, 3, 4), (3, 4), dict(broadcast=1)), ((2, 3), (1,), dict(broadcast=1)),
    ((2, 3, 4), (1, 3, 1), dict(broadcast=1, axis=0)),
])
def test_gradient_matches_finite_differences(op_type, a_shape, b_shape, kwargs):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(a_shape)
    b = rng.standard_normal(b_shape)
    if kwargs.get("broadcast"):
        view = b.reshape(legacy_view(a_shape, b_shape, kwargs.get("axis", -1)))
        forward = lambda: NUMPY_FN[op_type](a, view)  # noqa: E731  (view shares b's memory)
    else:
        forward = lambda: NUMPY_FN[op_type](a, b)  # noqa: E731
    w = rng.standard_normal(np.shape(forward()))  # loss = sum(C * w), so dC = w
    loss = lambda: float(np.sum(forward() * w))  # noqa: E731

    op = core.CreateOperator(op_type, ["A", "B"], ["C"], **kwargs)
    workspace.FeedBlob("A", a)
    workspace.FeedBlob("B", b)
    workspace.FeedBlob("C_grad", w)
    ops, g_input = run_gradient_ops(op, ["C_grad"])
    assert [o.type for o in ops] == [f"{op_type}Gradient"]
    assert list(ops[0].input) == ["C_grad", "A", "B"]
    assert g_input == ["A_grad", "B_grad"]
    da, db = workspace.FetchBlob("A_grad"), workspace.FetchBlob("B_grad")
    assert da.shape == a_shape and db.shape == b_shape
    np.testing.assert_allclose(da, numeric_gradient(loss, a), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, numeric_gradient(loss, b), rtol=1e-5, atol=1e-7)


def test_gradient_of_an_op_using_one_blob_twice_sums_both_parts():
    x = np.array([1.0, -2.0, 3.0])
    op = core.CreateOperator("Mul", ["X", "X"], ["Y"])
    workspace.FeedBlob("X", x)
    workspace.FeedBlob("Y_grad", np.ones(3))
    ops, g_input = run_gradient_ops(op, ["Y_grad"])
    assert g_input == ["X_grad", "X_grad"]
    np.testing.assert_allclose(workspace.FetchBlob("X_grad"), 2 * x)  # d(x*x)/dx


def test_add_gradient_never_aliases_the_output_gradient():
    workspace.FeedBlob("A", np.ones(3, np.float32))
    workspace.FeedBlob("B", np.ones(3, np.float32))
    workspace.FeedBlob("dC", np.arange(3, dtype=np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("AddGradient", ["dC", "A", "B"],
                                                  ["dA", "dB"]))
    blobs = workspace.current().blobs
    assert not np.shares_memory(blobs["dA"], blobs["dC"])
    assert not np.shares_memory(blobs["dB"], blobs["dC"])
    assert not np.shares_memory(blobs["dA"], blobs["dB"])


def test_gradient_makers_refuse_what_caffe2_refused():
    maker = registry.get_schema("Mul").gradient
    with pytest.raises(GradientError, match="in place"):
        maker(core.CreateOperator("Mul", ["A", "B"], ["A"]), ["A_grad"])
    with pytest.raises(GradientError, match="sparse"):
        maker(core.CreateOperator("Mul", ["A", "B"], ["C"]), [core.GradientSlice("i", "v")])
    assert registry.get_schema("Add").gradient(
        core.CreateOperator("Add", ["A", "B"], ["C"]), [None]) == ([], [None, None])


def test_gradient_op_checks_the_output_gradient_shape():
    workspace.FeedBlob("A", np.ones((2, 3), np.float32))
    workspace.FeedBlob("B", np.ones((3,), np.float32))
    workspace.FeedBlob("dC", np.ones((3, 2), np.float32))
    with pytest.raises(EnforceError, match="blob 'dC'.*expected the forward output's shape"):
        workspace.RunOperatorOnce(core.CreateOperator("MulGradient", ["dC", "A", "B"],
                                                      ["dA", "dB"]))
    with pytest.raises(SchemaError, match="takes exactly 3 inputs"):
        workspace.RunOperatorOnce(core.CreateOperator("AddGradient", ["dC", "A"], ["dA", "dB"]))
