"""GRUUnit and GRUUnitGradient: the last part of one GRU timestep, as Caffe2's recurrent
nets (caffe2lite.gru_cell.GRUCell) run it inside their step net.

The gates arrive pre-activation and fused, ``(1, N, 3D)``: reset, update, output.  The
reset gate was already applied by the step net (to the hidden state before the output
gate's matrix product), so only ``u = sigmoid(update)`` and ``o = tanh(output)`` are
used here::

    H = u * H_prev + (1 - u) * o

Rows whose sequence has ended carry ``H_prev`` over (zeros with ``drop_states``).
"""

from caffe2lite.operators._rnn_unit import (DROP_STATES_ARG, SEQUENCE_LENGTHS_ARG, carry_over,
                                            expect_inputs, float_state, same_shape, sigmoid,
                                            valid_rows)
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)

ARGS = [SEQUENCE_LENGTHS_ARG, DROP_STATES_ARG,
        Arg("forget_bias", "float", 0.0, "accepted and unused (gru_cell passes it), as in "
                                         "Caffe2")]


def gru_unit_gradient_maker(op_def, g_output):
    """GRUUnitGradient(inputs, hidden_t, dhidden_t) -> (dhidden_prev, dgates), as Caffe2's
    GetGRUUnitGradient."""
    ins = list(op_def.input) + [op_def.output[0], dense_output_grad(op_def, g_output)]
    outs = [grad_name(op_def.input[0]), grad_name(op_def.input[1])]
    return [make_operator("GRUUnitGradient", ins, outs)], outs + [None] * (len(op_def.input) - 2)


register_schema(OpSchema(
    "GRUUnit", num_inputs=(3, 4), num_outputs=1, args=ARGS,
    infer_shapes=lambda ctx, h_prev, *rest: (h_prev,),
    inputs=[("hidden_prev", "(1, N, D)"),
            ("gates", "(1, N, 3D) pre-activation: reset, update, output"),
            ("seq_lengths", "(N,) int32 (only with sequence_lengths)"),
            ("t", "int32 tensor holding the timestep (on the CPU)")],
    outputs=[("hidden", "(1, N, D): u * H_prev + (1 - u) * tanh(output)")],
    doc="One GRU step, sequence-length aware: H = u*H_prev + (1-u)*tanh(output gate).",
    gradient=gru_unit_gradient_maker))

register_schema(OpSchema(
    "GRUUnitGradient", num_inputs=(5, 6), num_outputs=2, args=ARGS,
    infer_shapes=lambda ctx, h_prev, gates, *rest: (h_prev, gates),
    inputs=[("hidden_prev", ""), ("gates", ""), ("seq_lengths", "(only with sequence_lengths)"),
            ("t", ""), ("hidden", ""), ("hidden_grad", "")],
    outputs=[("hidden_prev_grad", ""), ("gates_grad", "zero for the reset gate")],
    doc="Gradient of GRUUnit."))


def _check(ctx, inputs, with_lengths):
    expect_inputs(ctx, inputs, with_lengths, with_lengths - 1)
    h_prev = float_state(ctx, 0, inputs[0])
    gates = float_state(ctx, 1, inputs[1])
    _, n, d = h_prev.shape
    same_shape(ctx, 1, gates, h_prev.shape[:2] + (3 * d,))
    x = gates.reshape(gates.shape[:2] + (3, d))
    return h_prev, gates, n, sigmoid(ctx.xp, x[..., 1, :]), ctx.xp.tanh(x[..., 2, :])


@register_kernel("GRUUnit", devices=("CPU", "CUDA"))
def gru_unit(ctx, *inputs):
    h_prev, gates, n, u, o = _check(ctx, inputs, 4)
    _, valid, _ = valid_rows(ctx, n, inputs, 2)
    h = carry_over(ctx.xp, valid, u * h_prev + (1 - u) * o, h_prev, ctx.args["drop_states"])
    return (h.astype(h_prev.dtype, copy=False),)


@register_kernel("GRUUnitGradient", devices=("CPU", "CUDA"))
def gru_unit_gradient(ctx, *inputs):
    xp = ctx.xp
    h_prev, gates, n, u, o = _check(ctx, inputs, 6)
    _, valid, after = valid_rows(ctx, n, inputs, 2)
    dh = float_state(ctx, after + 1, inputs[after + 1])
    same_shape(ctx, after + 1, dh, h_prev.shape)
    dh_prev = dh * u
    dx = xp.stack([xp.zeros_like(u), dh * (h_prev - o) * u * (1 - u),
                   dh * (1 - u) * (1 - o * o)], axis=-2)
    dh_prev = carry_over(xp, valid, dh_prev, dh, ctx.args["drop_states"])
    dx = carry_over(xp, valid, dx, None, True)
    return (dh_prev.astype(h_prev.dtype, copy=False),
            dx.reshape(gates.shape).astype(h_prev.dtype, copy=False))
