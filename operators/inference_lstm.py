"""InferenceLSTM (caffe2/operators/inference_lstm_op.*): PyTorch's nn.LSTM forward pass.

Inputs: the sequence (T, B, I) -- (B, T, I) with ``batch_first`` --, the initial
hidden and cell states (layers * directions, B, H), then each cell's parameters in
PyTorch's ``_flat_weights`` order: per layer (and per direction, forward first)
w_ih (4H, in), w_hh (4H, H) and, with ``has_biases``, b_ih and b_hh (4H,).  Gates in
PyTorch's order i, f, g, o: c' = sigmoid(f) * c + sigmoid(i) * tanh(g), h' =
sigmoid(o) * tanh(c').  A bidirectional layer runs a second cell over the reversed
sequence and concatenates both outputs on the feature axis.  Outputs: the last
layer's outputs and the final hidden and cell states of every layer and direction.

Each layer projects all time steps' inputs in one matrix product; only the
recurrent product h @ w_hh^T is left in the loop over time, which the recurrence
makes sequential.
"""

import numpy as np

from caffe2lite.runtime import (INT_MAX, NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _shapes(ctx, x, h0, c0, *params):
    if x is None or h0 is None or x.ndim != 3 or h0.ndim != 3:
        return (None, None, None)
    steps, batch = (x.shape[1], x.shape[0]) if ctx.args["batch_first"] else x.shape[:2]
    width = h0.shape[2] * (2 if ctx.args["bidirectional"] else 1)
    out = (batch, steps, width) if ctx.args["batch_first"] else (steps, batch, width)
    return (TensorSpec(out, x.dtype), TensorSpec(h0.shape, h0.dtype),
            TensorSpec(h0.shape, h0.dtype))


register_schema(OpSchema(
    # Caffe2's schema said 1 to INT_MAX inputs; its kernel read at least 3
    "InferenceLSTM", num_inputs=(3, INT_MAX), num_outputs=3, infer_shapes=_shapes,
    args=[Arg("num_layers", "int", 1, "number of layers in the lstm stack"),
          Arg("has_biases", "bool", True, "whether the cells have biases or not"),
          Arg("batch_first", "bool", False, "whether the batch is at dim 0"),
          Arg("bidirectional", "bool", False, "if bidirectional")],
    inputs=[("input", "float32 (T, B, I), or (B, T, I) with batch_first"),
            ("hidden_0", "float32 (layers * directions, B, H) initial hidden states"),
            ("hidden_1", "float32 (layers * directions, B, H) initial cell states"),
            ("params...", "per layer and direction: w_ih, w_hh[, b_ih, b_hh]")],
    outputs=[("output", "the output of the last layer of lstm"),
             ("hidden", "hidden state at t = seq_len"),
             ("cell", "cell state at t = seq_len")],
    doc="The forward pass of a (stacked, optionally bidirectional) LSTM with PyTorch's "
        "parameter layout, for inference.",
    gradient=NO_GRADIENT))


def _sigmoid(xp, x):
    return 1 / (1 + xp.exp(-x))


def _run_cell(xp, projected, h, c, w_hh, b_hh, reverse):
    """One direction of one layer over all steps; projected = x @ w_ih^T + b_ih."""
    steps = projected.shape[0]
    outputs = xp.empty(projected.shape[:2] + h.shape[-1:], projected.dtype)
    w_hh_t = w_hh.T
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        gates = projected[t] + h @ w_hh_t
        if b_hh is not None:
            gates = gates + b_hh
        i, f, g, o = xp.split(gates, 4, axis=1)
        c = _sigmoid(xp, f) * c + _sigmoid(xp, i) * xp.tanh(g)
        h = _sigmoid(xp, o) * xp.tanh(c)
        outputs[t] = h
    return outputs, h, c


def _check(ctx, x, h0, c0, params):
    """The cells' parameters as (w_ih, w_hh, b_ih, b_hh) tuples, after checking every
    shape (Caffe2 checked only the parameter count)."""
    for i, value in enumerate((x, h0, c0) + params):
        if value.dtype != np.float32:
            ctx.fail_input(i, f"must be float32, got {value.dtype}")
    if x.ndim != 3:
        ctx.fail_input(0, f"must be a 3-D sequence, got shape {tuple(x.shape)}")
    layers, directions = ctx.args["num_layers"], 2 if ctx.args["bidirectional"] else 1
    if layers < 1:
        ctx.fail(f"argument num_layers must be >= 1, got {layers}")
    batch = x.shape[0] if ctx.args["batch_first"] else x.shape[1]
    if h0.ndim != 3 or h0.shape[:2] != (layers * directions, batch):
        ctx.fail_input(1, f"must be (num_layers * directions = {layers * directions}, batch "
                          f"{batch}, H), got shape {tuple(h0.shape)}")
    if c0.shape != h0.shape:
        ctx.fail_input(2, f"must have {ctx.input_label(1)}'s shape {tuple(h0.shape)}, got "
                          f"{tuple(c0.shape)}")
    per_cell = 4 if ctx.args["has_biases"] else 2
    if len(params) != layers * directions * per_cell:
        ctx.fail(f"got an incorrect number of LSTM parameters: {len(params)}, expected "
                 f"{per_cell} per layer and direction ({layers * directions * per_cell})")
    hidden, width = h0.shape[2], x.shape[2]
    cells = []
    for cell in range(layers * directions):
        if cell and cell % directions == 0:
            width = hidden * directions  # the previous layer's output
        group = params[cell * per_cell:(cell + 1) * per_cell]
        expected = [(4 * hidden, width), (4 * hidden, hidden)] + [(4 * hidden,)] * (per_cell - 2)
        for j, (value, shape) in enumerate(zip(group, expected)):
            if value.shape != shape:
                ctx.fail_input(3 + cell * per_cell + j, f"must be of shape {shape} (layer "
                               f"{cell // directions}, direction {cell % directions}), got "
                               f"{tuple(value.shape)}")
        cells.append(tuple(group) + (None, None) if per_cell == 2 else tuple(group))
    return cells


@register_kernel("InferenceLSTM")
def inference_lstm(ctx, x, h0, c0, *params):
    cells = _check(ctx, x, h0, c0, params)
    xp = ctx.xp
    directions = 2 if ctx.args["bidirectional"] else 1
    layer_input = x.transpose(1, 0, 2) if ctx.args["batch_first"] else x
    final_h, final_c = [], []
    for layer in range(ctx.args["num_layers"]):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            w_ih, w_hh, b_ih, b_hh = cells[index]
            projected = layer_input @ w_ih.T
            if b_ih is not None:
                projected = projected + b_ih
            out, h, c = _run_cell(xp, projected, h0[index], c0[index], w_hh, b_hh,
                                  reverse=direction == 1)
            outputs.append(out)
            final_h.append(h)
            final_c.append(c)
        layer_input = outputs[0] if directions == 1 else xp.concatenate(outputs, axis=2)
    output = layer_input.transpose(1, 0, 2) if ctx.args["batch_first"] else layer_input
    return (xp.ascontiguousarray(output), xp.stack(final_h).astype(np.float32),
            xp.stack(final_c).astype(np.float32))
