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


# -- check_hostile_inputs: the sweep of tests/test_hostile_inputs.py, for user ops -------
def _user_op(op_type, kernel):
    from caffe2lite.runtime import register_kernel, register_schema

    register_schema(OpSchema(op_type, num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
                             inputs=[("X", "a float tensor")]))
    register_kernel(op_type)(kernel)


def _good(ctx, x):
    ctx.check_float(0, x)
    return (x * 2,)


def _unlabelled(ctx, x):
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        ctx.fail(f"X must be a float tensor, got {getattr(x, 'dtype', None)}")
    return (x * 2,)


def _raw(ctx, x):
    return (x * 2.0,)  # object and string arrays make NumPy raise: nothing checked


def _half_done(ctx, x):
    ctx.check_float(0, x)
    x[...] = 0  # writes into its input...
    ctx.check_same_shape(0, x, 0, x.reshape(-1))  # ...then fails on a rank above 1


def _scribbler(ctx, x):
    ctx.check_float(0, x)
    if x.size:
        x.flat[0] = 7  # changes an input it does not declare in place
    return (x + 0,)


def test_check_hostile_inputs_passes_a_careful_op_and_catches_careless_ones():
    from caffe2lite.testing import check_hostile_inputs

    with registry.isolated():
        for op_type, kernel in (("TestingGood", _good), ("TestingUnlabelled", _unlabelled),
                                ("TestingRaw", _raw), ("TestingHalfDone", _half_done),
                                ("TestingScribbler", _scribbler)):
            _user_op(op_type, kernel)
        assert check_hostile_inputs("TestingGood", trials=20) == 20
        with pytest.raises(AssertionError, match="speaks of 'X' without naming the input"):
            check_hostile_inputs("TestingUnlabelled", trials=20)
        with pytest.raises(AssertionError, match="let TypeError through unchecked"):
            check_hostile_inputs("TestingRaw", trials=20)
        with pytest.raises(AssertionError, match="changed input 0 'X'.* and then failed"):
            check_hostile_inputs("TestingHalfDone", trials=20)
        with pytest.raises(AssertionError, match="does not declare in place"):
            check_hostile_inputs("TestingScribbler", trials=20)
    assert workspace.Blobs() == []  # the sweep runs in workspaces of its own
    with pytest.raises(ValueError, match="no operator 'NoSuchOp'"):
        check_hostile_inputs("NoSuchOp")
