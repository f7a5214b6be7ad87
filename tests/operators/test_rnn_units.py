"""LSTMUnit and GRUUnit (one recurrent step each) and their gradient ops, against NumPy
written here from Caffe2's documented step and finite differences of it."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError

N, D = 4, 3


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_step(h_prev, c_prev, gates, lengths, t, forget_bias=0.0, drop_states=False):
    i, f, o, g = np.split(gates.astype(np.float64), 4, axis=2)
    c = sigmoid(f + forget_bias) * c_prev + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    if lengths is not None:
        valid = (t < lengths)[None, :, None]
        c = np.where(valid, c, 0.0 if drop_states else c_prev)
        h = np.where(valid, h, 0.0 if drop_states else h_prev)
    return h, c


def gru_step(h_prev, gates, lengths, t, drop_states=False):
    _, u, o = np.split(gates.astype(np.float64), 3, axis=2)
    h = sigmoid(u) * h_prev + (1 - sigmoid(u)) * np.tanh(o)
    if lengths is not None:
        h = np.where((t < lengths)[None, :, None], h, 0.0 if drop_states else h_prev)
    return h


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64)."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for k in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[k] += eps
        minus.flat[k] -= eps
        grad.flat[k] = (f(plus) - f(minus)) / (2 * eps)
    return grad


def run(op_type, names, values, outputs, **args):
    for name, value in zip(names, values):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, names, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


LENGTHS = np.array([1, 3, 0, 2], np.int32)


@pytest.mark.parametrize("with_lengths, drop_states, forget_bias",
                         [(True, False, 0.0), (True, True, 1.5), (False, False, 0.5)])
def test_lstm_unit_forward_and_gradient(rng, with_lengths, drop_states, forget_bias):
    h, c = (rng.standard_normal((1, N, D)).astype(np.float32) for _ in range(2))
    gates = rng.standard_normal((1, N, 4 * D)).astype(np.float32)
    t = np.array([1], np.int32)
    lengths = LENGTHS if with_lengths else None
    names = ["h", "c", "gates"] + (["lengths"] if with_lengths else []) + ["t"]
    values = [h, c, gates] + ([lengths] if with_lengths else []) + [t]
    args = dict(forget_bias=forget_bias, drop_states=drop_states,
                sequence_lengths=with_lengths)
    H, C = run("LSTMUnit", names, values, ["H", "C"], **args)
    ref_h, ref_c = lstm_step(h, c, gates, lengths, 1, forget_bias, drop_states)
    np.testing.assert_allclose(H, ref_h, atol=1e-6)
    np.testing.assert_allclose(C, ref_c, atol=1e-6)

    # The gradient ops the registry makes, fed dH and dC, against central differences of
    # sum(H * dH) + sum(C * dC) through the NumPy step.
    dH, dC = (rng.standard_normal((1, N, D)).astype(np.float32) for _ in range(2))
    op = core.CreateOperator("LSTMUnit", names, ["H", "C"], **args)
    grad_ops, g_input = core.GradientRegistry.GetGradientForOp(op, ["H_grad", "C_grad"])
    assert [g.type for g in grad_ops] == ["LSTMUnitGradient"]
    assert g_input[3:] == [None] * (len(names) - 3)  # no gradient for lengths, timestep
    workspace.FeedBlob("H_grad", dH)
    workspace.FeedBlob("C_grad", dC)
    workspace.RunOperatorsOnce(grad_ops)

    def loss(hv=h, cv=c, gv=gates):
        rh, rc = lstm_step(hv, cv, gv, lengths, 1, forget_bias, drop_states)
        return (rh * dH).sum() + (rc * dC).sum()

    # H_prev reaches H only through the gates in a live row; LSTMUnitGradient gives it
    # zero there, as Caffe2's (the step's FC carries the rest) -- so only dead rows count.
    expected_dh = numeric_grad(lambda x: loss(hv=x), h)
    if lengths is not None:
        expected_dh[:, lengths > 1, :] = 0.0
    else:
        expected_dh[:] = 0.0
    np.testing.assert_allclose(workspace.FetchBlob(g_input[0]), expected_dh, atol=1e-4)
    np.testing.assert_allclose(workspace.FetchBlob(g_input[1]), numeric_grad(
        lambda x: loss(cv=x), c), atol=1e-4)
    np.testing.assert_allclose(workspace.FetchBlob(g_input[2]), numeric_grad(
        lambda x: loss(gv=x), gates), atol=1e-4)


@pytest.mark.parametrize("with_lengths, drop_states", [(True, False), (True, True), (False, False)])
def test_gru_unit_forward_and_gradient(rng, with_lengths, drop_states):
    h = rng.standard_normal((1, N, D)).astype(np.float32)
    gates = rng.standard_normal((1, N, 3 * D)).astype(np.float32)
    lengths = LENGTHS if with_lengths else None
    names = ["h", "gates"] + (["lengths"] if with_lengths else []) + ["t"]
    values = [h, gates] + ([lengths] if with_lengths else []) + [np.array([1], np.int32)]
    args = dict(drop_states=drop_states, sequence_lengths=with_lengths)
    (H,) = run("GRUUnit", names, values, ["H"], **args)
    np.testing.assert_allclose(H, gru_step(h, gates, lengths, 1, drop_states), atol=1e-6)

    dH = rng.standard_normal((1, N, D)).astype(np.float32)
    op = core.CreateOperator("GRUUnit", names, ["H"], **args)
    grad_ops, g_input = core.GradientRegistry.GetGradientForOp(op, ["H_grad"])
    workspace.FeedBlob("H_grad", dH)
    workspace.RunOperatorsOnce(grad_ops)

    def loss(hv=h, gv=gates):
        return (gru_step(hv, gv, lengths, 1, drop_states) * dH).sum()

    np.testing.assert_allclose(workspace.FetchBlob(g_input[0]),
                               numeric_grad(lambda x: loss(hv=x), h), atol=1e-4)
    # The reset gate's share is 0 here: the step net applies it before GRUUnit.
    np.testing.assert_allclose(workspace.FetchBlob(g_input[1]),
                               numeric_grad(lambda x: loss(gv=x), gates), atol=1e-4)


@pytest.mark.parametrize("op_type, values, message", [
    ("LSTMUnit", dict(gates=np.zeros((1, N, 3 * D), np.float32)), "shape"),
    ("LSTMUnit", dict(lengths=np.array([1, 2], np.int32)), "one per batch row"),
    ("LSTMUnit", dict(t=np.array([1.0], np.float32)), "timestep"),
    ("LSTMUnit", dict(h=np.zeros((1, N, D), np.int32)), "float tensor"),
])
def test_bad_inputs_are_refused_and_change_nothing(rng, op_type, values, message):
    blobs = dict(h=np.zeros((1, N, D), np.float32), c=np.zeros((1, N, D), np.float32),
                 gates=np.zeros((1, N, 4 * D), np.float32), lengths=LENGTHS,
                 t=np.array([0], np.int32))
    blobs.update(values)
    for name, value in blobs.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("H", np.ones(2, np.float32))
    with pytest.raises(Caffe2LiteError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator(
            op_type, ["h", "c", "gates", "lengths", "t"], ["H", "C"]))
    np.testing.assert_array_equal(workspace.FetchBlob("H"), np.ones(2, np.float32))
    assert not workspace.HasBlob("C")


def test_zero_gradient_gives_zeros_like_its_input():
    workspace.FeedBlob("x", np.arange(6, dtype=np.float32).reshape(2, 3))
    op = core.CreateOperator("ZeroGradient", ["x"], [])
    workspace.RunOperatorOnce(op)
    grad_ops, g_input = core.GradientRegistry.GetGradientForOp(op, [])
    workspace.RunOperatorsOnce(grad_ops)
    np.testing.assert_array_equal(workspace.FetchBlob(g_input[0]), np.zeros((2, 3)))
