"""Cast: 'to' as DataType number or name, C++ conversion rules, Caffe2's Cast gradient."""

import numpy as np
import pytest
from elementwise_testing import (assert_fails_unchanged, assert_inference_matches_run,
                                 gradient_ops, run)

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, EnforceError, GradientError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.testing import check_gradient

TP = caffe2_pb2.TensorProto
# DataType -> the C++ type Caffe2's CastOp wrote, as a NumPy dtype.
CPP_TYPE = {TP.FLOAT: np.float32, TP.INT32: np.int32, TP.BYTE: np.uint8, TP.BOOL: np.bool_,
            TP.UINT8: np.uint8, TP.INT8: np.int8, TP.UINT16: np.uint16, TP.INT16: np.int16,
            TP.INT64: np.int64, TP.DOUBLE: np.float64, TP.FLOAT16: np.float16}


def cpp_static_cast(values, dtype):
    """static_cast per element: bool is != 0, float -> int truncates toward zero."""
    out = []
    for v in values:
        if dtype is np.bool_:
            out.append(v != 0)
        elif np.dtype(dtype).kind in "iu":
            out.append(int(v))  # int() truncates toward zero, as the C++ conversion
        else:
            out.append(float(v))
    return np.array(out, dtype)


@pytest.mark.parametrize("to", sorted(CPP_TYPE))
def test_to_as_a_number(to):
    x = np.array([1.9, -0.0, 0.0, 2.5, 100.25], np.float32)
    if np.dtype(CPP_TYPE[to]).kind == "u":
        x = np.abs(x)
    (y,) = run(core.CreateOperator("Cast", ["X"], ["Y"], to=to), [x])
    assert y.dtype == CPP_TYPE[to]
    np.testing.assert_array_equal(y, cpp_static_cast(x.tolist(), CPP_TYPE[to]))


@pytest.mark.parametrize("name, dtype", [("FLOAT", np.float32), ("int32", np.int32),
                                         ("Int64", np.int64), ("double", np.float64),
                                         ("bool", np.bool_), ("uint8", np.uint8)])
def test_to_as_a_name_in_any_case(name, dtype):
    x = np.array([[-3, 0, 7]], np.int64) if dtype is not np.uint8 else np.array([[3, 0, 7]])
    (y,) = run(core.CreateOperator("Cast", ["X"], ["Y"], to=name), [x])
    assert y.dtype == dtype and y.shape == (1, 3)
    np.testing.assert_array_equal(y, cpp_static_cast(x.ravel().tolist(), dtype).reshape(1, 3))


def test_default_to_is_float_and_from_type_is_ignored():
    (y,) = run(core.CreateOperator("Cast", ["X"], ["Y"], from_type="INT64"),
               [np.array([1, 2], np.int32)])
    assert y.dtype == np.float32 and y.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("to, match", [(0, "UNDEFINED"),
                                       ("HALFISH", "Unknown 'to' argument"), (99, "unknown")])
def test_bad_to_fails_and_changes_nothing(to, match):
    op = core.CreateOperator("Cast", ["X"], ["X"], to=to)
    assert_fails_unchanged(op, [np.ones(2, np.float32)], EnforceError, match)


def test_float_to_is_refused_when_parsed():
    op = core.CreateOperator("Cast", ["X"], ["Y"], to=1.5)
    assert_fails_unchanged(op, [np.ones(2, np.float32)], (EnforceError, ArgumentError),
                           "'to'")


@pytest.mark.parametrize("values, dtype, want", [
    ([1, -20, 0], np.int64, [b"1", b"-20", b"0"]),
    ([True, False, True], np.bool_, [b"1", b"0", b"1"]),
    ([1.5, -0.25, 3e-7], np.float32, [b"1.500000", b"-0.250000", b"0.000000"])])
def test_cast_to_string_writes_std_to_string(values, dtype, want):
    # caffe2::to_string is std::to_string: decimal integers, "%f" for floats
    y = run_cast(np.array(values, dtype), to="STRING")
    assert y.dtype == object and list(y) == want


def run_cast(x, **args):
    workspace.FeedBlob("X", x)
    workspace.RunOperatorOnce(core.CreateOperator("Cast", ["X"], ["Y"], **args))
    return workspace.FetchBlob("Y")


def test_string_input_fails():
    op = core.CreateOperator("Cast", ["X"], ["Y"], to="INT32")
    assert_fails_unchanged(op, [np.array([b"1"], object)], EnforceError, "not strings")


def test_gradient_casts_back_with_swapped_types():
    op = core.CreateOperator("Cast", ["X"], ["Y"], to="DOUBLE", from_type="FLOAT")
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("Cast", ["Y_grad"], ["X_grad"])]
    assert {a.name: a.i for a in ops[0].arg} == {"to": TP.FLOAT, "from_type": TP.DOUBLE}
    check_gradient(op, [np.array([0.5, -1.25], np.float32)], 0)


def test_gradient_needs_from_type():
    with pytest.raises(GradientError, match="'from_type' of type int or string is required"):
        gradient_ops(core.CreateOperator("Cast", ["X"], ["Y"], to="DOUBLE"))


@pytest.mark.parametrize("to", ["INT32", TP.DOUBLE, "BOOL"])
def test_shape_inference_matches_the_run(to):
    assert_inference_matches_run(core.CreateOperator("Cast", ["X"], ["Y"], to=to),
                                 [np.ones((2, 3), np.float32)])
