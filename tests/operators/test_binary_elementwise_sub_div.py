"""Sub and Div (both broadcasting modes, C++ integer division) and their gradients."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng, run)

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError, SchemaError
from caffe2lite.testing import check_gradient, check_reference


def legacy_view(a_shape, b_shape, axis=-1):
    """B placed at A's `axis` (suffix by default) per Caffe2's broadcast=1 doc."""
    if int(np.prod(b_shape)) == 1:
        return (1,) * len(a_shape)
    if axis == -1:
        axis = len(a_shape) - len(b_shape)
    return (1,) * axis + tuple(b_shape) + (1,) * (len(a_shape) - axis - len(b_shape))


def c_div(a, b):
    """C++ '/' on ints: the quotient truncated toward zero, element by element."""
    out = np.empty(np.broadcast(a, b).shape, a.dtype)
    for idx in np.ndindex(out.shape):
        x, y = int(np.broadcast_to(a, out.shape)[idx]), int(np.broadcast_to(b, out.shape)[idx])
        q = abs(x) // abs(y)
        out[idx] = q if (x >= 0) == (y > 0) else -q
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("a_shape, b_shape, kwargs", [
    ((3, 4), (3, 4), {}), ((2, 3, 4), (4,), {}), ((3, 1), (1, 4), {}),
    ((2, 3, 4), (3,), dict(broadcast=1, axis=1)), ((2, 3, 4), (3, 4), dict(broadcast=1)),
    ((2, 3, 4), (1,), dict(broadcast=1)), ((2, 3, 4), (3,), dict(broadcast=1, axis_str="C")),
])
def test_sub_and_div_forward(dtype, a_shape, b_shape, kwargs):
    r = rng(1)
    a = (r.standard_normal(a_shape) * 20).astype(dtype)
    b = (r.standard_normal(b_shape) * 5).astype(dtype)
    b[b == 0] = 3
    view = (b.reshape(legacy_view(a_shape, b_shape, kwargs.get("axis", 1 if "axis_str" in kwargs
                                                                 else -1)))
            if kwargs.get("broadcast") else b)
    sub = core.CreateOperator("Sub", ["A", "B"], ["C"], **kwargs)
    div = core.CreateOperator("Div", ["A", "B"], ["C"], **kwargs)
    check_reference(sub, [a, b], lambda a, b: ((a - view).astype(dtype),), threshold=1e-6)
    expected = c_div(a, view) if np.dtype(dtype).kind == "i" else (a / view).astype(dtype)
    (c,) = check_reference(div, [a, b], lambda a, b: (expected,), threshold=1e-6)
    assert c.dtype == dtype


def test_integer_division_truncates_toward_zero_like_cpp():
    a = np.array([7, -7, 7, -7, 6, -1], np.int32)
    b = np.array([2, 2, -2, -2, 3, 5], np.int32)
    (c,) = run(core.CreateOperator("Div", ["A", "B"], ["C"]), [a, b])
    np.testing.assert_array_equal(c, [3, -3, -3, 3, 2, 0])


def test_integer_division_by_zero_fails_and_changes_nothing():
    op = core.CreateOperator("Div", ["A", "B"], ["A"])
    assert_fails_unchanged(op, [np.array([1, 2], np.int64), np.array([1, 0], np.int64)],
                           EnforceError, "integer division by zero: input 1 'B'")


def test_float_division_by_zero_gives_inf_as_ieee():
    (c,) = run(core.CreateOperator("Div", ["A", "B"], ["C"]),
               [np.array([1.0, -1.0, 0.0], np.float32), np.zeros(3, np.float32)])
    assert c[0] == np.inf and c[1] == -np.inf and np.isnan(c[2])


@pytest.mark.parametrize("a_shape, b_shape, kwargs", [
    ((3, 4), (3, 4), {}), ((2, 3, 4), (4,), {}), ((3, 1), (1, 4), {}),
    ((2, 3, 4), (3,), dict(broadcast=1, axis=1)), ((2, 3), (1,), dict(broadcast=1)),
])
@pytest.mark.parametrize("op_type", ["Sub", "Div"])
def test_gradients_match_finite_differences(op_type, a_shape, b_shape, kwargs):
    r = rng(2)
    a = r.standard_normal(a_shape)
    b = r.uniform(0.5, 2.0, b_shape) * np.where(r.random(b_shape) < 0.5, -1, 1)
    op = core.CreateOperator(op_type, ["A", "B"], ["C"], **kwargs)
    check_gradient(op, [a, b], 0)
    check_gradient(op, [a, b], 1)


def test_gradient_layouts_are_caffe2s():
    ops, grads = gradient_ops(core.CreateOperator("Sub", ["A", "B"], ["C"]))
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("SubGradient", ["C_grad", "A", "B"], ["A_grad", "B_grad"])]
    ops, grads = gradient_ops(core.CreateOperator("Div", ["A", "B"], ["C"], broadcast=1))
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("DivGradient", ["C_grad", "A", "B", "C"], ["A_grad", "B_grad"])]
    assert {a.name: a.i for a in ops[0].arg} == {"broadcast": 1}
    assert grads == {"A": "A_grad", "B": "B_grad"}


def test_div_gradient_legacy_three_input_layout():
    r = rng(3)
    b = r.uniform(1, 2, (4,)).astype(np.float32)
    c = r.standard_normal((3, 4)).astype(np.float32)
    dc = r.standard_normal((3, 4)).astype(np.float32)
    op = core.CreateOperator("DivGradient", ["B", "C", "dC"], ["dA", "dB"], broadcast=1)
    check_reference(op, [b, c, dc], lambda b, c, dc: (dc / b, np.sum(-dc * c / b, axis=0)))


def test_div_gradient_checks_the_forward_output():
    op = core.CreateOperator("DivGradient", ["dC", "A", "B", "C"], ["dA", "dB"])
    ones = np.ones((2, 3), np.float32)
    assert_fails_unchanged(op, [ones, ones, ones, np.ones((3, 2), np.float32)], EnforceError,
                           "input 3 'C'.*forward output")
    with pytest.raises(SchemaError, match="between 3 and 4"):
        workspace.RunOperatorOnce(core.CreateOperator("DivGradient", ["dC", "A"], ["dA", "dB"]))


def test_mismatched_dtypes_fail_naming_both():
    op = core.CreateOperator("Sub", ["A", "B"], ["C"])
    assert_fails_unchanged(op, [np.ones(3, np.float32), np.ones(3, np.int32)], EnforceError,
                           "input 0 'A'.*float32.*input 1 'B'.*int32")


@pytest.mark.parametrize("op_type", ["Sub", "Div", "SubGradient", "DivGradient"])
def test_shape_inference_matches_the_run(op_type):
    r = rng(4)
    a, b = r.uniform(1, 2, (2, 3, 4)), r.uniform(1, 2, (3, 1))
    if op_type.endswith("Gradient"):
        names = ["dC", "A", "B"] + (["C"] if op_type == "DivGradient" else [])
        values = [r.standard_normal((2, 3, 4)), a, b] + [a / b] * (op_type == "DivGradient")
        op = core.CreateOperator(op_type, names, ["dA", "dB"])
    else:
        op, values = core.CreateOperator(op_type, ["A", "B"], ["C"]), [a, b]
    assert_inference_matches_run(op, values)


@pytest.mark.parametrize("op_type, expected", [("Sub", 0.0), ("Div", 0.0)])
def test_one_blob_as_both_operands_sums_both_gradients(op_type, expected):
    x = np.array([1.5, -2.0, 3.0])
    net = core.Net("same_blob")
    net.Proto().op.add().CopyFrom(core.CreateOperator(op_type, ["X", "X"], ["Y"]))
    net.AddGradientOperators({"Y": "dY"})
    workspace.FeedBlob("X", x)
    workspace.FeedBlob("dY", np.ones(3))
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("X_grad"), np.full(3, expected), atol=1e-12)


def test_in_place_div_on_a_differentiates_from_its_output_but_not_on_b():
    # Caffe2's DivGradient reads B and the output C, A only for its shape.
    net = core.Net("div_in_place")
    net.Div(["A", "B"], ["A"])
    net.AddGradientOperators({"A": "dC"})
    a, b, dc = np.array([[1.0, -2.0], [3.0, 4.0]]), np.array([2.0, -4.0]), np.ones((2, 2))
    for name, value in (("A", a), ("B", b), ("dC", dc)):
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("A_grad"), dc / b)
    np.testing.assert_allclose(workspace.FetchBlob("B_grad"), (-dc * a / b ** 2).sum(0))
    with pytest.raises(GradientError, match="in place"):
        gradient_ops(core.CreateOperator("Div", ["A", "B"], ["B"]))
