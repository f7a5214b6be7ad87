"""EQ/NE/LT/LE/GT/GE and And/Or/Xor/Not: bool results, broadcasting, no gradients."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, rng, run)

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError, SchemaError
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry
from caffe2lite.testing import check_reference

# Caffe2's documented symbol for each op, evaluated element by element below.
SYMBOL = {"EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}
LOGIC = {"And": lambda x, y: x and y, "Or": lambda x, y: x or y, "Xor": lambda x, y: x != y}


def elementwise(fn, a, b):
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, bool)
    for idx in np.ndindex(a.shape):
        out[idx] = fn(a[idx].item(), b[idx].item())
    return out


@pytest.mark.parametrize("op_type", sorted(SYMBOL))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64, np.bool_,
                                   np.uint8, np.int16])
@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (3, 4)), ((2, 3, 4), (3, 1)),
                                              ((4,), ())])
def test_comparisons_match_the_symbol(op_type, dtype, a_shape, b_shape):
    r = rng(0)
    a = r.integers(-2, 3, a_shape).astype(dtype)
    b = r.integers(-2, 3, b_shape).astype(dtype)
    fn = eval(f"lambda x, y: x {SYMBOL[op_type]} y")  # the documented symbol, nothing else
    (c,) = check_reference(core.CreateOperator(op_type, ["A", "B"], ["C"]), [a, b],
                           lambda a, b: (elementwise(fn, a, b),))
    assert c.dtype == np.bool_


@pytest.mark.parametrize("op_type", ["LT", "And"])
def test_legacy_broadcast_places_b_at_axis(op_type):
    r = rng(1)
    a = r.random((2, 3, 4)) < 0.5 if op_type == "And" else r.standard_normal((2, 3, 4))
    b = r.random((3,)) < 0.5 if op_type == "And" else r.standard_normal((3,))
    fn = (lambda x, y: x < y) if op_type == "LT" else LOGIC["And"]
    op = core.CreateOperator(op_type, ["A", "B"], ["C"], broadcast=1, axis=1)
    check_reference(op, [a, b], lambda a, b: (elementwise(fn, a, b.reshape(1, 3, 1)),))


@pytest.mark.parametrize("op_type", sorted(LOGIC))
def test_logical_ops(op_type):
    r = rng(2)
    a, b = r.random((3, 4)) < 0.5, r.random((1, 4)) < 0.5
    check_reference(core.CreateOperator(op_type, ["A", "B"], ["C"]), [a, b],
                    lambda a, b: (elementwise(LOGIC[op_type], a, b),))
    (c,) = run(core.CreateOperator(op_type, ["A", "B"], ["A"]), [a, a])  # in place over A
    np.testing.assert_array_equal(c, elementwise(LOGIC[op_type], a, a))


def test_not():
    x = np.array([[True, False], [False, False]])
    check_reference(core.CreateOperator("Not", ["X"], ["Y"]), [x],
                    lambda x: (np.array([[False, True], [True, True]]),))


@pytest.mark.parametrize("op_type, inputs, match", [
    ("And", [np.ones(3, np.int32), np.ones(3, np.int32)],
     "input 0 'A'.* has int32; And supports bool"),
    ("Not", [np.ones(3, np.float32)], "input 0 'X'.* has float32; Not supports bool"),
    ("EQ", [np.ones(3, np.float32), np.ones(3, np.float64)], "float32 but .*float64"),
    ("GT", [np.array([b"a"], object), np.array([b"b"], object)], "input 0 'A'.* has object"),
    ("LE", [np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)], "cannot be broadcast"),
])
def test_bad_inputs_fail_and_change_nothing(op_type, inputs, match):
    names = ["A", "B"][:len(inputs)] if op_type != "Not" else ["X"]
    op = core.CreateOperator(op_type, names, ["A" if op_type == "And" else "C"])
    assert_fails_unchanged(op, inputs, EnforceError, match)


def test_comparisons_cannot_run_in_place():
    with pytest.raises(SchemaError, match="in-place"):
        registry.get_schema("EQ").verify(core.CreateOperator("EQ", ["A", "B"], ["A"]))


@pytest.mark.parametrize("op_type", sorted(SYMBOL) + sorted(LOGIC) + ["Not"])
def test_gradient_is_refused_as_caffe2_should_not_do_gradient(op_type):
    assert registry.get_schema(op_type).gradient == SHOULD_NOT_DO_GRADIENT
    inputs = ["X"] if op_type == "Not" else ["A", "B"]
    with pytest.raises(GradientError, match=f"One should not call gradient for operator "
                                            f"{op_type}"):
        gradient_ops(core.CreateOperator(op_type, inputs, ["C"]))


@pytest.mark.parametrize("op_type", ["GE", "Xor", "Not"])
def test_shape_inference_matches_the_run(op_type):
    r = rng(3)
    if op_type == "Not":
        op, values = core.CreateOperator("Not", ["X"], ["Y"]), [r.random((2, 3)) < 0.5]
    elif op_type == "Xor":
        op = core.CreateOperator("Xor", ["A", "B"], ["C"])
        values = [r.random((2, 3)) < 0.5, r.random((3,)) < 0.5]
    else:
        op = core.CreateOperator("GE", ["A", "B"], ["C"], broadcast=1)
        values = [r.standard_normal((2, 3, 4)), r.standard_normal((3, 4))]
    assert_inference_matches_run(op, values)


@pytest.mark.parametrize("op_type, fn", [("BitwiseAnd", np.bitwise_and),
                                         ("BitwiseOr", np.bitwise_or),
                                         ("BitwiseXor", np.bitwise_xor)])
@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64])
def test_bitwise_ops(op_type, fn, dtype):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 128, (2, 3, 4)).astype(dtype)
    b = rng.integers(0, 128, (3, 1)).astype(dtype)
    (c,) = check_reference(core.CreateOperator(op_type, ["A", "B"], ["C"]), [a, b],
                           lambda a, b: (fn(a, b),))
    assert c.dtype == dtype
    workspace.FeedBlob("A", a)
    workspace.FeedBlob("F", a.astype(np.float32))
    with pytest.raises(EnforceError, match="supports bool, int32 and int64"):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["F", "F"], ["C"]))
