"""Caffe2's ``crf``: a linear-chain CRF loss layer (``CRFWithLoss``) built from existing ops.

For a sentence of T words with per-tag scores ``predictions`` (T x num_classes) and
gold ``labels``, the loss is ``log Z - score(labels)``: the log-sum-exp of the scores
of all tag paths minus the gold path's score, where a path's score adds its tags'
prediction scores and the transition scores ``transitions[a, b]`` between consecutive
tags.  Two tags are added (BOS = num_classes, EOS = num_classes + 1), so the
transitions matrix is (num_classes + 2) square and every path starts at BOS and ends at
EOS; the padded score of an impossible tag is -1000.

``log Z`` comes from a RecurrentNetwork over the T + 1 padded steps (the forward
algorithm: ``cell_t[j] = logsumexp_i(cell_{t-1}[i] + transitions[i, j]) + x_t[j]``),
so the gradient reaches predictions and transitions through the ops' own gradients.
As in Caffe2 (the RecurrentNetwork step works on one sequence), one sentence at a time.
"""

from __future__ import annotations

import numpy as np

from caffe2lite import brew, core, model_helper, recurrent

LOW_SCORE = -1000.0  # the score of an impossible tag (BOS/EOS inside the sentence)


class CRFWithLoss:
    """The CRF layer of ``model`` over ``num_classes`` tags; ``transitions_blob`` (or a
    new ``crf_transitions`` parameter, uniform in [-1, 1]) holds the transition scores."""

    def __init__(self, model, num_classes, transitions_blob=None):
        self.model = model
        self.num_classes = num_classes
        self.num_classes_padded = num_classes + 2  # with BOS and EOS
        if not transitions_blob:
            transitions_blob = model.param_init_net.UniformFill(
                [], [core.ScopedBlobReference("crf_transitions")],
                shape=[self.num_classes_padded] * 2, min=-1.0, max=1.0)
        self.transitions = transitions_blob
        self.model.params.append(self.transitions)

    def crf_loss(self, predictions, labels, seq_lengths=None):
        """The scalar loss blob ``crf_loss``: log Z minus the gold path's score."""
        net = self.model.net
        # transitions may be updated while the ops using it run (parallel updates):
        # every use below reads one snapshot
        snapshot = net.Copy(self.transitions, core.ScopedBlobReference("transitions_snapshot"))
        unary = self._gather_entries_sum(predictions, labels, self.num_classes)
        predictions = self.pad_predictions(predictions, self.model.param_init_net, net,
                                           self.num_classes)
        labels = self.pad_labels(labels, self.model.param_init_net, net, self.num_classes)
        binary = self._path_binary_scores(labels, snapshot, seq_lengths)
        gold = net.Add([binary, unary], core.ScopedBlobReference("path_total"))

        zero_index = self.model.param_init_net.ConstantFill([], shape=[1], value=0)
        initial_state = net.Gather([predictions, zero_index],
                                   core.ScopedBlobReference("rnn_initial"), dense_gradient=True)
        steps, _ = net.RemovePadding([predictions], padding_width=1, end_padding_width=0,
                                     outputs=2)
        steps = net.ExpandDims([steps], core.ScopedBlobReference("rnn_input_data"), dims=[1])
        # the recurrent net gets a blob of its own (Caffe2's RecurrentNetworkGradient
        # mishandled a parameter also used outside it)
        transitions = net.Copy(snapshot, core.ScopedBlobReference("transitions_copy"))
        log_z = self._crf_forward(steps, initial_state, transitions)
        return net.Sub([log_z, gold], core.ScopedBlobReference("crf_loss"))

    def _path_binary_scores(self, labels, transitions, seq_lengths=None):
        """Sum of transitions[labels[t], labels[t + 1]], gathered from the flattened
        matrix at row * width + column."""
        net = self.model.net
        columns, _ = net.RemovePadding([labels], outputs=2, padding_width=1,
                                       end_padding_width=0)
        rows, _ = net.RemovePadding([labels], outputs=2, padding_width=0,
                                    end_padding_width=1)
        width = net.ConstantFill([rows], value=self.num_classes_padded)
        flat_ids = net.Add([net.Mul([rows, width]), columns])
        entries = net.Gather([net.FlattenToVec([transitions]), flat_ids], dense_gradient=True)
        return net.ReduceFrontSum(entries)

    def _gather_entries_sum(self, in_data, indices, index_size):
        """Sum over t of in_data[t, indices[t]] (one-hot dot product, so it has a
        gradient with respect to in_data)."""
        net = self.model.net
        indices = net.Cast([indices], to="int64")
        size = self.model.param_init_net.ConstantFill([], shape=[1], value=index_size)
        one_hot = net.OneHot([indices, size])
        scores = net.DotProduct([net.FlattenToVec(one_hot), net.FlattenToVec(in_data)])
        return net.ReduceFrontSum([scores])

    def _crf_forward(self, input_blob, initial_state, transitions, seq_lengths=None):
        """log Z: logsumexp of the last step's cell."""
        net = self.model.net
        last = self.build_crf_net(input_blob, initial_state, transitions)
        last, _ = net.Reshape([last], outputs=2, shape=(self.num_classes_padded,))
        one_segment = self.model.param_init_net.ConstantFill(
            [], value=0, shape=[self.num_classes_padded], dtype=core.DataType.INT32)
        log_z = net.SortedSegmentRangeLogSumExp([last, one_segment])
        log_z, _ = net.Reshape(log_z, outputs=2, shape=())
        return log_z

    def build_crf_net(self, input_blob, initial_state, transitions):
        """Add the RecurrentNetwork op of the forward algorithm to the model; returns its
        last cell.  ``input_blob`` is T x 1 x D (one sequence), ``initial_state``
        1 x D."""
        scope = "crf_net"

        def s(name):  # scoped by hand: the step net's blobs are internal to the RNN op
            return f"{scope}/{name}"

        d = self.num_classes_padded
        step = model_helper.ModelHelper(name="crf_step", param_model=self.model)
        input_t, cell_t_prev, _ = step.net.AddExternalInputs(
            core.ScopedBlobReference("input_t"), core.ScopedBlobReference("cell_t_prev"),
            transitions)
        one_segment = step.param_init_net.ConstantFill(
            [], [s("zero_segment_id")], value=0, shape=[d], dtype=core.DataType.INT32)
        step.param_init_net.AddExternalOutput(one_segment)
        # scores[i, j] = cell_{t-1}[i] + x_t[j] + transitions[i, j] (tiles, not
        # broadcasting, as the step's gradient ops expect equal shapes)
        prev = brew.transpose(step, cell_t_prev, [s("prev_transpose")], axes=(0, 2, 1))
        prev = step.net.Tile(prev, [s("prev_tiled")], tiles=d, axis=2)
        current = step.net.Tile(input_t, [s("input_t_tiled")], tiles=d, axis=1)
        scores = step.net.Add([prev, current], [s("input_with_prev")])
        scores = step.net.Add([scores, transitions], [s("prev_with_transitions")],
                              broadcast=1, use_grad_hack=1)
        scores, _ = step.net.Reshape(
            scores, [s("all_with_transitions_reshaped"), s("all_with_transitions_orig")],
            shape=(d, d))
        # cell_t[j] = logsumexp over i: every row i in segment 0, reduced
        cell_t = step.net.SortedSegmentRangeLogSumExp([scores, one_segment], [s("cell_t")])
        step.net.AddExternalOutputs(cell_t)
        _, out_last = recurrent.recurrent_net(
            net=self.model.net, cell_net=step.net, inputs=[(input_t, input_blob)],
            initial_cell_inputs=[(cell_t_prev, initial_state)], links={cell_t_prev: cell_t},
            scope=scope, outputs_with_grads=(1,))
        return out_last

    def update_predictions(self, classes):
        """``post_crf_classes``: ``classes`` (T x num_classes scores) with, at each step,
        the scores of the current best tag and of the Viterbi path's tag swapped, so that
        an argmax reads the best path."""
        padded = self.pad_predictions(classes, self.model.param_init_net, self.model.net,
                                      self.num_classes)
        return self.model.net.Python(_swap_to_viterbi)(
            [padded, self.transitions], core.ScopedBlobReference("post_crf_classes"))

    @staticmethod
    def pad_labels(labels, init_net, net, num_classes):
        """int64 labels with BOS in front and EOS behind."""
        bos = init_net.ConstantFill([], shape=[1], value=num_classes)
        eos = init_net.ConstantFill([], shape=[1], value=num_classes + 1)
        labels = net.Cast([labels], to="int64")
        padded, _ = net.Concat([bos, labels, eos], axis=0, outputs=2)
        return padded

    @staticmethod
    def pad_predictions(predictions, init_net, net, num_classes):
        """(T + 2) x (num_classes + 2) scores: two impossible columns (BOS, EOS) for every
        word, a BOS row in front and an EOS row behind."""
        impossible = [LOW_SCORE] * num_classes
        bos_row = init_net.GivenTensorFill(
            [], "b_scores", shape=[1, num_classes + 2],
            values=np.array([impossible + [0.0, LOW_SCORE]], np.float32))
        eos_row = init_net.GivenTensorFill(
            [], "e_scores", shape=[1, num_classes + 2],
            values=np.array([impossible + [LOW_SCORE, 0.0]], np.float32))
        zero_index = net.ConstantFill([], shape=[1], value=0)
        length = net.Cast(net.Gather([net.Shape([predictions]), zero_index]), to="int32")
        column = net.ExpandDims(net.ConstantFill([net.LengthsRangeFill(length)],
                                                 value=LOW_SCORE), dims=[1])
        widened, _ = net.Concat([predictions, column, column], outputs=2, axis=1)
        padded, _ = net.Concat([bos_row, widened, eos_row], outputs=2, axis=0)
        return padded


def _swap_to_viterbi(inputs, outputs):
    """The Python op of ``update_predictions``: Viterbi decoding of the padded scores
    (a pass over time, each step vectorised over tags), then per step the scores of the
    argmax tag and of the path's tag swapped; BOS/EOS rows and columns dropped."""
    scores = np.array(inputs[0].data, np.float64)
    transitions = np.asarray(inputs[1].data, np.float64)
    steps = scores.shape[0]
    trellis = scores[0].copy()
    backpointers = np.zeros(scores.shape, np.int64)
    for t in range(1, steps):
        candidates = trellis[:, None] + transitions
        backpointers[t] = candidates.argmax(axis=0)
        trellis = scores[t] + candidates.max(axis=0)
    path = np.empty(steps, np.int64)
    path[-1] = trellis.argmax()
    for t in range(steps - 1, 0, -1):
        path[t - 1] = backpointers[t, path[t]]
    rows = np.arange(steps)
    best = scores.argmax(axis=1)
    swapped = scores.copy()
    swapped[rows, path], swapped[rows, best] = scores[rows, best], scores[rows, path]
    result = swapped[1:-1, :-2]
    outputs[0].reshape(result.shape)
    outputs[0].data[...] = result
