"""DiagonalFill against Caffe2's documented semantics; references are plain NumPy loops.

Caffe2 zero-filled the output, then wrote ``value`` every ``step`` elements of the flat
buffer: step = cols + 1 for a matrix (a tall matrix wraps), 1 + n + n**2 + ... for an
n x n x ... tensor (all dims must be equal above 2-D).
"""

import itertools

import numpy as np
import pytest
from device_utils import assert_devices_agree, requires_cuda

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, Caffe2LiteError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import NO_GRADIENT, registry
from helpers import assert_unchanged, snapshot

TP = caffe2_pb2.TensorProto


def run(inputs=(), output="y", **kwargs):
    workspace.RunOperatorOnce(core.CreateOperator("DiagonalFill", list(inputs), [output],
                                                  **kwargs))
    return workspace.FetchBlob(output)


def reference(shape, value, dtype):
    """Loop over the flat buffer, as Caffe2's kernel did."""
    out = np.zeros(shape, dtype)
    flat = out.reshape(-1)
    if len(shape) == 2:
        step = shape[1] + 1
    else:
        step, stride = 1, 1
        for d in shape[:-1]:
            stride *= d
            step += stride
    for i in range(0, flat.size, step):
        flat[i] = value
    return out


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2), (7, 3), (1, 4), (4, 1), (0, 3),
                                   (3, 3, 3), (2, 2, 2, 2), (1, 1, 1)])
def test_float_diagonal_matches_the_flat_step_walk(shape):
    y = run(shape=list(shape), value=2.5)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, reference(shape, 2.5, np.float32))


def test_square_and_cube_have_value_exactly_on_the_diagonal():
    y = run(shape=[3, 3, 3], value=4.0)
    for index in itertools.product(range(3), repeat=3):
        assert y[index] == (4.0 if len(set(index)) == 1 else 0.0)


def test_tall_matrix_wraps_like_numpy_fill_diagonal():
    y = run(shape=[7, 3], value=1.0)
    expected = np.zeros((7, 3), np.float32)
    np.fill_diagonal(expected, 1.0, wrap=True)
    np.testing.assert_array_equal(y, expected)
    assert y[4, 0] == 1.0  # rows after the 3rd start over at column 0


@pytest.mark.parametrize("dtype_code,np_dtype,value", [
    (TP.DOUBLE, np.float64, 1.5), (TP.INT32, np.int32, 3), (TP.INT64, np.int64, -2),
    (TP.INT8, np.int8, 5), (TP.INT16, np.int16, 7), (TP.UINT8, np.uint8, 9),
    (TP.UINT16, np.uint16, 11), (TP.BOOL, np.bool_, 1)])
def test_dtype_argument(dtype_code, np_dtype, value):
    y = run(shape=[3, 4], value=value, dtype=dtype_code)
    assert y.dtype == np_dtype
    np.testing.assert_array_equal(y, reference((3, 4), value, np_dtype))


def test_dtype_follows_value_when_unset():
    assert run(shape=[2, 2], value=3).dtype == np.int64
    assert run(shape=[2, 2], value=3.0).dtype == np.float32
    np.testing.assert_array_equal(run(shape=[2, 2]), np.zeros((2, 2), np.float32))


def test_shape_from_input_and_extra_shape():
    workspace.FeedBlob("x", np.ones((3, 3, 2), np.float32))
    with pytest.raises(Caffe2LiteError, match="equal length"):
        run(["x"], extra_shape=[2], value=1.0)      # (3, 3, 2, 2)
    workspace.FeedBlob("m", np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(run(["m"], value=6.0), reference((4, 2), 6.0, np.float32))
    workspace.FeedBlob("v", np.ones(3, np.float32))
    np.testing.assert_array_equal(run(["v"], extra_shape=[3], value=1.0),
                                  np.eye(3, dtype=np.float32))


def test_input_as_shape():
    workspace.FeedBlob("s", np.array([2, 2, 2], np.int64))
    np.testing.assert_array_equal(run(["s"], input_as_shape=True, value=1.0),
                                  reference((2, 2, 2), 1.0, np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape=[4], value=1.0), "at least 2 dimensions"),
    (dict(shape=[], value=1.0), "at least 2 dimensions"),
    (dict(shape=[2, 3, 2], value=1.0), "equal length"),
    (dict(shape=[2, 2], value=1.0, dtype=TP.STRING), "unexpected 'dtype'"),
    (dict(shape=[2, 2], value=1.5, dtype=TP.INT32), "must be an integer"),
    (dict(shape=[2, 2], value=300, dtype=TP.UINT8), "does not fit"),
    (dict(shape=[2, 2], value="a"), "unexpected type"),
])
def test_bad_shapes_and_arguments_fail_and_change_nothing(kwargs, match):
    workspace.FeedBlob("y", np.arange(3, dtype=np.float32))
    before = snapshot()
    with pytest.raises(Caffe2LiteError, match=match):
        run(**kwargs)
    assert_unchanged(before)


def test_shape_together_with_an_input_is_an_error():
    workspace.FeedBlob("m", np.ones((2, 2), np.float32))
    with pytest.raises(ArgumentError, match="'shape'"):
        run(["m"], shape=[2, 2])


def test_schema_declares_no_gradient_and_infers_shape():
    assert registry.get_schema("DiagonalFill").gradient == NO_GRADIENT
    net = core.Net("diag_infer")
    net.DiagonalFill([], "d", shape=[3, 5], value=1, dtype=TP.INT32)
    shapes, types = workspace.InferShapesAndTypes([net], {})
    assert shapes["d"] == [3, 5] and types["d"] == TP.INT32


@requires_cuda
@pytest.mark.parametrize("kwargs", [dict(shape=[4, 6], value=2.0), dict(shape=[6, 4], value=3),
                                    dict(shape=[3, 3, 3], value=1, dtype=TP.INT32),
                                    dict(shape=[2, 3, 2], value=1.0)])
def test_cuda_matches_cpu(kwargs):
    assert_devices_agree(core.CreateOperator("DiagonalFill", [], ["y"], **kwargs), {})
