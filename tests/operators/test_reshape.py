"""Reshape against numpy.reshape with Caffe2's 0 rule written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def reshape_ref(shape, dtype=np.int64):
    def ref(X, *_):
        if X.size:   # 0 = "same as the input", for non-empty inputs only
            target = [X.shape[i] if d == 0 and i < X.ndim else d for i, d in enumerate(shape)]
        else:        # empty input: zeros stay, the -1 becomes 0
            target = [0 if d == -1 else d for d in shape]
        return X.reshape(target), np.array(X.shape, dtype=dtype)
    return ref


@pytest.mark.parametrize("in_shape, shape", [
    ((2, 3, 4), [4, -1]), ((2, 3, 4), [0, 12]), ((2, 3, 4), [0, 0, -1]), ((6,), [2, 3]),
    ((1,), []), ((2, 0, 3), [0, -1]), ((2, 0, 3), [2, 0, 3]), ((2, 0, 3), [0, 5]),
])
def test_reshape_matches_numpy(in_shape, shape):
    X = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    op = core.CreateOperator("Reshape", ["X"], ["Y", "old"], shape=shape)
    Y, old = check_reference(op, [X], reshape_ref(shape))
    assert old.dtype == np.int64
    op = core.CreateOperator("Reshape", ["X", "s"], ["Y", "old"])
    for dtype in (np.int32, np.int64):
        _, old = check_reference(op, [X, np.array(shape, dtype)], reshape_ref(shape, dtype))
        assert old.dtype == dtype


def test_reshape_in_place_and_copy_semantics():
    X = np.arange(6.0)
    workspace.FeedBlob("X", X)
    workspace.RunOperatorOnce(core.CreateOperator("Reshape", ["X"], ["Y", "old"], shape=[2, 3]))
    workspace.RunOperatorOnce(core.CreateOperator("Relu", ["Y"], ["Y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("X"), X)
    workspace.RunOperatorOnce(core.CreateOperator("Reshape", ["X"], ["X", "old"], shape=[3, 2]))
    assert workspace.FetchBlob("X").shape == (3, 2)


def test_reshape_gradient_by_finite_differences():
    X = np.random.default_rng(1).standard_normal((2, 3, 2))
    check_gradient(core.CreateOperator("Reshape", ["X"], ["Y", "old"], shape=[0, -1]), [X], 0)
    check_gradient(core.CreateOperator("Reshape", ["X", "s"], ["Y", "old"]),
                   [X, np.array([3, 4])], 0)


@pytest.mark.parametrize("inputs, kwargs, message", [
    ([np.ones(6)], {"shape": [4, -1]}, r"shape` \[4, -1\] does not agree.*\(6 vs 4; input 0 'data' \(blob "),
    ([np.ones(6)], {"shape": [0, 0]}, "non-zero size .6. tensor to zero size"),
    ([np.ones((0, 2))], {"shape": [2, 2]}, "does not agree with the input data"),
    ([np.ones(6)], {"shape": [-1, -1]}, "more than one missing dimension"),
    ([np.ones(6)], {"shape": [4, 2]}, "does not agree with the input data"),
    ([np.ones(6)], {"shape": [-2, -3]}, "must not be a negative number"),
    ([np.ones(6)], {}, "Argument `shape` is missing"),
    ([np.ones(6), np.array([6])], {"shape": [6]}, "do not pass in the argument `shape`"),
    ([np.ones(6), np.array([6.0])], {}, "must be int32 or int64, got float64"),
    ([np.ones(6), np.array([[6]])], {}, "Shape should be 1-D"),
])
def test_bad_shapes_fail_and_leave_blobs_unchanged(inputs, kwargs, message):
    names = ["X", "s"][:len(inputs)]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("Y", np.array([5.0]))
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator("Reshape", names, ["Y", "old"], **kwargs))
    np.testing.assert_array_equal(workspace.FetchBlob("Y"), [5.0])
    np.testing.assert_array_equal(workspace.FetchBlob("X"), inputs[0])
