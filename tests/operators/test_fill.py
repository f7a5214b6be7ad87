"""Filler operators against Caffe2's documented semantics (references written in NumPy here)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, Caffe2LiteError, EnforceError, SchemaError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import NO_GRADIENT, registry
from helpers import assert_unchanged, snapshot

TP = caffe2_pb2.TensorProto
FILLERS = ["ConstantFill", "UniformFill", "UniformIntFill", "GaussianFill", "XavierFill",
           "MSRAFill", "RangeFill", "GivenTensorFill", "GivenTensorDoubleFill",
           "GivenTensorBoolFill", "GivenTensorInt16Fill", "GivenTensorIntFill",
           "GivenTensorInt64Fill", "GivenTensorStringFill", "GivenTensorByteStringToUInt8Fill"]


def run(op_type, inputs=(), output="y", **kwargs):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), [output], **kwargs))
    return workspace.FetchBlob(output)


@pytest.mark.parametrize("op_type", FILLERS)
def test_every_filler_declares_no_gradient(op_type):
    assert registry.get_schema(op_type).gradient == NO_GRADIENT


# -- ConstantFill -----------------------------------------------------------------
def test_constant_fill_defaults_to_float_zero():
    y = run("ConstantFill", shape=[2, 3])
    assert y.dtype == np.float32 and y.shape == (2, 3)
    assert not y.any()


def test_constant_fill_value_infers_dtype():
    y = run("ConstantFill", shape=[4], value=2.5)
    np.testing.assert_array_equal(y, np.full(4, 2.5, np.float32))
    assert y.dtype == np.float32
    y = run("ConstantFill", shape=[3], value=7)  # an integer value without dtype: INT64
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [7, 7, 7])


@pytest.mark.parametrize("dtype, np_dtype, value", [
    (TP.FLOAT, np.float32, 1.5), (TP.DOUBLE, np.float64, -0.25), (TP.INT32, np.int32, -3),
    (TP.INT64, np.int64, 2**40), (TP.BOOL, np.bool_, 1), (TP.INT8, np.int8, -128),
    (TP.INT16, np.int16, 300), (TP.UINT8, np.uint8, 255), (TP.UINT16, np.uint16, 65535),
    (TP.FLOAT, np.float32, 3),  # an integer value is a fine float
])
def test_constant_fill_value_typed_per_dtype(dtype, np_dtype, value):
    y = run("ConstantFill", shape=[2, 2], value=value, dtype=dtype)
    assert y.dtype == np_dtype
    np.testing.assert_array_equal(y, np.full((2, 2), value, dtype=np_dtype))


def test_constant_fill_string():
    y = run("ConstantFill", shape=[2], value="ab", dtype=TP.STRING)
    assert y.dtype == object and list(y) == [b"ab", b"ab"]


def test_constant_fill_takes_input_shape_and_extra_shape():
    workspace.FeedBlob("x", np.zeros((3, 2), np.int32))
    y = run("ConstantFill", ["x"], value=4.0)
    assert y.shape == (3, 2) and y.dtype == np.float32 and (y == 4).all()
    y = run("ConstantFill", ["x"], value=4.0, extra_shape=[1, 5])
    assert y.shape == (3, 2, 1, 5)


def test_constant_fill_input_as_shape():
    workspace.FeedBlob("s", np.array([2, 0, 3], np.int64))
    y = run("ConstantFill", ["s"], input_as_shape=1, value=1.0, extra_shape=[4])
    assert y.shape == (2, 0, 3, 4)


def test_constant_fill_in_place_replaces_the_input():
    workspace.FeedBlob("x", np.ones((2, 2), np.float64))
    y = run("ConstantFill", ["x"], output="x", value=3.0)
    assert y.dtype == np.float32 and (y == 3).all()


@pytest.mark.parametrize("kwargs, inputs, error, match", [
    (dict(shape=[2], value=1.5, dtype=TP.INT32), (), ArgumentError, "'value' must be an integer"),
    (dict(shape=[2], value=300, dtype=TP.INT8), (), ArgumentError, "does not fit in int8"),
    (dict(shape=[2], dtype=0), (), ArgumentError, "UNDEFINED"),
    (dict(shape=[2], dtype=TP.FLOAT16), (), ArgumentError, "unexpected 'dtype'"),
    (dict(shape=[2], value="s"), (), ArgumentError, "unexpected type"),
    (dict(shape=[2], value=1.0, dtype=TP.STRING), (), ArgumentError, "must be a string"),
    (dict(shape=[2, -1]), (), EnforceError, "negative dimension"),
    (dict(extra_shape=[2]), (), ArgumentError, "'extra_shape'"),
    (dict(input_as_shape=1), (), ArgumentError, "'input_as_shape'"),
    (dict(shape=[2]), ("x",), ArgumentError, "'shape' .* cannot be set together"),
    (dict(input_as_shape=1), ("x",), EnforceError, "1-D int64"),
    (dict(input_as_shape=1), ("s32",), EnforceError, "blob 's32'.*got dtype int32"),
])
def test_constant_fill_bad_arguments(kwargs, inputs, error, match):
    workspace.FeedBlob("x", np.zeros((2, 2), np.float32))
    workspace.FeedBlob("s32", np.array([2, 2], np.int32))
    workspace.FeedBlob("y", np.arange(3.0))
    before = snapshot()
    with pytest.raises(error, match=match) as info:
        run("ConstantFill", inputs, **kwargs)
    assert "ConstantFill" in str(info.value)
    assert_unchanged(before)


def test_shape_argument_must_be_a_list():
    with pytest.raises(ArgumentError, match="'shape'"):
        workspace.RunOperatorOnce(core.CreateOperator("ConstantFill", [], ["y"], shape=3))


# -- GivenTensor*Fill -------------------------------------------------------------------
@pytest.mark.parametrize("op_type, values, np_dtype", [
    ("GivenTensorFill", [0.5, -1.0, 2.25, 3.0, 4.0, 5.5], np.float32),
    ("GivenTensorDoubleFill", [0.5, -1.0, 2.25, 3.0, 4.0, 5.5], np.float64),
    ("GivenTensorBoolFill", [1, 0, 0, 1, 1, 1], np.bool_),
    ("GivenTensorInt16Fill", [-3, 0, 7, 32767, -32768, 1], np.int16),
    ("GivenTensorIntFill", [-3, 0, 7, 2**31 - 1, -2**31, 1], np.int32),
    ("GivenTensorInt64Fill", [-3, 0, 7, 2**62, -2**62, 1], np.int64),
])
def test_given_tensor_fill_types(op_type, values, np_dtype):
    y = run(op_type, shape=[2, 3], values=values)
    assert y.dtype == np_dtype and y.shape == (2, 3)
    np.testing.assert_array_equal(y, np.array(values).astype(np_dtype).reshape(2, 3))


def test_given_tensor_string_fill():
    y = run("GivenTensorStringFill", shape=[3], values=["a", "bc", b"\xff"])
    assert y.dtype == object and list(y) == [b"a", b"bc", b"\xff"]


@pytest.mark.parametrize("dtype, values, np_dtype", [
    (TP.DOUBLE, [0.1, 0.2], np.float64), (TP.INT64, [5, -6], np.int64),
    (TP.BOOL, [0, 1], np.bool_), (TP.UINT16, [1, 65535], np.uint16),
    (TP.INT32, [4, 8], np.int32), (TP.STRING, ["p", "q"], object),
])
def test_given_tensor_fill_dtype_argument(dtype, values, np_dtype):
    y = run("GivenTensorFill", shape=[2], values=values, dtype=dtype)
    assert y.dtype == np_dtype
    # Argument.floats is a float32 field: doubles arrive rounded to float32.
    expected = [v.encode() for v in values] if np_dtype is object else \
        np.array(values, np.float32 if dtype == TP.DOUBLE else None).astype(np_dtype)
    np.testing.assert_array_equal(y, expected)


def test_given_tensor_fill_shape_from_input():
    workspace.FeedBlob("x", np.zeros((2,), np.float32))
    y = run("GivenTensorIntFill", ["x"], values=[1, 2, 3, 4, 5, 6], extra_shape=[3])
    np.testing.assert_array_equal(y, np.arange(1, 7, dtype=np.int32).reshape(2, 3))
    workspace.FeedBlob("s", np.array([3, 2], np.int64))
    y = run("GivenTensorFill", ["s"], values=[float(v) for v in range(6)], input_as_shape=True)
    np.testing.assert_array_equal(y, np.arange(6, dtype=np.float32).reshape(3, 2))


def test_given_tensor_fill_scalar_and_empty():
    y = run("GivenTensorFill", values=[2.0])  # no shape: a scalar holding one value
    assert y.shape == () and y == 2.0
    y = run("GivenTensorInt64Fill", shape=[0, 3], values=[])
    assert y.shape == (0, 3) and y.dtype == np.int64


def test_given_tensor_byte_string_to_uint8_fill():
    raw = bytes([0, 255, 128, 7, 1, 2])
    y = run("GivenTensorByteStringToUInt8Fill", shape=[3, 2], values=[raw])
    np.testing.assert_array_equal(y, np.frombuffer(raw, np.uint8).reshape(3, 2))
    assert y.dtype == np.uint8


@pytest.mark.parametrize("op_type, kwargs, error, match", [
    ("GivenTensorFill", dict(shape=[2, 2], values=[1.0, 2.0, 3.0]), EnforceError,
     "'values' has 3 elements but the output shape \\[2, 2\\] needs 4"),
    ("GivenTensorIntFill", dict(shape=[2], values=[1.5, 2.5]), ArgumentError,
     "must hold integers"),
    ("GivenTensorIntFill", dict(shape=[1], values=[2**31]), ArgumentError,
     "does not fit in int32"),
    ("GivenTensorFill", dict(shape=[1], values=["a"]), ArgumentError, "must hold numbers"),
    ("GivenTensorFill", dict(shape=[1], values=[1.0], dtype=TP.FLOAT16), ArgumentError,
     "unexpected 'dtype'"),
    ("GivenTensorStringFill", dict(shape=[1], values=[1]), ArgumentError, "must be strings"),
    ("GivenTensorByteStringToUInt8Fill", dict(shape=[1], values=[b"a", b"b"]), ArgumentError,
     "exactly one byte string"),
    ("GivenTensorByteStringToUInt8Fill", dict(shape=[2], values=[b"ab"], dtype=TP.FLOAT),
     ArgumentError, "only STRING"),
    ("GivenTensorFill", dict(shape=[1]), SchemaError, "'values' is required"),
])
def test_given_tensor_fill_bad_input(op_type, kwargs, error, match):
    workspace.FeedBlob("y", np.arange(4, dtype=np.float32))
    before = snapshot()
    with pytest.raises(error, match=match) as info:
        run(op_type, **kwargs)
    assert op_type in str(info.value)
    assert_unchanged(before)


@given(st.lists(st.integers(0, 4), min_size=0, max_size=4))
def test_given_tensor_fill_any_shape(shape):
    size = int(np.prod(shape, dtype=np.int64))
    values = [float(v) * 0.5 for v in range(size)]
    y = run("GivenTensorFill", shape=shape, values=values)
    np.testing.assert_array_equal(y, (np.arange(size, dtype=np.float32) * 0.5).reshape(shape))


# -- random fillers ---------------------------------------------------------------------
def seeded(op_type, seed, output="y", **kwargs):
    option = core.DeviceOption(caffe2_pb2.CPU, random_seed=seed)
    op = core.CreateOperator(op_type, [], [output], device_option=option, **kwargs)
    workspace.RunOperatorOnce(op)
    return workspace.FetchBlob(output)


@pytest.mark.parametrize("op_type, kwargs", [
    ("UniformFill", dict(min=-2.0, max=3.0)), ("UniformIntFill", dict(min=-5, max=9)),
    ("GaussianFill", dict(mean=1.0, std=2.0)), ("XavierFill", {}), ("MSRAFill", {}),
])
def test_random_fill_is_deterministic_under_random_seed(op_type, kwargs):
    a = seeded(op_type, 1234, shape=[40, 30], **kwargs)
    b = seeded(op_type, 1234, shape=[40, 30], **kwargs)
    c = seeded(op_type, 4321, shape=[40, 30], **kwargs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_uniform_fill_range_and_statistics():
    y = seeded("UniformFill", 7, shape=[200, 100], min=-2.0, max=3.0)
    assert y.dtype == np.float32 and y.shape == (200, 100)
    assert y.min() >= -2.0 and y.max() <= 3.0
    # U[a, b]: mean (a+b)/2 = 0.5, std (b-a)/sqrt(12) = 1.443; 20000 samples.
    assert abs(y.mean() - 0.5) < 0.05 and abs(y.std() - 5 / np.sqrt(12)) < 0.03
    y = seeded("UniformFill", 7, shape=[1000])  # defaults: [0, 1]
    assert 0 <= y.min() and y.max() <= 1


def test_uniform_int_fill_is_inclusive():
    y = seeded("UniformIntFill", 3, shape=[5000], min=-2, max=2)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(np.unique(y), [-2, -1, 0, 1, 2])


def test_uniform_fill_range_from_inputs():
    workspace.FeedBlob("shape", np.array([50, 4], np.int64))
    workspace.FeedBlob("lo", np.array(5.0, np.float32))
    workspace.FeedBlob("hi", np.array([6.0], np.float32))
    y = run("UniformFill", ["shape", "lo", "hi"], input_as_shape=1)
    assert y.shape == (50, 4) and 5.0 <= y.min() and y.max() <= 6.0
    workspace.FeedBlob("lo", np.array(7.0, np.float32))  # max < min: an empty first dim
    y = run("UniformFill", ["shape", "lo", "hi"], input_as_shape=1)
    assert y.shape == (0, 4) and y.dtype == np.float32


@pytest.mark.parametrize("op_type, kwargs, inputs, match", [
    ("UniformFill", dict(shape=[2], min=1.0, max=1.0), (), "'max' \\(1.0\\) must be bigger"),
    ("UniformFill", dict(input_as_shape=1, min=0.0), ("shape", "lo", "hi"),
     "both the 'min' argument"),
    ("UniformFill", dict(input_as_shape=1), ("shape", "lo", "lo2"), "blob 'lo2'.*scalar"),
    ("UniformFill", dict(input_as_shape=1), ("shape", "lo", "lo64"), "blob 'lo64'.*float32"),
    ("UniformIntFill", dict(shape=[2], min=3, max=1), (), "must be bigger"),
    ("GaussianFill", dict(shape=[2], std=-1.0), (), "'std' must not be negative"),
    ("XavierFill", dict(shape=[]), (), "at least 1 dimensions"),
    ("MSRAFill", dict(shape=[4]), (), "at least 2 dimensions"),
    ("XavierFill", dict(shape=[0, 3]), (), "fan_in"),
])
def test_random_fill_bad_input(op_type, kwargs, inputs, match):
    workspace.FeedBlob("shape", np.array([2, 2], np.int64))
    workspace.FeedBlob("lo", np.array(0.0, np.float32))
    workspace.FeedBlob("hi", np.array(1.0, np.float32))
    workspace.FeedBlob("lo2", np.zeros(2, np.float32))
    workspace.FeedBlob("lo64", np.array(0.0, np.float64))
    workspace.FeedBlob("y", np.arange(3, dtype=np.int16))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match=match) as info:
        run(op_type, inputs, **kwargs)
    assert op_type in str(info.value)
    assert_unchanged(before)


def test_gaussian_fill_statistics():
    y = seeded("GaussianFill", 11, shape=[100, 200], mean=-3.0, std=0.5)
    assert y.dtype == np.float32
    # 20000 samples: the standard error of the mean is 0.0035, of the std 0.0025.
    assert abs(y.mean() + 3.0) < 0.02 and abs(y.std() - 0.5) < 0.015
    y = seeded("GaussianFill", 11, shape=[10])  # defaults N(0, 1)
    assert y.shape == (10,) and y.dtype == np.float32


def test_xavier_fill_scale():
    y = seeded("XavierFill", 5, shape=[64, 8, 5])
    bound = np.sqrt(3.0 / (8 * 5))  # fan_in = size / shape[0]
    assert y.dtype == np.float32 and np.abs(y).max() <= bound + 1e-7
    assert abs(y.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3)


def test_msra_fill_scale():
    y = seeded("MSRAFill", 5, shape=[50, 40, 3])
    std = np.sqrt(2.0 / (50 * 3))  # fan_out = size / shape[1]
    assert y.dtype == np.float32 and abs(y.std() - std) < 0.05 * std
    assert abs(y.mean()) < 0.05 * std * 4


def test_range_fill():
    y = run("RangeFill", shape=[2, 3, 2])
    np.testing.assert_array_equal(y, np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    assert y.dtype == np.float32


def test_unseeded_random_fill_differs_between_ops():
    a = run("GaussianFill", shape=[100])
    b = run("GaussianFill", shape=[100])
    assert not np.array_equal(a, b)


def test_seeded_fill_in_a_net_repeats_across_creations():
    def make():
        net = core.Net("init_seed")
        net.UniformFill([], "w", shape=[3, 4], min=-1.0, max=1.0)
        net.Proto().op[0].device_option.random_seed = 99
        return net.Proto()

    workspace.RunNetOnce(make())
    first = workspace.FetchBlob("w")
    workspace.RunNetOnce(make())
    np.testing.assert_array_equal(workspace.FetchBlob("w"), first)
