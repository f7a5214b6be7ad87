"""RecurrentNetwork and RecurrentNetworkGradient, built by caffe2lite.recurrent.recurrent_net
over a small tanh cell, against a NumPy loop written here and finite differences of it;
the internal link ops, the blob fetcher, cloning with remap_funcs, and bad input."""

import numpy as np
import pytest

from caffe2lite import core, recurrent, workspace
from caffe2lite.errors import Caffe2LiteError

T, N, D = 4, 3, 2


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return dict(x=rng.standard_normal((T, N, D)).astype(np.float32),
                h0=rng.standard_normal((1, N, D)).astype(np.float32),
                W=rng.standard_normal((D, D)).astype(np.float32),
                b=rng.standard_normal(D).astype(np.float32),
                G=rng.standard_normal((T, N, D)).astype(np.float32),
                G_last=rng.standard_normal((1, N, D)).astype(np.float32))


def tanh_cell():
    """hidden_t = tanh(hidden_t_prev @ W.T + b + input_t), a step net."""
    cell = core.Net("cell")
    cell.AddExternalInputs("input_t", "hidden_t_prev", "W", "b", "timestep")
    h2h = cell.FC(["hidden_t_prev", "W", "b"], "h2h", axis=2)
    cell.AddExternalOutputs(cell.Tanh(cell.Add([h2h, "input_t"], "pre"), "hidden_t"))
    return cell


def build(initial="h0", forward_only=False, outputs_with_grads=(0,)):
    net = core.Net("rnn")
    outputs = recurrent.recurrent_net(net, tanh_cell(), [("input_t", "x")],
                                      [("hidden_t_prev", initial)],
                                      {"hidden_t_prev": "hidden_t"}, timestep="timestep",
                                      forward_only=forward_only,
                                      outputs_with_grads=outputs_with_grads)
    return net, outputs


def reference(x, h0, W, b):
    h = np.broadcast_to(h0.reshape(-1, h0.shape[-1]), (x.shape[1], h0.shape[-1]))
    out = []
    for t in range(x.shape[0]):
        h = np.tanh(h @ W.T + b + x[t])
        out.append(h)
    return np.stack(out)


def feed(values):
    for name, value in values.items():
        workspace.FeedBlob(name, value)


@pytest.mark.parametrize("forward_only", [False, True])
@pytest.mark.parametrize("h0_shape", [(1, N, D), (N, D), (D,)])
def test_forward_matches_a_loop(data, forward_only, h0_shape):
    data["h0"] = data["h0"].reshape(-1)[:int(np.prod(h0_shape))].reshape(h0_shape)
    feed(data)
    net, (h_all, h_last) = build(forward_only=forward_only)
    workspace.RunNetOnce(net)
    expected = reference(data["x"].astype(np.float64), data["h0"], data["W"], data["b"])
    np.testing.assert_allclose(workspace.FetchBlob(h_all), expected, atol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob(h_last), expected[-1:], atol=1e-6)


@pytest.mark.parametrize("h0_shape", [(1, N, D), (D,)])
def test_gradients_match_finite_differences(data, h0_shape):
    data["h0"] = data["h0"].reshape(-1)[:int(np.prod(h0_shape))].reshape(h0_shape)
    feed(data)
    net, (h_all, h_last) = build(outputs_with_grads=(0, 1))
    grads = net.AddGradientOperators({h_all: "G", h_last: "G_last"})
    workspace.RunNetOnce(net)

    values = {k: data[k].astype(np.float64) for k in ("x", "h0", "W", "b")}

    def loss(**changed):
        out = reference(**{**values, **changed})
        return (out * data["G"]).sum() + (out[-1:] * data["G_last"]).sum()

    for name, value in values.items():
        numeric = np.zeros_like(value)
        for k in range(value.size):
            plus, minus = value.copy(), value.copy()
            plus.flat[k] += 1e-6
            minus.flat[k] -= 1e-6
            numeric.flat[k] = (loss(**{name: plus}) - loss(**{name: minus})) / 2e-6
        np.testing.assert_allclose(workspace.FetchBlob(str(grads[name])), numeric, atol=1e-4,
                                   err_msg=name)


def test_step_blobs_are_fetched_per_step(data):
    feed(data)
    net, _ = build()
    workspace.RunNetOnce(net)
    names = recurrent.retrieve_step_blobs(net, "rnn")
    assert {n.decode() for n in names} >= {f"rnn_pre{t}" for t in range(T)}
    expected = reference(data["x"].astype(np.float64), data["h0"], data["W"], data["b"])
    np.testing.assert_allclose(workspace.FetchBlob("rnn_hidden_t2"), expected[2:3], atol=1e-6)


