"""Caffe2's ``caffe2.python.rnn.rnn_cell_test_util``: the helpers its RNN operator tests
share (``sigmoid``, ``tanh`` in NumPy, and ``_prepare_rnn``, which builds a model with
one recurrent net of ``create_rnn`` -- rnn_cell.LSTM, gru_cell.GRU, ... -- over
random states)."""

from __future__ import annotations

import numpy as np

from caffe2lite import scope, workspace
from caffe2lite.model_helper import ModelHelper


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    return 2.0 * sigmoid(2.0 * x) - 1


def _prepare_rnn(t, n, dim_in, create_rnn, outputs_with_grads, forget_bias,
                 memory_optim=False, forward_only=False, drop_states=False, T=None,  # noqa: N803
                 two_d_initial_states=None, dim_out=None, num_states=2, **kwargs):
    """(outputs of create_rnn, the model's net, [initial state blobs..., input blob]).

    The states ``state_<i>/layer_<l>`` are fed random (N, D) or (1, N, D) arrays, the
    rnn is built under name scope "test_name_scope" with scope "external/recurrent",
    the init net is run and ``seq_lengths`` fed lengths in [1, t]; the input blob
    ``test_name_scope/input_blob`` is left for the caller to feed."""
    if dim_out is None:
        dim_out = [dim_in]
    model = ModelHelper(name="external")
    if two_d_initial_states is None:
        two_d_initial_states = np.random.randint(2)

    def generate_input_state(n, d):
        shape = (n, d) if two_d_initial_states else (1, n, d)
        return np.random.randn(*shape).astype(np.float32)

    states = []
    for layer_id, d in enumerate(dim_out):
        for i in range(num_states):
            states.append(model.net.AddExternalInput(f"state_{i}/layer_{layer_id}"))
            workspace.FeedBlob(states[-1], generate_input_state(n, d))
    with scope.NameScope("test_name_scope"):
        input_blob, seq_lengths = model.net.AddScopedExternalInputs("input_blob", "seq_lengths")
        outputs = create_rnn(model, input_blob, seq_lengths, states, dim_in=dim_in,
                             dim_out=dim_out, scope="external/recurrent",
                             outputs_with_grads=outputs_with_grads,
                             memory_optimization=memory_optim, forget_bias=forget_bias,
                             forward_only=forward_only, drop_states=drop_states,
                             static_rnn_unroll_size=T, **kwargs)
    workspace.RunNetOnce(model.param_init_net)
    workspace.FeedBlob(seq_lengths, np.random.randint(1, t + 1, size=(n,)).astype(np.int32))
    return outputs, model.net, states + [input_blob]
