"""LSTMUnit and LSTMUnitGradient: one timestep of a standard LSTM (no peepholes), as
Caffe2's recurrent nets (caffe2lite.rnn_cell.LSTMCell) run it inside their step net.

The gates arrive pre-activation and fused, ``(1, N, 4D)`` in the order input, forget,
output, cell; with ``i, f, o = sigmoid(...)`` (``forget_bias`` added to the forget
gate) and ``g = tanh(...)``::

    C = f * C_prev + i * g          H = o * tanh(C)

Rows whose sequence has ended (``timestep >= seq_lengths[n]``) carry ``H_prev`` and
``C_prev`` over unchanged, or zeros with ``drop_states``.  NumPy over the whole batch.
"""

from caffe2lite.operators._rnn_unit import (DROP_STATES_ARG, SEQUENCE_LENGTHS_ARG, carry_over,
                                            expect_inputs, float_state, same_shape, sigmoid,
                                            valid_rows)
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)

ARGS = [Arg("forget_bias", "float", 0.0, "added to the forget gate before its sigmoid"),
        SEQUENCE_LENGTHS_ARG, DROP_STATES_ARG]


def lstm_unit_gradient_maker(op_def, g_output):
    """LSTMUnitGradient(inputs, hidden_t, cell_t, dhidden_t, dcell_t) -> (dhidden_prev,
    dcell_prev, dgates), as Caffe2's GetLSTMUnitGradient."""
    ins = list(op_def.input) + list(op_def.output) + \
        [dense_output_grad(op_def, g_output, 0), dense_output_grad(op_def, g_output, 1)]
    outs = [grad_name(b) for b in op_def.input[:3]]
    return [make_operator("LSTMUnitGradient", ins, outs)], outs + [None] * (len(op_def.input) - 3)


def _counts_match(n_inputs, args):
    return n_inputs == (5 if args.get("sequence_lengths", True) else 4)


def _state_shapes(ctx, h_prev, c_prev, *rest):
    return (c_prev, c_prev)


register_schema(OpSchema(
    "LSTMUnit", num_inputs=(4, 5), num_outputs=2, args=ARGS, infer_shapes=_state_shapes,
    inputs=[("hidden_t_prev", "(1, N, D)"), ("cell_t_prev", "(1, N, D)"),
            ("gates", "(1, N, 4D) pre-activation: input, forget, output, cell"),
            ("seq_lengths", "(N,) int32 (only with sequence_lengths)"),
            ("timestep", "int32 tensor holding t (on the CPU)")],
    outputs=[("hidden_t", "(1, N, D)"), ("cell_t", "(1, N, D)")],
    doc="One LSTM step, sequence-length aware: C = f*C_prev + i*g, H = o*tanh(C).",
    gradient=lstm_unit_gradient_maker))

register_schema(OpSchema(
    "LSTMUnitGradient", num_inputs=(8, 9), num_outputs=3, args=ARGS,
    infer_shapes=lambda ctx, h_prev, c_prev, gates, *rest: (h_prev, c_prev, gates),
    inputs=[("hidden_t_prev", ""), ("cell_t_prev", ""), ("gates", ""),
            ("seq_lengths", "(only with sequence_lengths)"), ("timestep", ""),
            ("hidden_t", ""), ("cell_t", ""), ("hidden_t_grad", ""), ("cell_t_grad", "")],
    outputs=[("hidden_t_prev_grad", "zero where the row is in its sequence: the "
                                    "gradient reaches H_prev through the gates"),
             ("cell_t_prev_grad", ""), ("gates_grad", "")],
    doc="Gradient of LSTMUnit."))


def _check(ctx, inputs, with_lengths):
    expect_inputs(ctx, inputs, with_lengths, with_lengths - 1)
    h_prev = float_state(ctx, 0, inputs[0])
    c_prev = float_state(ctx, 1, inputs[1])
    gates = float_state(ctx, 2, inputs[2])
    _, n, d = c_prev.shape
    same_shape(ctx, 0, h_prev, c_prev.shape)
    same_shape(ctx, 2, gates, c_prev.shape[:2] + (4 * d,))
    return h_prev, c_prev, gates, n, d


def _gates(ctx, gates, d):
    xp = ctx.xp
    x = gates.reshape(gates.shape[:2] + (4, d))
    forget_bias = gates.dtype.type(ctx.args["forget_bias"])
    return (sigmoid(xp, x[..., 0, :]), sigmoid(xp, x[..., 1, :] + forget_bias),
            sigmoid(xp, x[..., 2, :]), xp.tanh(x[..., 3, :]))


@register_kernel("LSTMUnit", devices=("CPU", "CUDA"))
def lstm_unit(ctx, *inputs):
    xp = ctx.xp
    h_prev, c_prev, gates, n, d = _check(ctx, inputs, 5)
    _, valid, _ = valid_rows(ctx, n, inputs, 3)
    i, f, o, g = _gates(ctx, gates, d)
    c = f * c_prev + i * g
    h = o * xp.tanh(c)
    drop = ctx.args["drop_states"]
    c, h = carry_over(xp, valid, c, c_prev, drop), carry_over(xp, valid, h, h_prev, drop)
    return h.astype(c_prev.dtype, copy=False), c.astype(c_prev.dtype, copy=False)


@register_kernel("LSTMUnitGradient", devices=("CPU", "CUDA"))
def lstm_unit_gradient(ctx, *inputs):
    xp = ctx.xp
    h_prev, c_prev, gates, n, d = _check(ctx, inputs, 9)
    _, valid, after = valid_rows(ctx, n, inputs, 3)
    c, dh, dc = (float_state(ctx, k, inputs[k]) for k in (after + 1, after + 2, after + 3))
    for k, x in ((after + 1, c), (after + 2, dh), (after + 3, dc)):
        same_shape(ctx, k, x, c_prev.shape)
    i, f, o, g = _gates(ctx, gates, d)
    tanh_c = xp.tanh(c)
    c_term = dc + dh * o * (1 - tanh_c * tanh_c)
    dc_prev = c_term * f
    dh_prev = xp.zeros_like(h_prev)
    dx = xp.stack([c_term * g * i * (1 - i), c_term * c_prev * f * (1 - f),
                   dh * tanh_c * o * (1 - o), c_term * i * (1 - g * g)], axis=-2)
    drop = ctx.args["drop_states"]
    dc_prev = carry_over(xp, valid, dc_prev, dc, drop)
    dh_prev = carry_over(xp, valid, dh_prev, dh, drop)
    dx = carry_over(xp, valid, dx, None, True)
    dtype = c_prev.dtype
    return (dh_prev.astype(dtype, copy=False), dc_prev.astype(dtype, copy=False),
            dx.reshape(gates.shape).astype(dtype, copy=False))
