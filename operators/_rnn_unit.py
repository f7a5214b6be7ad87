"""What LSTMUnit and GRUUnit share: their optional SEQ_LENGTHS input, the timestep
they read, which rows of the batch are still inside their sequence, and Caffe2's
gate nonlinearities.

Both ops take ``[hidden_prev, (cell_prev,) gates, seq_lengths, timestep]`` when
``sequence_lengths`` is true (the default) and the same without ``seq_lengths``
otherwise: Caffe2's "all following inputs are shifted left by one".
"""

from caffe2lite.runtime import Arg

SEQUENCE_LENGTHS_ARG = Arg("sequence_lengths", "bool", True,
                           "when false, the seq_lengths input is left out and the "
                           "inputs after it shift left by one")
DROP_STATES_ARG = Arg("drop_states", "bool", False,
                      "past a row's sequence length, output zeros instead of carrying "
                      "the previous state")


def expect_inputs(ctx, inputs, with_lengths, without_lengths):
    """The input count the ``sequence_lengths`` argument calls for."""
    expected = with_lengths if ctx.args["sequence_lengths"] else without_lengths
    if len(inputs) != expected:
        ctx.fail(f"{len(inputs)} inputs, expected {expected} with sequence_lengths="
                 f"{int(ctx.args['sequence_lengths'])}")


def sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: 0.5 * (1 + tanh(x / 2))."""
    return 0.5 * (xp.tanh(0.5 * x) + 1)


def float_state(ctx, i, x, rank=3):
    """Input ``i`` as a float tensor of ``rank`` dimensions."""
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != rank:
        ctx.fail(f"{ctx.input_label(i)} must have {rank} dimensions (1, N, D), got shape "
                 f"{tuple(x.shape)}")
    return x


def timestep_of(ctx, i, t):
    """The int timestep held by input ``i`` (a tensor of at least one int)."""
    if getattr(t, "dtype", None) is None or t.dtype.kind not in "iu" or t.size < 1:
        ctx.fail(f"{ctx.input_label(i)} must hold the timestep as an int32 tensor, got "
                 f"{getattr(t, 'dtype', type(t).__name__)} of shape "
                 f"{tuple(getattr(t, 'shape', ()))}")
    return int(t.reshape(-1)[0])


def valid_rows(ctx, n, inputs, first_after_state):
    """(timestep, mask of the N rows still inside their sequence or None for all,
    index of the first input after seq_lengths/timestep).

    ``first_after_state`` is the index of SEQ_LENGTHS (the input after the gates)."""
    xp = ctx.xp
    if ctx.args["sequence_lengths"]:
        lengths = inputs[first_after_state]
        if getattr(lengths, "dtype", None) is None or lengths.dtype.kind not in "iu":
            ctx.fail(f"{ctx.input_label(first_after_state)} must be int32 sequence lengths, "
                     f"got {getattr(lengths, 'dtype', type(lengths).__name__)}")
        if lengths.size != n:
            ctx.fail(f"{ctx.input_label(first_after_state)} has {lengths.size} lengths, "
                     f"expected one per batch row (N = {n})")
        t_index = first_after_state + 1
        t = timestep_of(ctx, t_index, inputs[t_index])
        return t, xp.asarray(lengths).reshape(-1) > t, t_index + 1
    t = timestep_of(ctx, first_after_state, inputs[first_after_state])
    return t, None, first_after_state + 1


def same_shape(ctx, i, x, shape):
    if tuple(x.shape) != tuple(shape):
        ctx.fail(f"{ctx.input_label(i)} has shape {tuple(x.shape)}, expected {tuple(shape)}")


def carry_over(xp, valid, new, previous, drop_states):
    """``new`` in the rows still inside their sequence (``valid``, or all when None); the
    others carry ``previous`` over, or zeros with ``drop_states``."""
    if valid is None:
        return new
    keep = valid.reshape((1, -1) + (1,) * (new.ndim - 2))
    return xp.where(keep, new, 0 if drop_states else previous)
