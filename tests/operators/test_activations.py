"""Activations (Sigmoid, Tanh, LeakyRelu, Elu, Selu, Softplus, Softsign, Swish, Gelu,
HardSigmoid, ThresholdedRelu, ReluN, PRelu, Logit) and their gradients against NumPy written
here."""

import math

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

REFERENCES = {
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64))),
    "Tanh": lambda x: np.tanh(x.astype(np.float64)),
}


@settings(max_examples=20)
@given(op_type=st.sampled_from(sorted(REFERENCES)),
       X=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=st.floats(-50, 50, width=32)))
def test_forward_matches_numpy(op_type, X):
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    (Y,) = check_reference(op, [X], lambda x: (REFERENCES[op_type](x),), threshold=1e-6)
    assert Y.dtype == np.float32 and Y.shape == X.shape


def test_sigmoid_is_finite_and_silent_at_extremes():
    X = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (Y,) = check_reference(core.CreateOperator("Sigmoid", ["X"], ["Y"]), [X],
                               lambda x: (np.array([0.0, np.exp(-100.0), 0.5, 1.0, 1.0]),),
                               threshold=1e-12)


@pytest.mark.parametrize("op_type", sorted(REFERENCES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_by_finite_differences(op_type, dtype):
    X = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    check_gradient(core.CreateOperator(op_type, ["X"], ["Y"]), [X], 0)


@pytest.mark.parametrize("op_type, derivative", [("Sigmoid", lambda y: y * (1 - y)),
                                                 ("Tanh", lambda y: 1 - y * y)])
def test_gradient_op_uses_the_output(op_type, derivative):
    rng = np.random.default_rng(1)
    Y, dY = rng.random((2, 3)), rng.standard_normal((2, 3))
    op = core.CreateOperator(op_type + "Gradient", ["Y", "dY"], ["dX"])
    check_reference(op, [Y, dY], lambda Y, dY: (dY * derivative(Y),), threshold=1e-12)


def test_in_place_and_errors():
    workspace.FeedBlob("X", np.array([0.0, 1.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("Tanh", ["X"], ["X"]))
    np.testing.assert_allclose(workspace.FetchBlob("X"), np.tanh([0.0, 1.0]), rtol=1e-6)
    workspace.FeedBlob("I", np.array([1, 2], np.int64))
    with pytest.raises(EnforceError, match=r"op Sigmoid: input 0 'X' \(blob 'I'\) must be a float tensor, got int64"):
        workspace.RunOperatorOnce(core.CreateOperator("Sigmoid", ["I"], ["I"]))
    np.testing.assert_array_equal(workspace.FetchBlob("I"), [1, 2])
    workspace.FeedBlob("Y", np.ones(3, np.float32))
    workspace.FeedBlob("dY", np.ones(2, np.float32))
    with pytest.raises(EnforceError, match=r"input 0 'Y' \(blob 'Y'\) \(3,\) and input 1 'dY' "
                                           r"\(blob 'dY'\) \(2,\) must have the same number"):
        workspace.RunOperatorOnce(core.CreateOperator("TanhGradient", ["Y", "dY"], ["dX"]))


@pytest.mark.parametrize("op_type, inputs, pattern", [
    ("Relu", [np.array([b"a"], dtype=object)],
     r"op Relu: input 0 'X' \(blob 'i0'\) must be a numeric tensor, got object"),
    ("ReluGradient", [np.ones(3, np.float32), np.ones(2, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) has shape \(3,\) and input 1 'dY' \(blob 'i1'\) \(2,\); "
     r"they must be the same"),
    ("ReluGradient", [np.array([b"a"], dtype=object), np.ones(1, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) must be a numeric tensor, got object"),
    ("SigmoidGradient", [np.ones(2, np.int64), np.ones(2, np.float32)],
     r"input 0 'Y' \(blob 'i0'\) \(int64\) and input 1 'dY' \(blob 'i1'\) \(float32\) must "
     r"be tensors of one numeric dtype"),
])
def test_bad_dtype_or_shape_is_an_enforce_error_that_changes_nothing(op_type, inputs, pattern):
    names = [f"i{k}" for k in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=pattern):  # in place on the last input
        workspace.RunOperatorOnce(core.CreateOperator(op_type, names, [names[-1]]))
    assert_unchanged(before)


# -- the parametrised activations: references from Caffe2's documented formulas ---------
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def gelu_ref(x, fast):
    if fast:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


# type: (args, reference(x, args))
PARAMETRISED = {
    "LeakyRelu": ({"alpha": 0.3}, lambda x, a: np.where(x >= 0, x, a["alpha"] * x)),
    "Elu": ({"alpha": 0.7}, lambda x, a: np.where(x > 0, x, a["alpha"] * (np.exp(x) - 1))),
    "Selu": ({}, lambda x, a: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))),
    "Softplus": ({}, lambda x, a: np.log(1 + np.exp(x))),
    "Softsign": ({}, lambda x, a: x / (1 + np.abs(x))),
    "Swish": ({}, lambda x, a: x / (1 + np.exp(-x))),
    "Gelu": ({"fast_gelu": 0}, lambda x, a: gelu_ref(x, False)),
    "HardSigmoid": ({"alpha": 0.3, "beta": 0.4},
                    lambda x, a: np.minimum(1, np.maximum(0, a["alpha"] * x + a["beta"]))),
    "ThresholdedRelu": ({"alpha": 0.5}, lambda x, a: np.where(x > a["alpha"], x, 0)),
    "ReluN": ({"n": 1.5}, lambda x, a: np.minimum(np.maximum(x, 0), a["n"])),
}


def away_from_kinks(shape, seed):
    """Values in [-3, 3] at least 0.05 from the kinks of every op above."""
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    for kink in (0.0, 0.5, 1.5, -4 / 3, 2.0):
        x = np.where(np.abs(x - kink) < 0.05, kink + 0.05, x)
    return x


@pytest.mark.parametrize("op_type", sorted(PARAMETRISED))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parametrised_activation_matches_its_formula(op_type, dtype):
    args, ref = PARAMETRISED[op_type]
    x = away_from_kinks((3, 4), 0).astype(dtype)
    op = core.CreateOperator(op_type, ["X"], ["Y"], **args)
    (y,) = check_reference(op, [x], lambda x: (ref(x.astype(np.float64), args),),
                           threshold=1e-5)
    assert y.dtype == dtype
    check_gradient(op, [away_from_kinks((2, 3), 1)], 0)


@pytest.mark.parametrize("op_type, roles", [
    ("Elu", ["Y", "Y_grad"]), ("Softsign", ["X", "Y_grad"]), ("Gelu", ["Y_grad", "X"]),
    ("Swish", ["X", "Y", "Y_grad"]), ("HardSigmoid", ["Y", "Y_grad"])])
def test_gradient_op_reads_what_caffe2s_did(op_type, roles):
    ops, grads = gradient_ops(core.CreateOperator(op_type, ["X"], ["Y"]))
    assert [(o.type, list(o.input)) for o in ops] == [(op_type + "Gradient", roles)]


def test_fast_gelu_and_softplus_extremes():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 2.5])
    check_reference(core.CreateOperator("Gelu", ["X"], ["Y"], fast_gelu=1), [x],
                    lambda x: (gelu_ref(x, True),), threshold=1e-12)
    check_gradient(core.CreateOperator("Gelu", ["X"], ["Y"], fast_gelu=1), [x], 0)
    with np.errstate(over="raise"):
        check_reference(core.CreateOperator("Softplus", ["X"], ["Y"]),
                        [np.array([-1000.0, 1000.0])], lambda x: (np.array([0.0, 1000.0]),))


def test_softsign_in_place_cannot_be_differentiated():
    with pytest.raises(GradientError, match="overwrote in place"):
        gradient_ops(core.CreateOperator("Softsign", ["X"], ["X"]))


def test_selu_gradient_takes_y_shape_when_dy_is_flat():
    # Caffe2 compared sizes only: dX has the forward blob's shape
    y, dy = np.array([[0.5, -0.2]]), np.ones(2)
    op = core.CreateOperator("SeluGradient", ["Y", "dY"], ["dX"])
    check_reference(op, [y, dy], lambda y, dy: (np.where(y > 0, SELU_SCALE,
                                                         y + SELU_ALPHA * SELU_SCALE),))


@pytest.mark.parametrize("op_type", sorted(PARAMETRISED))
def test_shape_inference_and_costs(op_type):
    assert_inference_matches_run(core.CreateOperator(op_type, ["X"], ["Y"]),
                                 [np.ones((2, 5), np.float32)])


def test_leaky_relu_cost_is_caffe2s_pointwise_two():
    workspace.FeedBlob("X", np.ones((3, 4), np.float32))
    cost = workspace.GetOperatorCost(core.CreateOperator("LeakyRelu", ["X"], ["Y"]), ["X"])
    assert (cost.flops, cost.bytes_written, cost.bytes_read) == (24, 48, 48)


# -- PRelu ---------------------------------------------------------------------------
def prelu_ref(order):
    def ref(x, w):
        if w.size == 1:
            slope = w.reshape(())
        else:
            slope = w.reshape((1, -1, 1, 1) if order == "NCHW" else (1, 1, 1, -1))
        return (np.where(x > 0, x, x * slope),)
    return ref


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("shared", [False, True])
def test_prelu(order, shared):
    x = away_from_kinks((2, 3, 2, 4), 2)
    w = np.array([0.25]) if shared else np.linspace(-0.5, 0.5, 3 if order == "NCHW" else 4)
    op = core.CreateOperator("PRelu", ["X", "W"], ["Y"], order=order)
    check_reference(op, [x, w], prelu_ref(order))
    for index in (0, 1):
        check_gradient(op, [x, w], index)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [("PReluGradient", ["Y", "Y_grad", "X", "W"])]


def test_prelu_checks_the_slopes():
    op = core.CreateOperator("PRelu", ["X", "W"], ["Y"])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones(2, np.float32)],
                           EnforceError, "has 2 slopes; .* has 3 channels")
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones(3)],
                           EnforceError, "has dtype float64, expected float32")


