"""Caffe2's ``caffe2.python.rnn_cell``: recurrent cells and the LSTM builders.

A cell says what one timestep computes (``apply_override`` / ``_apply``: ops added to a
step model) and which recurrent states it carries (``get_state_names``);
``apply_over_sequence`` turns it into one RecurrentNetwork operator over a whole
sequence (caffe2lite.recurrent.recurrent_net), with the input projection done once for
all steps (``prepare_input``).  Blob and parameter names are Caffe2's, so nets built
here match Caffe2's and its trained parameters load by name.

Cells: ``BasicRNNCell`` (tanh or relu), ``LSTMCell`` (LSTMUnit), ``LayerNormLSTMCell``,
``MILSTMCell`` (multiplicative integration) and ``LayerNormMILSTMCell``,
``DropoutCell`` (dropout on a cell's output), ``MultiRNNCell`` (layers, optionally
residual), ``AttentionCell`` / ``LSTMWithAttentionCell`` / ``MILSTMWithAttentionCell``
(caffe2lite.attention), ``UnrolledCell`` (T steps written out in the net, no
RecurrentNetwork) and, in caffe2lite.gru_cell, ``GRUCell``.  Builders: ``LSTM``,
``BasicRNN``, ``MILSTM``, ``LayerNormLSTM``, ``LayerNormMILSTM``, ``LSTMWithAttention``,
``layered_LSTM``, and ``GetLSTMParamNames`` / ``InitFromLSTMParams``.  Not here:
``cudnn_LSTM`` (Caffe2's CuDNN-only ``Recurrent`` operator).
"""

from __future__ import annotations

import functools
import inspect
import logging

import numpy as np

from caffe2lite import brew, core, recurrent, scope, utils, workspace
from caffe2lite.attention import (AttentionType, apply_dot_attention, apply_recurrent_attention,
                                  apply_regular_attention, apply_soft_coverage_attention)
from caffe2lite.model_helper import ModelHelper
from caffe2lite.modeling.initializers import Initializer
from caffe2lite.modeling.parameter_sharing import ParameterSharing
from caffe2lite.proto import caffe2_pb2


def _RectifyName(blob_reference_or_name):  # noqa: N802
    """A BlobReference: a name is taken under the current name scope."""
    if blob_reference_or_name is None:
        return None
    if isinstance(blob_reference_or_name, str):
        return core.ScopedBlobReference(blob_reference_or_name)
    if not isinstance(blob_reference_or_name, core.BlobReference):
        raise Exception("Unknown blob reference type")
    return blob_reference_or_name


def _RectifyNames(blob_references_or_names):  # noqa: N802
    if blob_references_or_names is None:
        return None
    return [_RectifyName(i) for i in blob_references_or_names]


