"""Scale: Y = scale * X, and its gradient (Scale of the output gradient)."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.runtime import registry


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("scale", [None, 2.5, -0.5, 0.0])
def test_scale_matches_numpy(dtype, scale):
    x = np.linspace(-3, 3, 12).reshape(3, 4).astype(dtype)
    workspace.FeedBlob("x", x)
    kwargs = {} if scale is None else dict(scale=scale)
    workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["y"], **kwargs))
    y = workspace.FetchBlob("y")
    expected = (x * dtype(1.0 if scale is None else scale)).astype(dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)


def test_scale_in_place():
    workspace.FeedBlob("x", np.array([1.0, -2.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["x"], scale=3.0))
    np.testing.assert_array_equal(workspace.FetchBlob("x"), [3.0, -6.0])


def test_scale_integer_argument_is_a_float():
    workspace.FeedBlob("x", np.array([1.5], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["y"], scale=2))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [3.0])


def test_scale_rejects_integer_tensors_and_changes_nothing():
    x = np.array([1, 2], np.int32)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("y", np.array([9.0]))
    with pytest.raises(EnforceError, match="Scale.*blob 'x'.*int32"):
        workspace.RunOperatorOnce(core.CreateOperator("Scale", ["x"], ["y"], scale=2.0))
    np.testing.assert_array_equal(workspace.FetchBlob("x"), x)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [9.0])


def test_scale_gradient_is_scale_of_the_output_gradient():
    op = core.CreateOperator("Scale", ["x"], ["y"], scale=-1.5)
    ops, g_input = registry.get_schema("Scale").gradient(op, ["y_grad"])
    assert g_input == ["x_grad"]
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("Scale", ["y_grad"], ["x_grad"])]
    # The gradient engine copies the forward op's arguments (here 'scale') onto them.
    for o in ops:
        o.arg.extend(op.arg)
    x = np.array([0.5, 2.0, -1.0])
    dy = np.array([1.0, -2.0, 0.25])
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("y_grad", dy)
    for o in ops:
        workspace.RunOperatorOnce(o)
    eps = 1e-6  # d/dx sum(dy * scale * x), by central differences
    numeric = np.array([(np.sum(dy * -1.5 * (x + eps * e)) - np.sum(dy * -1.5 * (x - eps * e)))
                        / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(workspace.FetchBlob("x_grad"), numeric, rtol=1e-6)


def test_scale_gradient_needs_a_dense_output_gradient():
    op = core.CreateOperator("Scale", ["x"], ["y"], scale=2.0)
    with pytest.raises(GradientError, match="sparse"):
        registry.get_schema("Scale").gradient(op, [core.GradientSlice("i", "v")])
