"""caffe2lite.rnn_cell / gru_cell: LSTM and GRU nets as Caffe2 built them, against NumPy
recurrences written here (with the parameters the builders created), and their gradients
against finite differences.  Needs caffe2lite.model_helper and brew (the modelapi work)."""

import numpy as np
import pytest

pytest.importorskip("caffe2lite.model_helper", reason="rnn_cell builds on ModelHelper and "
                                                      "brew")
from caffe2lite import gradient_checker, gru_cell, rnn_cell, workspace  # noqa: E402
from caffe2lite.model_helper import ModelHelper  # noqa: E402

T, N, D_IN, H = 3, 2, 3, 4


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def linear(x, name):
    return x @ workspace.FetchBlob(name + "_w").T + workspace.FetchBlob(name + "_b")


def build(create, **kwargs):
    rng = np.random.default_rng(5)
    model = ModelHelper(name="rnn_test")
    x = rng.standard_normal((T, N, D_IN)).astype(np.float32)
    lengths = np.array([3, 2], np.int32)
    states = [rng.standard_normal((1, N, H)).astype(np.float32) for _ in range(2)]
    for name, value in [("x", x), ("lengths", lengths), ("h0", states[0]), ("c0", states[1])]:
        workspace.FeedBlob(name, value)
    initial = ["h0", "c0"] if create is not gru_cell.GRU else ["h0"]
    outputs = create(model, "x", "lengths", initial, dim_in=D_IN, dim_out=H, scope="r",
                     **kwargs)
    workspace.RunNetOnce(model.param_init_net)
    return model, outputs, x, lengths, states


def lstm_reference(x, lengths, h, c):
    hs = []
    h, c = h[0].astype(np.float64), c[0].astype(np.float64)
    for t in range(T):
        gates = linear(x[t], "r/i2h") + linear(h, "r/gates_t")
        i, f, o, g = np.split(gates, 4, axis=1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        live = (t < lengths)[:, None]
        h, c = np.where(live, h_new, h), np.where(live, c_new, c)
        hs.append(h)
    return np.stack(hs), c


def gru_reference(x, lengths, h):
    hs = []
    h = h[0].astype(np.float64)
    for t in range(T):
        xr, xu, xo = np.split(linear(x[t], "r/i2h"), 3, axis=1)
        r = sigmoid(linear(h, "r/reset_gate_t") + xr)
        u = sigmoid(linear(h, "r/update_gate_t") + xu)
        o = np.tanh(linear(r * h, "r/output_gate_t") + xo)
        h = np.where((t < lengths)[:, None], u * h + (1 - u) * o, h)
        hs.append(h)
    return np.stack(hs)


def test_lstm_matches_numpy_and_names_caffe2s_parameters():
    model, (h_all, h_last, c_all, c_last), x, lengths, (h0, c0) = build(rnn_cell.LSTM)
    assert sorted(str(p) for p in model.params) == sorted(
        ["r/i2h_w", "r/i2h_b", "r/gates_t_w", "r/gates_t_b"])
    workspace.RunNetOnce(model.net)
    hs, c = lstm_reference(x, lengths, h0, c0)
    np.testing.assert_allclose(workspace.FetchBlob(h_all), hs, atol=1e-5)
    np.testing.assert_allclose(workspace.FetchBlob(h_last)[0], hs[-1], atol=1e-5)
    np.testing.assert_allclose(workspace.FetchBlob(c_last)[0], c, atol=1e-5)


def test_gru_matches_numpy():
    model, (h_all, h_last), x, lengths, (h0, _) = build(gru_cell.GRU)
    workspace.RunNetOnce(model.net)
    np.testing.assert_allclose(workspace.FetchBlob(h_all), gru_reference(x, lengths, h0),
                               atol=1e-5)


@pytest.mark.parametrize("create", [rnn_cell.LSTM, gru_cell.GRU])
def test_gradient_of_the_input_matches_finite_differences(create):
    model, outputs, x, _, _ = build(create)
    mean, worst = gradient_checker.NetGradientChecker.Check(
        model.net, [outputs[0]], {"x": x}, "x", step_size=1e-3, threshold=1e-2,
        print_net=False)
    assert worst < 1e-2