class RNNCell:
    """Base class of recurrent cells: implement ``apply_override`` and
    ``get_state_names_override`` (or ``_apply`` and ``get_state_names``)."""

    def __init__(self, name=None, forward_only=False, initializer=None):
        self.name = name
        self.recompute_blobs = []
        self.forward_only = forward_only
        self._initializer = initializer

    @property
    def initializer(self):
        return self._initializer

    @initializer.setter
    def initializer(self, value):
        self._initializer = value

    def scope(self, name):
        return self.name + "/" + name if self.name is not None else name

    def apply_over_sequence(self, model, inputs, seq_lengths=None, initial_states=None,
                            outputs_with_grads=None):
        """(output sequence, [state_1_all, state_1_last, state_2_all, ...]) of the cell
        run over ``inputs`` (T x N x D) by one RecurrentNetwork op added to ``model``."""
        if initial_states is None:
            with scope.NameScope(self.name):
                if self.initializer is None:
                    raise Exception("Either initial states or initializer have to be set")
                initial_states = self.initializer.create_states(model)
        preprocessed_inputs = self.prepare_input(model, inputs)
        step_model = ModelHelper(name=self.name, param_model=model)
        input_t, timestep = step_model.net.AddScopedExternalInputs("input_t", "timestep")
        utils.raiseIfNotEqual(len(initial_states), len(self.get_state_names()),
                              "Number of initial state values provided doesn't match the "
                              "number of states")
        states_prev = step_model.net.AddScopedExternalInputs(
            *[s + "_prev" for s in self.get_state_names()])
        states = self._apply(model=step_model, input_t=input_t, seq_lengths=seq_lengths,
                             states=states_prev, timestep=timestep)
        external_outputs = set(step_model.net.Proto().external_output)
        for state in states:
            if state not in external_outputs:
                step_model.net.AddExternalOutput(state)
        if outputs_with_grads is None:
            outputs_with_grads = [self.get_output_state_index() * 2]
        # (state_1_all, state_1_last, state_2_all, state_2_last, ...)
        states_for_all_steps = recurrent.recurrent_net(
            net=model.net, cell_net=step_model.net,
            inputs=[(input_t, preprocessed_inputs)],
            initial_cell_inputs=list(zip(states_prev, initial_states)),
            links=dict(zip(states_prev, states)), timestep=timestep, scope=self.name,
            forward_only=self.forward_only, outputs_with_grads=outputs_with_grads,
            recompute_blobs_on_backward=self.recompute_blobs)
        return self._prepare_output_sequence(model, states_for_all_steps), \
            states_for_all_steps

    def apply(self, model, input_t, seq_lengths, states, timestep):
        """One step outside a RecurrentNetwork: (output, new states)."""
        input_t = self.prepare_input(model, input_t)
        states = self._apply(model, input_t, seq_lengths, states, timestep)
        return self._prepare_output(model, states), states

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        """apply_override under the cell's name scope (its outputs scoped, its inputs
        kept as the caller named them)."""
        args = self._rectify_apply_inputs(input_t, seq_lengths, states, timestep, extra_inputs)
        with core.NameScope(self.name):
            return self.apply_override(model, *args)

    def _rectify_apply_inputs(self, input_t, seq_lengths, states, timestep, extra_inputs):
        input_t, seq_lengths, timestep = _RectifyNames([input_t, seq_lengths, timestep])
        states = _RectifyNames(states)
        if extra_inputs:
            names, sizes = zip(*extra_inputs)
            extra_inputs = list(zip(_RectifyNames(names), sizes))
        rectified = [input_t, seq_lengths, states, timestep]
        if "extra_inputs" in inspect.signature(self.apply_override).parameters:
            rectified.append(extra_inputs)
        return rectified

    def apply_override(self, model, input_t, seq_lengths, timestep, extra_inputs=None):
        """One step of the cell (to implement): the new states, from ``input_t`` (1 x N x
        D), ``seq_lengths``, the previous ``states`` and ``timestep``; ``extra_inputs``
        [(blob, dim)] are inputs not passed through prepare_input (attention)."""
        raise NotImplementedError("Abstract method")

    def prepare_input(self, model, input_blob):
        """What depends on the input alone, computed once for all steps."""
        return input_blob

    def get_output_state_index(self):
        """Index of the state that is the step's output."""
        return 0

    def get_state_names(self):
        return [self.scope(name) for name in self.get_state_names_override()]

    def get_state_names_override(self):
        raise NotImplementedError("Abstract method")

    def get_output_dim(self):
        raise NotImplementedError("Abstract method")

    def _prepare_output(self, model, states):
        return states[self.get_output_state_index()]

    def _prepare_output_sequence(self, model, state_outputs):
        # state_outputs alternate a state over all steps and its last value.
        return state_outputs[2 * self.get_output_state_index()]


def _constant(value):
    return Initializer(operator_name="ConstantFill", value=value)


class LSTMInitializer:
    """Initial hidden and cell states as zero parameters of ``hidden_size``."""

    def __init__(self, hidden_size):
        self.hidden_size = hidden_size

    def create_states(self, model):
        return [model.create_param(param_name=name, initializer=_constant(0.0),
                                   shape=[self.hidden_size])
                for name in ("initial_hidden_state", "initial_cell_state")]


def _with_extra_inputs(model, hidden_t_prev, hidden_size, extra_inputs, concat_name):
    """(FC input, its dim): the previous hidden state, concatenated (on axis 2) with the
    extra inputs when there are some."""
    if extra_inputs is None:
        return hidden_t_prev, hidden_size
    blobs, sizes = zip(*extra_inputs)
    return brew.concat(model, [hidden_t_prev] + list(blobs), concat_name, axis=2), \
        hidden_size + sum(sizes)


def _input_projection(cell, model, input_blob, dim_out):
    """``i2h``: the input sequence projected to the gates, once for every step."""
    return brew.fc(model, input_blob, cell.scope("i2h"), dim_in=cell.input_size,
                   dim_out=dim_out, axis=2)


