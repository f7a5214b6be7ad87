"""caffe2lite.gradient_checker (Caffe2's GradientChecker and NetGradientChecker): right
gradients pass, a wrong one is caught, integer inputs are not checked."""

import numpy as np
import pytest

from caffe2lite import core, gradient_checker, workspace
from caffe2lite.runtime import (OpSchema, grad_name, isolated, make_operator, register_kernel,
                                register_schema)


def test_a_right_gradient_passes_with_caffe2s_loss():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    checker = gradient_checker.GradientChecker(stepsize=0.01, threshold=0.005)
    op = core.CreateOperator("Tanh", ["X"], ["Y"])
    passed, grad, estimate = checker.CheckSimple(op, [x], 0, [0])
    assert passed
    # Caffe2's loss 0.5 * sum(Y ** 2) has gradient Y * (1 - Y ** 2) through tanh.
    y = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(grad, y * (1 - y * y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(estimate, grad, atol=5e-3)
    assert workspace.CurrentWorkspace() == "default"


def test_a_wrong_gradient_fails():
    with isolated():
        register_schema(OpSchema("Doubler", num_inputs=1, num_outputs=1,
                                 gradient=lambda op, g: (
                                     [make_operator("Scale", [g[0]], [grad_name(op.input[0])],
                                                    scale=3.0)],
                                     [grad_name(op.input[0])])))
        register_kernel("Doubler")(lambda ctx, x: (2 * x,))
        checker = gradient_checker.GradientChecker(stepsize=0.01, threshold=0.005)
        x = np.linspace(-1, 1, 8).astype(np.float32)
        passed, grad, estimate = checker.CheckSimple(
            core.CreateOperator("Doubler", ["X"], ["Y"]), [x], 0, [0])
        assert not passed
        np.testing.assert_allclose(grad, 6 * x, rtol=1e-5)
        # Like Caffe2, only the first and last three elements are perturbed (the others
        # take the analytic value): there the estimate is d(0.5 * (2x)^2)/dx = 4x.
        ends = np.r_[0:3, 5:8]
        np.testing.assert_allclose(estimate[ends], 4 * x[ends], rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(estimate[3:5], grad[3:5])


def test_integer_inputs_are_not_checked():
    checker = gradient_checker.GradientChecker(stepsize=0.01, threshold=0.005)
    op = core.CreateOperator("LengthsSum", ["D", "L"], ["Y"])
    passed, grad, estimate = checker.CheckSimple(
        op, [np.ones((3, 2), np.float32), np.array([1, 2], np.int32)], 1, [0])
    assert passed and grad.size == 0 and estimate.size == 0


def test_net_gradient_checker_check_and_compare():
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    net = core.Net("sq")
    net.Sqr("X", "Y")
    mean, worst = gradient_checker.NetGradientChecker.Check(
        net, ["Y"], {"X": x}, "X", step_size=1e-3, threshold=1e-2, print_net=False)
    assert worst < 1e-2
    other = core.Net("mul")
    other.Mul(["X", "X"], "Y")
    gradient_checker.NetGradientChecker.CompareNets(
        [net, other], [["Y"], ["Y"]], [0], ["X"], {"X": x}, threshold=1e-6)
    broken = core.Net("scaled")
    broken.Scale("X", "Y", scale=2.0)
    with pytest.raises(AssertionError):
        gradient_checker.NetGradientChecker.CompareNets(
            [net, broken], [["Y"], ["Y"]], [0], ["X"], {"X": x})
