"""InferenceLSTM against an LSTM written here step by step from PyTorch's documented
equations (and against torch.nn.LSTM itself when PyTorch is installed)."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


def _params(rng, layers, bidirectional, has_biases, features, hidden):
    out = []
    for layer in range(layers):
        width = features if layer == 0 else hidden * (2 if bidirectional else 1)
        for _ in range(2 if bidirectional else 1):
            out += [rng.standard_normal((4 * hidden, width)).astype(np.float32) * 0.5,
                    rng.standard_normal((4 * hidden, hidden)).astype(np.float32) * 0.5]
            if has_biases:
                out += [rng.standard_normal(4 * hidden).astype(np.float32) * 0.5
                        for _ in range(2)]
    return out


def _lstm_reference(x, h0, c0, params, layers, bidirectional, has_biases, batch_first):
    """h_t, c_t of every cell, one time step and one batch row at a time."""
    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    seq = x.transpose(1, 0, 2) if batch_first else x
    seq = seq.astype(np.float64)
    directions = 2 if bidirectional else 1
    per_cell = 4 if has_biases else 2
    hs, cs = [], []
    for layer in range(layers):
        outs = []
        for d in range(directions):
            k = layer * directions + d
            w_ih, w_hh, *biases = params[k * per_cell:(k + 1) * per_cell]
            b = biases[0] + biases[1] if biases else 0.0
            steps = range(seq.shape[0])[::-1] if d else range(seq.shape[0])
            out = np.zeros(seq.shape[:2] + (h0.shape[2],))
            h_all, c_all = h0[k].astype(np.float64).copy(), c0[k].astype(np.float64).copy()
            for t in steps:
                for n in range(seq.shape[1]):
                    z = w_ih @ seq[t, n] + w_hh @ h_all[n] + b
                    i, f, g, o = np.split(z, 4)
                    c_all[n] = sigmoid(f) * c_all[n] + sigmoid(i) * np.tanh(g)
                    h_all[n] = sigmoid(o) * np.tanh(c_all[n])
                    out[t, n] = h_all[n]
            outs.append(out)
            hs.append(h_all)
            cs.append(c_all)
        seq = np.concatenate(outs, axis=2)
    output = seq.transpose(1, 0, 2) if batch_first else seq
    return [output.astype(np.float32), np.array(hs, np.float32), np.array(cs, np.float32)]


CONFIGS = [(1, False, True, False), (2, False, False, True), (2, True, True, False),
           (1, True, True, True)]


def _case(layers, bidirectional, has_biases, batch_first, seed=0, steps=4, batch=3,
          features=5, hidden=2):
    rng = np.random.default_rng(seed)
    directions = 2 if bidirectional else 1
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = rng.standard_normal(shape).astype(np.float32)
    h0 = rng.standard_normal((layers * directions, batch, hidden)).astype(np.float32)
    c0 = rng.standard_normal((layers * directions, batch, hidden)).astype(np.float32)
    params = _params(rng, layers, bidirectional, has_biases, features, hidden)
    names = ["x", "h0", "c0"] + [f"p{i}" for i in range(len(params))]
    op = core.CreateOperator("InferenceLSTM", names, ["out", "h", "c"], num_layers=layers,
                             bidirectional=bidirectional, has_biases=has_biases,
                             batch_first=batch_first)
    return op, [x, h0, c0] + params


@pytest.mark.parametrize("layers, bidirectional, has_biases, batch_first", CONFIGS)
def test_matches_the_step_by_step_lstm(layers, bidirectional, has_biases, batch_first):
    op, inputs = _case(layers, bidirectional, has_biases, batch_first)
    check_reference(op, inputs, lambda x, h0, c0, *p: _lstm_reference(
        x, h0, c0, p, layers, bidirectional, has_biases, batch_first), threshold=1e-4,
        atol=1e-5)


@pytest.mark.parametrize("layers, bidirectional, has_biases, batch_first", CONFIGS)
def test_matches_torch_lstm(layers, bidirectional, has_biases, batch_first):
    torch = pytest.importorskip("torch", reason="PyTorch (the suite extra) is not installed")
    op, inputs = _case(layers, bidirectional, has_biases, batch_first, seed=1)
    lstm = torch.nn.LSTM(5, 2, num_layers=layers, bias=has_biases, batch_first=batch_first,
                         bidirectional=bidirectional)
    with torch.no_grad():
        for weight, value in zip(lstm._flat_weights, inputs[3:]):
            weight.copy_(torch.from_numpy(value))
        expected, (h, c) = lstm(*[torch.from_numpy(v) for v in inputs[:1]],
                                (torch.from_numpy(inputs[1]), torch.from_numpy(inputs[2])))
    check_reference(op, inputs, lambda *_: [expected.numpy(), h.numpy(), c.numpy()],
                    threshold=1e-4, atol=1e-5)


@pytest.mark.parametrize("change, match", [
    (lambda i: i.pop(), "incorrect number of LSTM parameters: 7"),
    (lambda i: i.__setitem__(4, i[4][:, :1]), "input 4 .*must be of shape \\(8, 2\\)"),
    (lambda i: i.__setitem__(1, i[1][:1]), "input 1 .*num_layers \\* directions = 2"),
    (lambda i: i.__setitem__(0, i[0].astype(np.float64)), "input 0 .*float32")])
def test_bad_inputs_are_named(change, match):
    op, inputs = _case(1, True, True, False)
    change(inputs)
    del op.input[len(inputs):]
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(op)
    assert not workspace.HasBlob("out")
