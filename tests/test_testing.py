"""caffe2lite.testing: the helpers must catch wrong operators, not just pass right ones."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.core import GradientSlice
from caffe2lite.runtime import OpSchema, registry
from caffe2lite.testing import check_gradient, check_reference


def _register_test_ops():
    if registry.get_schema("TestingCube") is not None:
        return

    def wrong_maker(op_def, g_output):
        # d(x^3)/dx is 3x^2; this claims 2x^2 -- check_gradient must notice
        grad = op_def.input[0] + "_grad"
        return [core.CreateOperator("TestingCubeWrongGradient", [op_def.input[0], g_output[0]],
                                    [grad])], [grad]

    def right_maker(op_def, g_output):
        grad = op_def.input[0] + "_grad"
        return [core.CreateOperator("TestingCubeGradient", [op_def.input[0], g_output[0]],
                                    [grad])], [grad]

    def sparse_maker(op_def, g_output):
        return [], [GradientSlice(op_def.input[1], g_output[0]), None]

    for op_type, maker in (("TestingCube", right_maker), ("TestingCubeWrong", wrong_maker)):
        registry.register_schema(OpSchema(op_type, num_inputs=1, num_outputs=1, private=True,
                                          gradient=maker))
        registry.register_kernel(op_type)(lambda ctx, x: (x ** 3,))
    registry.register_schema(OpSchema("TestingCubeGradient", num_inputs=2, num_outputs=1,
                                      private=True))
    registry.register_kernel("TestingCubeGradient")(lambda ctx, x, dy: (3 * x * x * dy,))
    registry.register_schema(OpSchema("TestingCubeWrongGradient", num_inputs=2, num_outputs=1,
                                      private=True))
    registry.register_kernel("TestingCubeWrongGradient")(lambda ctx, x, dy: (2 * x * x * dy,))
    registry.register_schema(OpSchema("TestingGather", num_inputs=2, num_outputs=1, private=True,
                                      gradient=sparse_maker))
    registry.register_kernel("TestingGather")(lambda ctx, d, i: (d[i],))


_register_test_ops()
X = np.random.default_rng(0).standard_normal((2, 3))


def test_check_gradient_accepts_a_right_gradient_and_returns_both():
    analytic, numeric = check_gradient(core.CreateOperator("TestingCube", ["x"], ["y"]), [X], 0)
    np.testing.assert_allclose(numeric, analytic, rtol=1e-6)


def test_check_gradient_rejects_a_wrong_gradient():
    with pytest.raises(AssertionError, match=r"TestingCubeWrong: gradient of output 0 \('y'\) "
                                             r"w.r.t. input 0 \('x'\)"):
        check_gradient(core.CreateOperator("TestingCubeWrong", ["x"], ["y"]), [X], 0)


def test_check_gradient_densifies_sparse_gradients_with_duplicates():
    data = np.random.default_rng(1).standard_normal((4, 2))
    op = core.CreateOperator("TestingGather", ["data", "idx"], ["rows"])
    analytic, _ = check_gradient(op, [data, np.array([3, 1, 3])], 0)
    assert np.all(analytic[[0, 2]] == 0) and np.all(analytic[3] != 0)


def test_check_gradient_errors():
    with pytest.raises(AssertionError, match=r"gives input 1 \('t'\) no gradient"):
        check_gradient(core.CreateOperator("SigmoidCrossEntropyWithLogits", ["x", "t"], ["l"]),
                       [X, np.ones_like(X)], 1)
    with pytest.raises(ValueError, match=r"input 1 \('idx'\) has dtype int64"):
        check_gradient(core.CreateOperator("TestingGather", ["d", "idx"], ["r"]),
                       [X, np.array([0])], 1)
    with pytest.raises(ValueError, match="needs float32 or float64"):
        check_gradient(core.CreateOperator("TestingCube", ["x"], ["y"]),
                       [X.astype(np.float16)], 0)


def test_check_reference_compares_values_shapes_and_types():
    op = core.CreateOperator("TestingCube", ["x"], ["y"])
    (y,) = check_reference(op, [X], lambda x: (x ** 3,))
    np.testing.assert_array_equal(y, X ** 3)
    with pytest.raises(AssertionError, match=r"TestingCube: output 0 \('y'\)"):
        check_reference(op, [X], lambda x: (x ** 3 + 1e-3,))
    with pytest.raises(AssertionError, match="shape"):
        check_reference(op, [X], lambda x: (x.reshape(-1) ** 3,))
    with pytest.raises(RuntimeError, match="wrong reference implementation"):
        check_reference(op, [X], lambda x: x ** 3)


def test_helpers_leave_the_current_workspace_alone():
    workspace.FeedBlob("x", np.array([5.0]))
    check_reference(core.CreateOperator("TestingCube", ["x"], ["y"]), [X], lambda x: (x ** 3,))
    check_gradient(core.CreateOperator("TestingCube", ["x"], ["y"]), [X], 0)
    assert workspace.Blobs() == ["x"]
    np.testing.assert_array_equal(workspace.FetchBlob("x"), [5.0])