def _logit_reference(x, eps=1e-6):
    # the clamp is to float32 bounds, as Caffe2's float kernel: 1 - 1e-6 rounds to 0.999999
    p = np.clip(x, np.float32(eps), np.float32(1 - eps)).astype(np.float64)
    return np.log(p / (1 - p))


@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_logit_clamps_then_takes_the_log_odds(eps):
    X = np.array([-0.5, 0.0, 0.05, 0.25, 0.5, 0.9, 1.0, 2.0], np.float32)
    op = core.CreateOperator("Logit", ["X"], ["Y"], eps=eps)
    (Y,) = check_reference(op, [X], lambda x: (_logit_reference(x, eps),), threshold=1e-5)
    assert Y.dtype == np.float32


def test_logit_gradient_is_zero_where_the_input_was_clamped():
    X = np.array([-0.5, 0.05, 0.25, 0.5, 0.9, 1.5], np.float32)
    dY = np.array([1.0, 2.0, -1.0, 0.5, 3.0, 4.0], np.float32)
    workspace.FeedBlob("X", X)
    workspace.FeedBlob("dY", dY)
    workspace.RunOperatorOnce(core.CreateOperator("LogitGradient", ["X", "dY"], ["dX"],
                                                  eps=0.1))
    inside = (X >= 0.1) & (X <= 0.9)
    expected = np.where(inside, dY / (X.astype(np.float64) * (1 - X)), 0.0)
    np.testing.assert_allclose(workspace.FetchBlob("dX"), expected, rtol=1e-5)
    check_gradient(core.CreateOperator("Logit", ["X"], ["Y"]),
                   [np.array([0.2, 0.4, 0.7], np.float32)], input_index=0)


def test_logit_takes_float32_only():
    assert_fails_unchanged(core.CreateOperator("Logit", ["X"], ["Y"]),
                           [np.array([0.5], np.float64)], EnforceError, "float32")
