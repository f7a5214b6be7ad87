"""Caffe2's ``caffe2.python.attention``: the attention steps of rnn_cell.AttentionCell.

Each ``apply_*_attention`` adds to a step model the ops of one decoder step attending
over the encoder outputs, and returns ``(context, attention weights, blobs a
memory-optimised backward pass may recompute)``; shapes, with ``encoder_outputs``
T_enc x N x E and the decoder hidden state 1 x N x H:

* weights ``[N, T_enc, 1]``: a softmax over the encoder positions (positions past
  ``encoder_lengths`` masked out) of the logits,
* context ``[1, N, E]``: the encoder outputs weighted by them.

Logits: *regular* ``v^T tanh(W_e s_j + W_h h)`` (Bahdanau), *recurrent* adds
``W_c context_{t-1}`` inside the tanh (arXiv:1601.03317, 4.1), *dot* ``s_j . W h``
(W only when H != E), *soft coverage* adds the running sum of past weights scaling a
projection of the encoder outputs.
"""

from __future__ import annotations

from caffe2lite import brew


class AttentionType:
    Regular, Recurrent, Dot, SoftCoverage = tuple(range(4))


def s(scope, name):
    """``scope/name``: attention blobs are scoped by hand, to keep their names fixed."""
    return f"{scope}/{name}"


def _calc_weighted_context(model, encoder_outputs_transposed, encoder_output_dim,
                           attention_weights_3d, scope):
    """sum_j w_j s_j: [N, E, T_enc] x [N, T_enc, 1], reshaped to [1, N, E]."""
    context = brew.batch_mat_mul(model, [encoder_outputs_transposed, attention_weights_3d],
                                 s(scope, "attention_weighted_encoder_context"))
    context, _ = model.net.Reshape(
        context, [context, s(scope, "attention_weighted_encoder_context_old_shape")],
        shape=[1, -1, encoder_output_dim])
    return context


def _calc_attention_weights(model, attention_logits_transposed, scope, encoder_lengths=None):
    """Softmax over the encoder positions (axis 1 of [N, T_enc, 1]), padding masked."""
    if encoder_lengths is not None:
        attention_logits_transposed = model.net.SequenceMask(
            [attention_logits_transposed, encoder_lengths], ["masked_attention_logits"],
            mode="sequence")
    return brew.softmax(model, attention_logits_transposed, s(scope, "attention_weights_3d"),
                        engine="CUDNN", axis=1)


def _calc_attention_logits_from_sum_match(model, decoder_hidden_encoder_outputs_sum,
                                          encoder_output_dim, scope):
    """v^T tanh(sum): [T_enc, N, E] -> logits transposed to [N, T_enc, 1]."""
    summed = model.net.Tanh(decoder_hidden_encoder_outputs_sum,
                            decoder_hidden_encoder_outputs_sum)
    logits = brew.fc(model, summed, s(scope, "attention_logits"), dim_in=encoder_output_dim,
                     dim_out=1, axis=2, freeze_bias=True)
    return brew.transpose(model, logits, s(scope, "attention_logits_transposed"),
                          axes=[1, 0, 2])


def _apply_fc_weight_for_sum_match(model, input, dim_in, dim_out, scope, name):  # noqa: A002
    """W x for x of [1, N, dim_in], squeezed to [N, dim_out]."""
    output = brew.fc(model, input, s(scope, name), dim_in=dim_in, dim_out=dim_out, axis=2)
    return model.net.Squeeze(output, output, dims=[0])


def _attend(model, decoder_hidden_encoder_outputs_sum, encoder_output_dim,
            encoder_outputs_transposed, scope, encoder_lengths):
    """(context, weights) from the summed match [T_enc, N, E]."""
    logits = _calc_attention_logits_from_sum_match(model, decoder_hidden_encoder_outputs_sum,
                                                   encoder_output_dim, scope)
    weights = _calc_attention_weights(model, logits, scope, encoder_lengths)
    return _calc_weighted_context(model, encoder_outputs_transposed, encoder_output_dim,
                                  weights, scope), weights