class BasicRNNCell(RNNCell):
    """h_t = activation(W h_{t-1} + b + i2h(x_t)), activation 'tanh' or 'relu'; rows
    past their sequence length keep h_{t-1} (or 0 with drop_states)."""

    def __init__(self, input_size, hidden_size, forget_bias, memory_optimization,
                 drop_states=False, initializer=None, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_states = drop_states
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.activation = activation
        if self.activation not in ["relu", "tanh"]:
            raise RuntimeError(f"BasicRNNCell with unknown activation function "
                               f"({self.activation})")

    def apply_override(self, model, input_t, seq_lengths, states, timestep,
                       extra_inputs=None):
        hidden_t_prev = states[0]
        gates_t = brew.fc(model, hidden_t_prev, "gates_t", dim_in=self.hidden_size,
                          dim_out=self.hidden_size, axis=2)
        brew.sum(model, [gates_t, input_t], gates_t)
        activation = model.net.Tanh if self.activation == "tanh" else model.net.Relu
        hidden_t = activation(gates_t, "hidden_t")
        if seq_lengths is not None:
            timestep = model.net.CopyFromCPUInput(timestep, "timestep_gpu")
            valid_b = model.net.GT([seq_lengths, timestep], "valid_b", broadcast=1)
            invalid_b = model.net.LE([seq_lengths, timestep], "invalid_b", broadcast=1)
            valid = model.net.Cast(valid_b, "valid", to="float")
            invalid = model.net.Cast(invalid_b, "invalid", to="float")
            hidden_valid = model.net.Mul([hidden_t, valid], "hidden_valid", broadcast=1,
                                         axis=1)
            if self.drop_states:
                hidden_t = hidden_valid
            else:
                hidden_invalid = model.net.Mul([hidden_t_prev, invalid], "hidden_invalid",
                                               broadcast=1, axis=1)
                hidden_t = model.net.Add([hidden_valid, hidden_invalid], hidden_t)
        return (hidden_t,)

    def prepare_input(self, model, input_blob):
        return _input_projection(self, model, input_blob, self.hidden_size)

    def get_state_names(self):
        return (self.scope("hidden_t"),)

    def get_output_dim(self):
        return self.hidden_size


class _LSTMGates(RNNCell):
    """What the LSTM cells share: their settings, zero initial states, and the input
    projected to the 4 gates once for all steps (``i2h``)."""

    def __init__(self, input_size, hidden_size, forget_bias, memory_optimization,
                 drop_states=False, initializer=None, **kwargs):
        super().__init__(initializer=initializer, **kwargs)
        self.initializer = initializer or LSTMInitializer(hidden_size=hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.forget_bias = float(forget_bias)
        self.memory_optimization = memory_optimization
        self.drop_states = drop_states
        self.gates_size = 4 * self.hidden_size

    def get_input_params(self):
        return {"weights": self.scope("i2h") + "_w", "biases": self.scope("i2h") + "_b"}

    def prepare_input(self, model, input_blob):
        return _input_projection(self, model, input_blob, self.gates_size)

    def get_output_dim(self):
        return self.hidden_size


class LSTMCell(_LSTMGates):
    """LSTM step: gates = FC(h_{t-1}) + i2h(x_t), then LSTMUnit."""

    def apply_override(self, model, input_t, seq_lengths, states, timestep,
                       extra_inputs=None):
        hidden_t_prev = states[0]
        fc_input, fc_input_dim = _with_extra_inputs(model, hidden_t_prev, self.hidden_size,
                                                    extra_inputs, "gates_concatenated_input_t")
        gates_t = brew.fc(model, fc_input, "gates_t", dim_in=fc_input_dim,
                          dim_out=self.gates_size, axis=2)
        brew.sum(model, [gates_t, input_t], gates_t)
        return _lstm_unit(self, model, states, gates_t, seq_lengths, timestep,
                          ["hidden_state", "cell_state"], lengths_optional=True)

    def get_recurrent_params(self):
        return {"weights": self.scope("gates_t") + "_w",
                "biases": self.scope("gates_t") + "_b"}

    def get_state_names_override(self):
        return ["hidden_t", "cell_t"]


class LayerNormLSTMCell(_LSTMGates):
    """LSTMCell with layer normalisation of the gates before LSTMUnit."""

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        hidden_t_prev = states[0]
        fc_input, fc_input_dim = _with_extra_inputs(
            model, hidden_t_prev, self.hidden_size, extra_inputs,
            self.scope("gates_concatenated_input_t"))
        gates_t = brew.fc(model, fc_input, self.scope("gates_t"), dim_in=fc_input_dim,
                          dim_out=self.gates_size, axis=2)
        brew.sum(model, [gates_t, input_t], gates_t)
        gates_t, _, _ = brew.layer_norm(model, self.scope("gates_t"),
                                        self.scope("gates_t_norm"), dim_in=self.gates_size,
                                        axis=-1)
        return _lstm_unit(self, model, states, gates_t, seq_lengths, timestep,
                          self.get_state_names())

    def get_state_names(self):
        return (self.scope("hidden_t"), self.scope("cell_t"))


def _lstm_unit(cell, model, states, gates_t, seq_lengths, timestep, outputs,
               lengths_optional=False, cell_state_first=False):
    """LSTMUnit on the previous (hidden, cell) states and the gates; its outputs become
    external outputs of the step net.  Only LSTMCell may leave out seq_lengths
    (``lengths_optional``: then the op's ``sequence_lengths`` says whether it is there)."""
    hidden_t_prev, cell_t_prev = states
    with_lengths = seq_lengths is not None or not lengths_optional
    args = dict(sequence_lengths=seq_lengths is not None) if lengths_optional else {}
    hidden_t, cell_t = model.net.LSTMUnit(
        [hidden_t_prev, cell_t_prev, gates_t] + ([seq_lengths] if with_lengths else []) +
        [timestep], outputs, forget_bias=cell.forget_bias, drop_states=cell.drop_states,
        **args)
    model.net.AddExternalOutputs(*((cell_t, hidden_t) if cell_state_first
                                   else (hidden_t, cell_t)))
    if cell.memory_optimization:
        cell.recompute_blobs = [gates_t]
    return hidden_t, cell_t


def _mi_gates(cell, model, input_t, states, extra_inputs):
    """Multiplicative-integration gates: alpha * x * W h + beta1 * W h + beta2 * x + b."""
    hidden_t_prev, _ = states
    fc_input, fc_input_dim = _with_extra_inputs(
        model, hidden_t_prev, cell.hidden_size, extra_inputs,
        cell.scope("gates_concatenated_input_t"))
    prev_t = brew.fc(model, fc_input, cell.scope("prev_t"), dim_in=fc_input_dim,
                     dim_out=cell.gates_size, axis=2)
    alpha, beta_h, beta_i, b = (
        model.create_param(cell.scope(name), shape=[cell.gates_size],
                           initializer=Initializer("ConstantFill", value=value))
        for name, value in (("alpha", 1.0), ("beta1", 1.0), ("beta2", 1.0), ("b", 0.0)))
    alpha_by_input_t_plus_beta_h = model.net.ElementwiseLinear(
        [input_t, alpha, beta_h], cell.scope("alpha_by_input_t_plus_beta_h"), axis=2)
    alpha_by_input_t_plus_beta_h_by_prev_t = model.net.Mul(
        [alpha_by_input_t_plus_beta_h, prev_t],
        cell.scope("alpha_by_input_t_plus_beta_h_by_prev_t"))
    beta_i_by_input_t_plus_b = model.net.ElementwiseLinear(
        [input_t, beta_i, b], cell.scope("beta_i_by_input_t_plus_b"), axis=2)
    return brew.sum(model, [alpha_by_input_t_plus_beta_h_by_prev_t, beta_i_by_input_t_plus_b],
                    cell.scope("gates_t"))


class MILSTMCell(LSTMCell):
    """LSTM with multiplicative integration (https://arxiv.org/abs/1606.06630)."""

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        gates_t = _mi_gates(self, model, input_t, states, extra_inputs)
        return self._mi_unit(model, states, gates_t, seq_lengths, timestep)

    def _mi_unit(self, model, states, gates_t, seq_lengths, timestep):
        return _lstm_unit(self, model, states, gates_t, seq_lengths, timestep,
                          [self.scope("hidden_t_intermediate"), self.scope("cell_t")],
                          cell_state_first=True)


class LayerNormMILSTMCell(MILSTMCell):
    """MILSTMCell with layer normalisation of the gates before LSTMUnit."""

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        _mi_gates(self, model, input_t, states, extra_inputs)
        gates_t, _, _ = brew.layer_norm(model, self.scope("gates_t"),
                                        self.scope("gates_t_norm"), dim_in=self.gates_size,
                                        axis=-1)
        return self._mi_unit(model, states, gates_t, seq_lengths, timestep)


class DropoutCell(RNNCell):
    """Another cell with dropout on its output (not on the recurrent connection)."""

    def __init__(self, internal_cell, dropout_ratio=None, use_cudnn=False, **kwargs):
        self.internal_cell = internal_cell
        self.dropout_ratio = dropout_ratio
        assert "is_test" in kwargs, "Argument 'is_test' is required"
        self.is_test = kwargs.pop("is_test")
        self.use_cudnn = use_cudnn
        super().__init__(**kwargs)
        self.prepare_input = internal_cell.prepare_input
        self.get_output_state_index = internal_cell.get_output_state_index
        self.get_state_names = internal_cell.get_state_names
        self.get_output_dim = internal_cell.get_output_dim
        self.mask = 0

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        return self.internal_cell._apply(model, input_t, seq_lengths, states, timestep,
                                         extra_inputs)

    def _prepare_output(self, model, states):
        output = self.internal_cell._prepare_output(model, states)
        return self._apply_dropout(model, output) if self.dropout_ratio is not None else output

    def _prepare_output_sequence(self, model, state_outputs):
        output = self.internal_cell._prepare_output_sequence(model, state_outputs)
        return self._apply_dropout(model, output) if self.dropout_ratio is not None else output

    def _apply_dropout(self, model, output):
        if self.dropout_ratio and not self.forward_only:
            with core.NameScope(self.name or ""):
                output = brew.dropout(model, output,
                                      str(output) + f"_with_dropout_mask{self.mask}",
                                      ratio=float(self.dropout_ratio), is_test=self.is_test,
                                      use_cudnn=self.use_cudnn)
                self.mask += 1
        return output


class MultiRNNCellInitializer:
    def __init__(self, cells):
        self.cells = cells

    def create_states(self, model):
        states = []
        for i, cell in enumerate(self.cells):
            if cell.initializer is None:
                raise Exception("Either initial states or initializer have to be set")
            with core.NameScope(f"layer_{i}"), core.NameScope(cell.name):
                states.extend(cell.initializer.create_states(model))
        return states


class MultiRNNCell(RNNCell):
    """Layers of cells, each layer's output state feeding the next layer; layers listed
    in ``residual_output_layers`` (not 0) also add their input to their output."""

    def __init__(self, cells, residual_output_layers=None, **kwargs):
        super().__init__(**kwargs)
        self.cells = cells
        self.residual_output_layers = residual_output_layers or []
        output_index_per_layer = []
        base = 0
        for cell in self.cells:
            output_index_per_layer.append(base + cell.get_output_state_index())
            base += len(cell.get_state_names())
        # The final output sums the last layer with the run of residual layers before it.
        self.output_connected_layers = []
        self.output_indices = []
        for i in range(len(self.cells) - 1):
            if (i + 1) in self.residual_output_layers:
                self.output_connected_layers.append(i)
                self.output_indices.append(output_index_per_layer[i])
            else:
                self.output_connected_layers = []
                self.output_indices = []
        self.output_connected_layers.append(len(self.cells) - 1)
        self.output_indices.append(output_index_per_layer[-1])
        self.state_names = []
        for i, cell in enumerate(self.cells):
            self.state_names.extend(map(self.layer_scoper(i), cell.get_state_names()))
        self.initializer = MultiRNNCellInitializer(cells)

    def layer_scoper(self, layer_id):
        def helper(name):
            return f"{self.name}/layer_{layer_id}/{name}"
        return helper

    def prepare_input(self, model, input_blob):
        input_blob = _RectifyName(input_blob)
        with core.NameScope(self.name or ""):
            return self.cells[0].prepare_input(model, input_blob)

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        input_t, seq_lengths, states, timestep, extra_inputs = self._rectify_apply_inputs(
            input_t, seq_lengths, states, timestep, extra_inputs)
        states_per_layer = [len(cell.get_state_names()) for cell in self.cells]
        assert len(states) == sum(states_per_layer)
        next_states = []
        index = 0
        layer_input = input_t
        for i, layer_cell in enumerate(self.cells):
            with core.NameScope(self.name), core.NameScope(f"layer_{i}"):
                layer_states = states[index:index + states_per_layer[i]]
                index += states_per_layer[i]
                prepared = layer_cell.prepare_input(model, layer_input) if i > 0 \
                    else layer_input
                layer_next_states = layer_cell._apply(
                    model, prepared, seq_lengths, layer_states, timestep,
                    extra_inputs=None if i > 0 else extra_inputs)
                if i != len(self.cells) - 1:
                    layer_output = layer_cell._prepare_output(model, layer_next_states)
                    if i > 0 and i in self.residual_output_layers:
                        layer_input = brew.sum(model, [layer_output, layer_input],
                                               self.scope(f"residual_output_{i}"))
                    else:
                        layer_input = layer_output
                next_states.extend(layer_next_states)
        return next_states

    def get_state_names(self):
        return self.state_names

    def get_output_state_index(self):
        return sum(len(cell.get_state_names()) for cell in self.cells[:-1]) + \
            self.cells[-1].get_output_state_index()

    def _connected_output(self, model, states, per_state, prepare, name):
        outputs = []
        index = 0
        for i, cell in enumerate(self.cells):
            count = per_state * len(cell.get_state_names())
            if i in self.output_connected_layers:
                outputs.append(getattr(cell, prepare)(model, states[index:index + count]))
            index += count
        return brew.sum(model, outputs, self.scope(name)) if len(outputs) > 1 else outputs[0]

    def _prepare_output(self, model, states):
        return self._connected_output(model, states, 1, "_prepare_output", "residual_output")

    def _prepare_output_sequence(self, model, states):
        return self._connected_output(model, states, 2, "_prepare_output_sequence",
                                      "residual_output_sequence")


class AttentionCell(RNNCell):
    """A decoder cell attending, at every step, over ``encoder_outputs`` (T_enc x N x D):
    the previous step's attention context is an extra input of the decoder cell, and
    the new context (caffe2lite.attention) a state of its own."""

    def __init__(self, encoder_output_dim, encoder_outputs, encoder_lengths, decoder_cell,
                 decoder_state_dim, attention_type, weighted_encoder_outputs,
                 attention_memory_optimization, **kwargs):
        super().__init__(**kwargs)
        self.encoder_output_dim = encoder_output_dim
        self.encoder_outputs = encoder_outputs
        self.encoder_lengths = encoder_lengths
        self.decoder_cell = decoder_cell
        self.decoder_state_dim = decoder_state_dim
        self.weighted_encoder_outputs = weighted_encoder_outputs
        self.encoder_outputs_transposed = None
        assert attention_type in [AttentionType.Regular, AttentionType.Recurrent,
                                  AttentionType.Dot, AttentionType.SoftCoverage]
        self.attention_type = attention_type
        self.attention_memory_optimization = attention_memory_optimization

    def _apply(self, model, input_t, seq_lengths, states, timestep, extra_inputs=None):
        coverage = self.attention_type == AttentionType.SoftCoverage
        decoder_prev_states = states[:-2] if coverage else states[:-1]
        context_prev = states[-2] if coverage else states[-1]
        assert extra_inputs is None
        decoder_states = self.decoder_cell._apply(
            model, input_t, seq_lengths, decoder_prev_states, timestep,
            extra_inputs=[(context_prev, self.encoder_output_dim)])
        self.hidden_t_intermediate = self.decoder_cell._prepare_output(model, decoder_states)
        common = dict(model=model, encoder_output_dim=self.encoder_output_dim,
                      encoder_outputs_transposed=self.encoder_outputs_transposed,
                      decoder_hidden_state_t=self.hidden_t_intermediate,
                      decoder_hidden_state_dim=self.decoder_state_dim, scope=self.name,
                      encoder_lengths=self.encoder_lengths)
        if self.attention_type == AttentionType.Recurrent:
            context_t, self.attention_weights_3d, attention_blobs = apply_recurrent_attention(
                weighted_encoder_outputs=self.weighted_encoder_outputs,
                attention_weighted_encoder_context_t_prev=context_prev, **common)
        elif self.attention_type == AttentionType.Regular:
            context_t, self.attention_weights_3d, attention_blobs = apply_regular_attention(
                weighted_encoder_outputs=self.weighted_encoder_outputs, **common)
        elif self.attention_type == AttentionType.Dot:
            context_t, self.attention_weights_3d, attention_blobs = apply_dot_attention(
                **common)
        else:
            context_t, self.attention_weights_3d, attention_blobs, coverage_t = \
                apply_soft_coverage_attention(
                    weighted_encoder_outputs=self.weighted_encoder_outputs,
                    coverage_t_prev=states[-1], coverage_weights=self.coverage_weights,
                    **common)
        if self.attention_memory_optimization:
            self.recompute_blobs.extend(attention_blobs)
        output = list(decoder_states) + [context_t] + ([coverage_t] if coverage else [])
        index = self.decoder_cell.get_output_state_index()
        output[index] = model.Copy(output[index], self.scope("hidden_t_external"))
        model.net.AddExternalOutputs(*output)
        return output

    def get_attention_weights(self):
        """[batch_size, encoder_length, 1]"""
        return self.attention_weights_3d

    def prepare_input(self, model, input_blob):
        if self.encoder_outputs_transposed is None:
            self.encoder_outputs_transposed = brew.transpose(
                model, self.encoder_outputs, self.scope("encoder_outputs_transposed"),
                axes=[1, 2, 0])
        if self.weighted_encoder_outputs is None and self.attention_type != AttentionType.Dot:
            self.weighted_encoder_outputs = brew.fc(
                model, self.encoder_outputs, self.scope("weighted_encoder_outputs"),
                dim_in=self.encoder_output_dim, dim_out=self.encoder_output_dim, axis=2)
        return self.decoder_cell.prepare_input(model, input_blob)

    def build_initial_coverage(self, model):
        """Zeros of shape [encoder_length] (known only when the net runs), and
        ``self.coverage_weights``, the projection of encoder_outputs coverage uses."""
        assert self.attention_type == AttentionType.SoftCoverage
        self.coverage_weights = brew.fc(
            model, self.encoder_outputs, self.scope("coverage_weights"),
            dim_in=self.encoder_output_dim, dim_out=self.encoder_output_dim, axis=2)
        encoder_length = model.net.Slice(model.net.Shape(self.encoder_outputs), starts=[0],
                                         ends=[1])
        device = scope.CurrentDeviceScope()
        if device is not None and core.IsGPUDeviceType(device.device_type):
            encoder_length = model.net.CopyGPUToCPU(encoder_length, "encoder_length_cpu")
        return model.net.ConstantFill(encoder_length, self.scope("initial_coverage"),
                                      value=0.0, input_as_shape=1)

    def get_state_names(self):
        names = list(self.decoder_cell.get_state_names())
        names[self.get_output_state_index()] = self.scope("hidden_t_external")
        names.append(self.scope("attention_weighted_encoder_context_t"))
        if self.attention_type == AttentionType.SoftCoverage:
            names.append(self.scope("coverage_t"))
        return names

    def get_output_dim(self):
        return self.decoder_state_dim + self.encoder_output_dim

    def get_output_state_index(self):
        return self.decoder_cell.get_output_state_index()

    def _prepare_output(self, model, states):
        context = states[-2] if self.attention_type == AttentionType.SoftCoverage \
            else states[-1]
        with core.NameScope(self.name or ""):
            return brew.concat(model, [self.hidden_t_intermediate, context],
                               "states_and_context_combination", axis=2)

    def _prepare_output_sequence(self, model, state_outputs):
        coverage = self.attention_type == AttentionType.SoftCoverage
        decoder_output = self.decoder_cell._prepare_output_sequence(
            model, state_outputs[:-4] if coverage else state_outputs[:-2])
        context_index = 2 * (len(self.get_state_names()) - (2 if coverage else 1))
        with core.NameScope(self.name or ""):
            return brew.concat(model, [decoder_output, state_outputs[context_index]],
                               "states_and_context_combination", axis=2)


class LSTMWithAttentionCell(AttentionCell):
    """An LSTMCell decoder (scope ``<name>/decoder``) with attention."""

    decoder_class = LSTMCell

    def __init__(self, encoder_output_dim, encoder_outputs, encoder_lengths, decoder_input_dim,
                 decoder_state_dim, name, attention_type, weighted_encoder_outputs,
                 forget_bias, lstm_memory_optimization, attention_memory_optimization,
                 forward_only=False):
        decoder = self.decoder_class(
            input_size=decoder_input_dim, hidden_size=decoder_state_dim,
            forget_bias=forget_bias, memory_optimization=lstm_memory_optimization,
            name=f"{name}/decoder", forward_only=False, drop_states=False)
        super().__init__(
            encoder_output_dim=encoder_output_dim, encoder_outputs=encoder_outputs,
            encoder_lengths=encoder_lengths, decoder_cell=decoder,
            decoder_state_dim=decoder_state_dim, name=name, attention_type=attention_type,
            weighted_encoder_outputs=weighted_encoder_outputs,
            attention_memory_optimization=attention_memory_optimization,
            forward_only=forward_only)


class MILSTMWithAttentionCell(LSTMWithAttentionCell):
    """An MILSTMCell decoder with attention (no encoder lengths, as in Caffe2)."""

    decoder_class = MILSTMCell

    def __init__(self, encoder_output_dim, encoder_outputs, decoder_input_dim,
                 decoder_state_dim, name, attention_type, weighted_encoder_outputs,
                 forget_bias, lstm_memory_optimization, attention_memory_optimization,
                 forward_only=False):
        super().__init__(encoder_output_dim, encoder_outputs, None, decoder_input_dim,
                         decoder_state_dim, name, attention_type, weighted_encoder_outputs,
                         forget_bias, lstm_memory_optimization, attention_memory_optimization,
                         forward_only)


def _LSTM(cell_class, model, input_blob, seq_lengths, initial_states, dim_in, dim_out,  # noqa: N802
          scope=None, outputs_with_grads=(0,), return_params=False, memory_optimization=False,
          forget_bias=0.0, forward_only=False, drop_states=False, return_last_layer_only=True,
          static_rnn_unroll_size=None, **cell_kwargs):
    """An LSTM-like recurrent net of ``cell_class`` layers over ``input_blob`` (T x N x
    dim_in); ``dim_out`` an int, or one per layer.  Returns (h_all, h_last, c_all,
    c_last) of the last layer (of every layer without ``return_last_layer_only``), plus
    the parameter names with ``return_params``.  ``initial_states``: 2 blobs per layer,
    or None for zero-initialised parameters.  ``outputs_with_grads`` index the last
    layer's outputs; ``static_rnn_unroll_size`` writes the steps out (UnrolledCell)."""
    if type(dim_out) is not list and type(dim_out) is not tuple:
        dim_out = [dim_out]
    num_layers = len(dim_out)
    cells = [cell_class(input_size=dim_in if i == 0 else dim_out[i - 1], hidden_size=dim_out[i],
                        forget_bias=forget_bias, memory_optimization=memory_optimization,
                        name=scope if num_layers == 1 else None, forward_only=forward_only,
                        drop_states=drop_states, **cell_kwargs)
             for i in range(num_layers)]
    cell = MultiRNNCell(cells, name=scope, forward_only=forward_only) if num_layers > 1 \
        else cells[0]
    if static_rnn_unroll_size is not None:
        cell = UnrolledCell(cell, static_rnn_unroll_size)
    outputs_with_grads = [4 * (num_layers - 1) + i for i in outputs_with_grads]
    _, result = cell.apply_over_sequence(model=model, inputs=input_blob,
                                         seq_lengths=seq_lengths, initial_states=initial_states,
                                         outputs_with_grads=outputs_with_grads)
    if return_last_layer_only:
        result = result[4 * (num_layers - 1):]
    if return_params:
        result = list(result) + [{"input": cell.get_input_params(),
                                  "recurrent": cell.get_recurrent_params()}]
    return tuple(result)


LSTM = functools.partial(_LSTM, LSTMCell)
BasicRNN = functools.partial(_LSTM, BasicRNNCell)
MILSTM = functools.partial(_LSTM, MILSTMCell)
LayerNormLSTM = functools.partial(_LSTM, LayerNormLSTMCell)
LayerNormMILSTM = functools.partial(_LSTM, LayerNormMILSTMCell)


class UnrolledCell(RNNCell):
    """``cell`` written out for T steps in the net itself (Split, the steps, Concat),
    parameters shared across steps: no RecurrentNetwork operator."""

    def __init__(self, cell, T):  # noqa: N803
        self.T = T
        self.cell = cell

    def apply_over_sequence(self, model, inputs, seq_lengths, initial_states,
                            outputs_with_grads=None):
        inputs = self.cell.prepare_input(model, inputs)
        split_inputs = model.net.Split(inputs, [f"{inputs}_timestep_{i}" for i in range(self.T)],
                                       axis=0)
        if self.T == 1:
            split_inputs = [split_inputs]
        states = initial_states
        all_states = []
        for t in range(self.T):
            scope_name = f"timestep_{t}"
            with ParameterSharing({scope_name: ""}), scope.NameScope(scope_name):
                timestep = model.param_init_net.ConstantFill(
                    [], "timestep", value=t, shape=[1], dtype=core.DataType.INT32,
                    device_option=core.DeviceOption(caffe2_pb2.CPU))
                states = self.cell._apply(model=model, input_t=split_inputs[t],
                                          seq_lengths=seq_lengths, states=states,
                                          timestep=timestep)
            all_states.append(states)
        prefix = len("timestep_0/")
        concatenated = [model.net.Concat(list(per_step),
                                         [str(per_step[0])[prefix:] + "_concat",
                                          str(per_step[0])[prefix:] + "_concat_info"],
                                         axis=0)[0]
                        for per_step in zip(*all_states)]
        # (state_1 over all steps, state_1 last, state_2 over all steps, ...)
        outputs = tuple(s for pair in zip(concatenated, states) for s in pair)
        without_grad = set(range(len(outputs))) - set(outputs_with_grads)
        for i in without_grad:
            model.net.ZeroGradient(outputs[i], [])
        logging.debug("Added 0 gradients for blobs: %s", [outputs[i] for i in without_grad])
        return self.cell._prepare_output_sequence(model, outputs), outputs


def GetLSTMParamNames():  # noqa: N802
    return {"weights": ["input_gate_w", "forget_gate_w", "output_gate_w", "cell_w"],
            "biases": ["input_gate_b", "forget_gate_b", "output_gate_b", "cell_b"]}


def InitFromLSTMParams(lstm_pblobs, param_values):  # noqa: N802
    """Set an LSTM's parameter blobs (``lstm_pblobs`` as return_params gives them) from
    per-gate values: ``param_values[input_type][gate name]``."""
    names = GetLSTMParamNames()
    for input_type, values in param_values.items():
        for kind in ("weights", "biases"):
            blob = lstm_pblobs[input_type][kind]
            flat = np.concatenate([np.asarray(values[n]).ravel() for n in names[kind]])
            current = workspace.FetchBlob(blob)
            workspace.FeedBlob(blob, flat.reshape(current.shape).astype(np.float32))


def LSTMWithAttention(model, decoder_inputs, decoder_input_lengths,  # noqa: N802
                      initial_decoder_hidden_state, initial_decoder_cell_state,
                      initial_attention_weighted_encoder_context, encoder_output_dim,
                      encoder_outputs, encoder_lengths, decoder_input_dim, decoder_state_dim,
                      scope, attention_type=AttentionType.Regular, outputs_with_grads=(0, 4),
                      weighted_encoder_outputs=None, lstm_memory_optimization=False,
                      attention_memory_optimization=False, forget_bias=0.0,
                      forward_only=False):
    """An LSTM decoder over ``decoder_inputs`` attending over ``encoder_outputs``
    (Bahdanau et al., with the state/context order of Luong et al.); returns the states
    over all steps and last, as apply_over_sequence."""
    cell = LSTMWithAttentionCell(
        encoder_output_dim=encoder_output_dim, encoder_outputs=encoder_outputs,
        encoder_lengths=encoder_lengths, decoder_input_dim=decoder_input_dim,
        decoder_state_dim=decoder_state_dim, name=scope, attention_type=attention_type,
        weighted_encoder_outputs=weighted_encoder_outputs, forget_bias=forget_bias,
        lstm_memory_optimization=lstm_memory_optimization,
        attention_memory_optimization=attention_memory_optimization, forward_only=forward_only)
    initial_states = [initial_decoder_hidden_state, initial_decoder_cell_state,
                      initial_attention_weighted_encoder_context]
    if attention_type == AttentionType.SoftCoverage:
        initial_states.append(cell.build_initial_coverage(model))
    _, result = cell.apply_over_sequence(model=model, inputs=decoder_inputs,
                                         seq_lengths=decoder_input_lengths,
                                         initial_states=initial_states,
                                         outputs_with_grads=outputs_with_grads)
    return result


def _layered_LSTM(model, input_blob, seq_lengths, initial_states, dim_in, dim_out,  # noqa: N802
                  scope, outputs_with_grads=(0,), return_params=False,
                  memory_optimization=False, forget_bias=0.0, forward_only=False,
                  drop_states=False, create_lstm=None):
    """One ``create_lstm`` per entry of ``dim_out``, each layer fed the previous one's
    output and final states (scopes ``<scope>_layer_<i>``)."""
    params = dict(model=model, input_blob=input_blob, seq_lengths=seq_lengths,
                  initial_states=initial_states, dim_in=dim_in, dim_out=dim_out, scope=scope,
                  outputs_with_grads=outputs_with_grads, return_params=return_params,
                  memory_optimization=memory_optimization, forget_bias=forget_bias,
                  forward_only=forward_only, drop_states=drop_states)
    if not isinstance(dim_out, list):
        return create_lstm(**params)
    if len(dim_out) == 1:
        params["dim_out"] = dim_out[0]
        return create_lstm(**params)
    assert len(dim_out) != 0, "dim_out list can't be empty"
    assert return_params is False, "return_params not supported for layering"
    for i, output_dim in enumerate(dim_out):
        params["dim_out"] = output_dim
        output, last_output, all_states, last_state = create_lstm(**params)
        params.update(input_blob=output, dim_in=output_dim,
                      initial_states=(last_output, last_state), scope=f"{scope}_layer_{i + 1}")
    return output, last_output, all_states, last_state


layered_LSTM = functools.partial(_layered_LSTM, create_lstm=LSTM)