def test_internal_link_ops():
    workspace.FeedBlob("t", np.array([1], np.int32))
    workspace.FeedBlob("ext", np.arange(12, dtype=np.float32).reshape(4, 3))
    workspace.RunOperatorOnce(core.CreateOperator(
        "rnn_internal_apply_link", ["t", "ext"], ["internal", "ext"], offset=1, window=2))
    np.testing.assert_array_equal(workspace.FetchBlob("internal"),
                                  np.arange(6, 12, dtype=np.float32).reshape(2, 3))
    workspace.FeedBlob("og", np.ones((2, 3), np.float32))
    workspace.RunOperatorOnce(core.CreateOperator(
        "rnn_internal_accumulate_gradient_input", ["t", "og", "ext"], ["ext"], offset=1))
    expected = np.arange(12, dtype=np.float32).reshape(4, 3)
    expected[2] += 1
    np.testing.assert_array_equal(workspace.FetchBlob("ext"), expected)
    with pytest.raises(Caffe2LiteError, match="outside"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "rnn_internal_apply_link", ["t", "ext"], ["internal", "ext"], offset=3, window=1))


def test_clone_partial_renames_what_the_op_names_in_its_arguments(data):
    net, (h_all, _) = build()
    clone, (out,) = net.ClonePartial("copy", {"x": "x2", "h0": "h02"}, [h_all])
    op = clone.Proto().op[-1]
    assert op.type == "RecurrentNetwork"
    args = {a.name: a for a in op.arg}
    assert "x2" in [s.decode() for s in args["link_external"].strings]
    assert str(out) in [s.decode() for s in args["alias_dst"].strings]
    feed({"x2": data["x"], "h02": data["h0"], "W": data["W"], "b": data["b"]})
    workspace.RunNetOnce(clone)
    np.testing.assert_allclose(workspace.FetchBlob(out), reference(
        data["x"].astype(np.float64), data["h0"], data["W"], data["b"]), atol=1e-6)


def test_a_failing_step_changes_nothing(data):
    data["x"] = np.zeros((T, N, D + 1), np.float32)  # the step's Add cannot broadcast it
    feed(data)
    net, (h_all, _) = build()
    before = {name: workspace.FetchBlob(name) for name in workspace.Blobs()}
    with pytest.raises(Caffe2LiteError):
        workspace.RunNetOnce(net)
    assert sorted(workspace.Blobs()) == sorted(before)
    for name, value in before.items():
        np.testing.assert_array_equal(workspace.FetchBlob(name), value)


def test_missing_step_net_is_an_error():
    workspace.FeedBlob("x", np.zeros((2, 1, 1), np.float32))
    with pytest.raises(Caffe2LiteError, match="step_net"):
        workspace.RunOperatorOnce(core.CreateOperator("RecurrentNetwork", ["x"], ["y", "ws"]))


def test_gradients_when_a_step_output_is_also_read_in_the_step(data):
    """As in rnn_cell's attention cells: the step exposes a blob it also reads (raw is an
    output and feeds the Scale whose output is the linked state).  Its seed gradient
    must not be double counted, nor be waited for."""
    feed(data)
    cell = core.Net("cell2")
    cell.AddExternalInputs("input_t", "hidden_t_prev", "W", "b", "timestep")
    h2h = cell.FC(["hidden_t_prev", "W", "b"], "h2h", axis=2)
    raw = cell.Tanh(cell.Add([h2h, "input_t"], "pre"), "raw")
    hidden = cell.Scale(raw, "hidden_t", scale=2.0)
    cell.AddExternalOutputs(raw, hidden)
    net = core.Net("rnn2")
    h_all, _ = recurrent.recurrent_net(net, cell, [("input_t", "x")],
                                       [("hidden_t_prev", "h0")], {"hidden_t_prev": "hidden_t"},
                                       timestep="timestep")
    grads = net.AddGradientOperators({h_all: "G"})
    workspace.RunNetOnce(net)

    def loss(W):
        h, total = data["h0"][0].astype(np.float64), 0.0
        for t in range(T):
            h = 2.0 * np.tanh(h @ W.T + data["b"] + data["x"][t])
            total += (h * data["G"][t]).sum()
        return total

    W = data["W"].astype(np.float64)
    numeric = np.zeros_like(W)
    for k in range(W.size):
        plus, minus = W.copy(), W.copy()
        plus.flat[k] += 1e-6
        minus.flat[k] -= 1e-6
        numeric.flat[k] = (loss(plus) - loss(minus)) / 2e-6
    np.testing.assert_allclose(workspace.FetchBlob(str(grads["W"])), numeric, atol=1e-4)