def apply_recurrent_attention(model, encoder_output_dim, encoder_outputs_transposed,
                              weighted_encoder_outputs, decoder_hidden_state_t,
                              decoder_hidden_state_dim, attention_weighted_encoder_context_t_prev,
                              scope, encoder_lengths=None):
    weighted_prev_context = _apply_fc_weight_for_sum_match(
        model, attention_weighted_encoder_context_t_prev, encoder_output_dim,
        encoder_output_dim, scope, "weighted_prev_attention_context")
    weighted_hidden = _apply_fc_weight_for_sum_match(
        model, decoder_hidden_state_t, decoder_hidden_state_dim, encoder_output_dim, scope,
        "weighted_decoder_hidden_state")
    summed_tmp = model.net.Add([weighted_prev_context, weighted_hidden],
                               s(scope, "decoder_hidden_encoder_outputs_sum_tmp"))
    summed = model.net.Add([weighted_encoder_outputs, summed_tmp],
                           s(scope, "decoder_hidden_encoder_outputs_sum"), broadcast=1)
    context, weights = _attend(model, summed, encoder_output_dim, encoder_outputs_transposed,
                               scope, encoder_lengths)
    return context, weights, [summed]


def apply_regular_attention(model, encoder_output_dim, encoder_outputs_transposed,
                            weighted_encoder_outputs, decoder_hidden_state_t,
                            decoder_hidden_state_dim, scope, encoder_lengths=None):
    weighted_hidden = _apply_fc_weight_for_sum_match(
        model, decoder_hidden_state_t, decoder_hidden_state_dim, encoder_output_dim, scope,
        "weighted_decoder_hidden_state")
    summed = model.net.Add([weighted_encoder_outputs, weighted_hidden],
                           s(scope, "decoder_hidden_encoder_outputs_sum"), broadcast=1,
                           use_grad_hack=1)
    context, weights = _attend(model, summed, encoder_output_dim, encoder_outputs_transposed,
                               scope, encoder_lengths)
    return context, weights, [summed]


def apply_dot_attention(model, encoder_output_dim, encoder_outputs_transposed,
                        decoder_hidden_state_t, decoder_hidden_state_dim, scope,
                        encoder_lengths=None):
    """Logits s_j . h (h projected to E first when H != E)."""
    weighted_hidden = decoder_hidden_state_t
    if decoder_hidden_state_dim != encoder_output_dim:
        weighted_hidden = brew.fc(model, decoder_hidden_state_t,
                                  s(scope, "weighted_decoder_hidden_state"),
                                  dim_in=decoder_hidden_state_dim, dim_out=encoder_output_dim,
                                  axis=2)
    squeezed = model.net.Squeeze(weighted_hidden,
                                 s(scope, "squeezed_weighted_decoder_hidden_state"), dims=[0])
    expanded = model.net.ExpandDims(squeezed, squeezed, dims=[2])  # [N, E, 1]
    logits = model.net.BatchMatMul([encoder_outputs_transposed, expanded],
                                   s(scope, "attention_logits"), trans_a=1)
    weights = _calc_attention_weights(model, logits, scope, encoder_lengths)
    context = _calc_weighted_context(model, encoder_outputs_transposed, encoder_output_dim,
                                     weights, scope)
    return context, weights, []


def apply_soft_coverage_attention(model, encoder_output_dim, encoder_outputs_transposed,
                                  weighted_encoder_outputs, decoder_hidden_state_t,
                                  decoder_hidden_state_dim, scope, encoder_lengths,
                                  coverage_t_prev, coverage_weights):
    """Regular attention plus coverage: returns also coverage_t = coverage_{t-1} +
    this step's weights ([1, N, T_enc])."""
    weighted_hidden = _apply_fc_weight_for_sum_match(
        model, decoder_hidden_state_t, decoder_hidden_state_dim, encoder_output_dim, scope,
        "weighted_decoder_hidden_state")
    summed_tmp = model.net.Add([weighted_encoder_outputs, weighted_hidden],
                               s(scope, "decoder_hidden_encoder_outputs_sum_tmp"), broadcast=1)
    coverage_2d = model.net.Squeeze(coverage_t_prev, s(scope, "coverage_t_prev_2d"), dims=[0])
    coverage_transposed = brew.transpose(model, coverage_2d,
                                         s(scope, "coverage_t_prev_transposed"))
    scaled_coverage_weights = model.net.Mul([coverage_weights, coverage_transposed],
                                            s(scope, "scaled_coverage_weights"), broadcast=1,
                                            axis=0)
    summed = model.net.Add([summed_tmp, scaled_coverage_weights],
                           s(scope, "decoder_hidden_encoder_outputs_sum"))
    context, weights = _attend(model, summed, encoder_output_dim, encoder_outputs_transposed,
                               scope, encoder_lengths)
    weights_2d = model.net.Squeeze(weights, s(scope, "attention_weights_2d"), dims=[2])
    coverage_t = model.net.Add([coverage_t_prev, weights_2d], s(scope, "coverage_t"),
                               broadcast=1)
    return context, weights, [summed], coverage_t
