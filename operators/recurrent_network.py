"""RecurrentNetwork and its gradient: a step net run once per timestep (Caffe2's
caffe2/operators/rnn/recurrent_network_op.{h,cc}), the two internal ops Caffe2 added to
step nets (``rnn_internal_apply_link``, ``rnn_internal_accumulate_gradient_input``) and
``RecurrentNetworkBlobFetcher``.  ``caffe2lite.recurrent.recurrent_net`` (and the cells of
``caffe2lite.rnn_cell``) build these ops; their arguments are Caffe2's:

* ``step_net``: the cell, run at t = 0 .. T-1 (T = INPUT.shape[0], N = shape[1]) in a
  workspace of its own nested in the op's (``runtime.nested_net``), with the int32
  blob ``timestep`` holding t.  Its intermediate blobs stay in step t's workspace (the
  last output, ``step_workspaces``) for the backward pass.
* ``recurrent_states`` / ``initial_recurrent_state_ids``: each state is a
  (T + L) x N x D blob in the op's workspace, its first L rows copied from the input
  at that index ((L, N, D), (N, D) with L = 1, or (D,) repeated over N).
* ``link_internal`` / ``link_external`` / ``link_offset`` / ``link_window``: at step t
  the step net sees rows [t + offset, t + offset + window) of the external blob under the
  internal name, and what the step net writes there lands in those rows (the hidden
  state at t + 1, ...), at once: the name is a view of the rows (``LinkedScope``), as
  Caffe2 shared the memory (a value of another size stays the step's own, as Caffe2
  reallocated it).
* ``alias_src`` / ``alias_dst`` / ``alias_offset``: each output is the rows of a state
  from ``offset`` on (a negative offset counts from the end): ``_all`` = rows 1..T,
  ``_last`` = row T.

RecurrentNetworkGradient runs ``backward_step_net`` from t = T-1 down to 0 in the forward
step workspaces, with the forward links plus the ``backward_link_*`` ones (state
gradients, the input's gradient), after adding the gradients of the ``_all`` outputs
into the state gradients (Caffe2's accumulate op) and before summing each parameter's
per-step gradient (``<grad>_tmpstep``) into its output.  Outputs: the gradient of the
input sequence, of each ``param`` and of each initial state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                once_per_op, register_kernel, register_schema)
from caffe2lite.runtime.nested_net import ChildBlobs, NestedNet
from caffe2lite.runtime.protoio import parse_proto

LINK_ARGS = [
    Arg("link_internal", "strings", [], "step-net blob names of the links"),
    Arg("link_external", "strings", [], "blobs of the op's workspace they are rows of"),
    Arg("link_offset", "ints", [], "the link's first row is t + offset"),
    Arg("link_window", "ints", [], "rows per link (default 1 each)"),
]
COMMON_ARGS = LINK_ARGS + [
    Arg("step_net", "any", None, "the cell: a NetDef (or its text form)"),
    Arg("recurrent_states", "strings", [], "state blobs, (T + L) x N x D"),
    Arg("initial_recurrent_state_ids", "ints", [], "input index of each state's first rows"),
    Arg("alias_src", "strings", [], "state of each aliased output"),
    Arg("alias_dst", "strings", [], "output name of each alias"),
    Arg("alias_offset", "ints", [], "first row of each alias (negative: from the end)"),
    Arg("timestep", "string", "timestep", "blob holding t inside the step net"),
    Arg("enable_rnn_executor", "bool", False, "Caffe2's parallel step executor: accepted, "
                                              "the steps run in order"),
    Arg("backward_step_net", "any", None, "the cell's gradient ops (absent: forward only)"),
    Arg("param", "ints", [], "input indices of the parameters the step net reads"),
    Arg("param_grads", "strings", [], "their gradient blobs inside the backward step net"),
    Arg("backward_link_internal", "strings", [], ""),
    Arg("backward_link_external", "strings", [], ""),
    Arg("backward_link_offset", "ints", [], ""),
    Arg("outputs_with_grads", "ints", [], "outputs whose gradients flow in"),
    Arg("recompute_blobs_on_backward", "strings", [], "blobs not kept per step"),
]


def recurrent_network_gradient_maker(op_def, g_output):
    """Caffe2's GetRecurrentNetworkGradient: RecurrentNetworkGradient(gradients of the
    outputs in outputs_with_grads, every input, every output) -> (gradient of input 0,
    of each param, of each initial state)."""
    args = {a.name: a for a in op_def.arg}
    with_grads = list(args["outputs_with_grads"].ints) if "outputs_with_grads" in args else []
    if not with_grads:
        raise ValueError(f"RecurrentNetwork {op_def.name!r}: outputs_with_grads is empty")
    params = list(args["param"].ints) if "param" in args else []
    initial = list(args["initial_recurrent_state_ids"].ints) \
        if "initial_recurrent_state_ids" in args else []
    ins = [dense_output_grad(op_def, g_output, i) for i in with_grads] + \
        list(op_def.input) + list(op_def.output)
    outs = [grad_name(op_def.input[i]) for i in [0] + params + initial]
    g_input = [None] * len(op_def.input)
    for i in [0] + params + initial:
        g_input[i] = grad_name(op_def.input[i])
    return [make_operator("RecurrentNetworkGradient", ins, outs)], g_input


register_schema(OpSchema(
    "RecurrentNetwork", num_inputs=(1, None), num_outputs=(2, None), args=COMMON_ARGS,
    needs_workspace=True, opaque_outputs=True, allow_unknown_args=True,
    inputs=[("input", "T x N x ... sequence"), ("...", "initial states, then references "
                                                      "(parameters) of the step net")],
    outputs=[("aliases", "the state rows named by alias_dst"),
             ("step_workspaces", "the per-step workspaces, for the gradient")],
    doc="Runs step_net once per timestep over a sequence (see operators/recurrent_network.py).",
    gradient=recurrent_network_gradient_maker))

register_schema(OpSchema(
    "RecurrentNetworkGradient", num_inputs=(2, None), num_outputs=(1, None),
    args=COMMON_ARGS, needs_workspace=True, allow_unknown_args=True,
    inputs=[("...", "gradients of outputs_with_grads, RecurrentNetwork's inputs and "
                    "outputs")],
    outputs=[("...", "gradients of the sequence, of each param, of each initial state")],
    doc="Gradient of RecurrentNetwork: backward_step_net run from the last step down."))

register_schema(OpSchema(
    "rnn_internal_apply_link", num_inputs=2, num_outputs=2, enforce_inplace={(1, 1)},
    private=True,
    args=[Arg("offset", "int", -1, "first row t + offset", ), Arg("window", "int", -1, "rows")],
    inputs=[("timestep", "int32 holding t"), ("external", "the linked blob")],
    outputs=[("internal", "rows [t + offset, t + offset + window) of external"),
             ("external", "unchanged")],
    doc="Internal RNN operator: the rows of a linked blob a step sees."))

register_schema(OpSchema(
    "rnn_internal_accumulate_gradient_input", num_inputs=3, num_outputs=(1, None),
    enforce_inplace={(2, 0)}, private=True, allow_unknown_args=True,
    args=[Arg("offset", "int", -1, "row t + offset of the gradient receives row t")],
    inputs=[("timestep", "int32 holding t"), ("og", "gradient of the _all output"),
            ("g", "state gradient")],
    outputs=[("g", "g with row t + offset increased by og[t]")],
    doc="Internal RNN operator: adds an output's gradient at step t into a state gradient."))

register_schema(OpSchema(
    "RecurrentNetworkBlobFetcher", num_inputs=1, num_outputs=1, needs_workspace=True,
    args=[Arg("prefix", "string", "rnn", "prefix of the copied blobs' names")],
    inputs=[("step_workspaces", "RecurrentNetwork's last output")],
    outputs=[("blob_names", "the names of the copies, <prefix>_<blob><t>")],
    doc="Copies every blob of each step workspace of a RecurrentNetwork into the op's "
        "workspace (caffe2lite.recurrent.retrieve_step_blobs)."))


# -- links ------------------------------------------------------------------------------

def apply_link(ctx, external, t, offset, window, name):
    """Rows [t + offset, t + offset + window) of ``external``."""
    if getattr(external, "ndim", 0) < 1 or external.size == 0:
        ctx.fail(f"linked blob '{name}' must be a non-empty tensor, got "
                 f"{getattr(external, 'shape', type(external).__name__)}")
    if not 0 <= t + offset <= external.shape[0] - window:
        ctx.fail(f"link into '{name}': rows [{t + offset}, {t + offset + window}) are outside "
                 f"its {external.shape[0]} rows")
    return external[t + offset:t + offset + window]


def accumulate_gradient_input(ctx, g, og, t, offset):
    """g[t + offset] += og[t], in place (a step's share of an output's gradient)."""
    if og.ndim < 1 or g.ndim < 1 or not 0 <= t < og.shape[0] or \
            not 0 <= t + offset < g.shape[0] or og[t].size != g[t + offset].size:
        ctx.fail(f"accumulating gradient row {t} of shape {tuple(og.shape)} into row "
                 f"{t + offset} of shape {tuple(g.shape)}: out of bounds")
    g[t + offset] += og[t].reshape(g[t + offset].shape)


def _timestep(ctx, t):
    if getattr(t, "dtype", None) is None or t.dtype.kind not in "iu" or t.size < 1:
        ctx.fail(f"{ctx.input_label(0)} must hold the timestep as an int32 tensor")
    return int(t.reshape(-1)[0])


def _offset_and_window(ctx, *names):
    values = [ctx.args[n] for n in names]
    for name, value in zip(names, values):
        if value < 0:
            ctx.fail(f"argument '{name}' not set (must be >= 0)")
    return values


@register_kernel("rnn_internal_apply_link", devices=("CPU", "CUDA"))
def rnn_internal_apply_link(ctx, t, external):
    offset, window = _offset_and_window(ctx, "offset", "window")
    return apply_link(ctx, external, _timestep(ctx, t), offset, window,
                      ctx.op_def.input[1]).copy(), external


@register_kernel("rnn_internal_accumulate_gradient_input", devices=("CPU", "CUDA"))
def rnn_internal_accumulate_gradient_input(ctx, t, og, g):
    (offset,) = _offset_and_window(ctx, "offset")
    if g.dtype.kind != "f" or og.dtype != g.dtype:
        ctx.fail(f"{ctx.input_label(1)} and {ctx.input_label(2)} must be float tensors of "
                 f"one dtype, got {og.dtype} and {g.dtype}")
    g = g.copy()
    accumulate_gradient_input(ctx, g, og, _timestep(ctx, t), offset)
    return (g,) * len(ctx.op_def.output)


# -- the parsed arguments, once per operator ------------------------------------------

@dataclass
class Link:
    internal: str
    external: str
    offset: int
    window: int = 1


@dataclass
class ScratchWorkspaces:
    """RecurrentNetwork's last output: the blobs of each step's workspace (``steps``)
    and of the workspace they all share (``shared``), for the gradient op."""
    steps: list = field(default_factory=list)
    shared: dict = field(default_factory=dict)


def _renamed(op_def, name):
    """memonger's renaming of a blob inside the gradient op (argument ``<blob>.rename``)."""
    for arg in op_def.arg:
        if arg.name == name + ".rename" and arg.HasField("s"):
            return arg.s.decode("utf-8")
    return name


def _links(ctx, prefix, with_window=True, rename=False):
    args = ctx.args
    internal, external = args[prefix + "_internal"], args[prefix + "_external"]
    offset = args[prefix + "_offset"]
    window = args[prefix + "_window"] if with_window and args.get(prefix + "_window") \
        else [1] * len(offset)
    if not len(internal) == len(external) == len(offset) == len(window):
        ctx.fail(f"{prefix}_internal/_external/_offset/_window must have one entry per link, "
                 f"got {len(internal)}, {len(external)}, {len(offset)}, {len(window)}")
    name = (lambda b: _renamed(ctx.op_def, b)) if rename else (lambda b: b)
    return [Link(name(i), name(e), o, w) for i, e, o, w in zip(internal, external, offset, window)]


def _net_argument(ctx, name):
    value = ctx.args[name]
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = parse_proto(value.encode(), caffe2_pb2.NetDef, f"{ctx.where}: argument '{name}'")
    net = caffe2_pb2.NetDef()
    net.CopyFrom(value)
    if ctx.op_def.HasField("device_option"):
        for op in net.op:
            if not op.HasField("device_option"):
                op.device_option.CopyFrom(ctx.op_def.device_option)
    return net


class LinkedScope(ChildBlobs):
    """A step's blobs, in which each link's name is a view of its rows: a value written
    under that name goes into the rows at once when it has as many elements (a later op of
    the step reading another link over the same rows sees it), as Caffe2's shared memory
    took it; a value of another size is the step's own, as Caffe2 reallocated then."""

    __slots__ = ("views",)

    def __init__(self, shared, local):
        super().__init__(shared, local)
        self.views = {}

    def __setitem__(self, name, value):
        view = self.views.get(name)
        if view is not None and getattr(value, "size", None) == view.size:
            if value is not view:
                view[...] = value.reshape(view.shape)
            value = view.reshape(value.shape)  # the rows, in the shape written
        super().__setitem__(name, value)


class StepNet:
    """A step net and the links the step applies around it."""

    def __init__(self, net_def, links, timestep):
        self.net_def = net_def
        self.links = links
        self.timestep = timestep
        written = {o for op in net_def.op for o in op.output}
        # Blobs some link of which the step writes: every link into them uses the one
        # writable copy, so that all their views see the writes.
        self.written_externals = {link.external for link in links if link.internal in written}
        self.nested = None

    def run(self, ctx, scope, t, externals):
        """One step: the links' rows as views, then the net (writes go through)."""
        scope.local[self.timestep] = np.array([t], dtype=np.int32)
        for link in self.links:
            external = externals(link.external, writable=link.external in self.written_externals)
            rows = apply_link(ctx, external, t, link.offset, link.window, link.external)
            scope.views[link.internal] = rows
            scope[link.internal] = rows
        if self.nested is None:
            self.nested = NestedNet(self.net_def, ctx.workspace, scope)
        self.nested.run(scope)


@once_per_op
def _forward(ctx):
    args = ctx.args
    net_def = _net_argument(ctx, "step_net")
    if net_def is None:
        ctx.fail("argument 'step_net' is required")
    states, ids = args["recurrent_states"], args["initial_recurrent_state_ids"]
    if len(states) != len(ids):
        ctx.fail(f"recurrent_states ({len(states)}) and initial_recurrent_state_ids "
                 f"({len(ids)}) mismatch")
    aliases = list(zip(args["alias_src"], args["alias_dst"], args["alias_offset"]))
    if not len(args["alias_src"]) == len(args["alias_dst"]) == len(args["alias_offset"]):
        ctx.fail("alias_src/alias_dst/alias_offset mismatch")
    by_output = {dst: (src, offset) for src, dst, offset in aliases}
    missing = [o for o in ctx.op_def.output[:-1] if o not in by_output]
    if missing:
        ctx.fail(f"outputs {missing} are not in alias_dst {args['alias_dst']}")
    return StepNet(net_def, _links(ctx, "link"), args["timestep"]), list(zip(states, ids)), \
        by_output


def _initial_state(ctx, index, value, seq_len, batch):
    """The (T + L, N, D) state array, its first L rows from input ``index``."""
    if getattr(value, "dtype", None) is None or value.dtype.kind != "f" or \
            not 1 <= value.ndim <= 3:
        ctx.fail(f"{ctx.input_label(index)} (an initial state) must be a float tensor of 1 "
                 f"to 3 dimensions, got {getattr(value, 'dtype', type(value).__name__)} "
                 f"{getattr(value, 'shape', '')}")
    first = value.shape[0] if value.ndim == 3 else 1
    if value.ndim >= 2 and value.shape[-2] != batch:
        ctx.fail(f"{ctx.input_label(index)} has shape {value.shape}: its batch dimension "
                 f"must be N = {batch}")
    state = ctx.xp.zeros((seq_len + first, batch, value.shape[-1]), dtype=value.dtype)
    # (D,) is repeated over the batch; (L, N, D) may have L = 0 (a window of no rows)
    state[:first] = value if value.ndim == 1 else value.reshape(first, batch, value.shape[-1])
    return state


def _externals(states, blobs, copies):
    """Looks up a link's external blob: a state being built, else the workspace's blob
    (copied once, if a step writes into it, so the input blob changes only on success)."""
    def lookup(name, writable=False):
        if name in states:
            return states[name]
        if name in copies:
            return copies[name]
        if name not in blobs:
            raise KeyError(name)
        if writable:
            copies[name] = blobs[name].copy()
            return copies[name]
        return blobs[name]
    return lookup


def _sequence(ctx, x):
    if getattr(x, "ndim", 0) < 2:
        ctx.fail(f"{ctx.input_label(0)} must be a T x N x ... sequence, got "
                 f"{getattr(x, 'shape', type(x).__name__)}")
    return x.shape[0], x.shape[1]


@register_kernel("RecurrentNetwork")
def recurrent_network(ctx, *inputs):
    step, recurrent, by_output = _forward(ctx)
    seq_len, batch = _sequence(ctx, inputs[0])
    blobs = ctx.workspace.blob_dict
    states = {name: _initial_state(ctx, i, inputs[i], seq_len, batch) for name, i in recurrent}
    backward = _net_argument(ctx, "backward_step_net") is not None
    shared = ChildBlobs(blobs)
    for name in ctx.args["recompute_blobs_on_backward"]:  # one buffer for all steps
        if name not in shared:
            shared.local[name] = None
    steps = [{} for _ in range(seq_len if backward else min(seq_len, 2))]
    copies = {}
    externals = _externals(states, blobs, copies)
    for t in range(seq_len):
        scope = LinkedScope(shared, steps[t] if backward else steps[t % 2])
        step.run(ctx, scope, t, externals)
    outputs = []
    for name in ctx.op_def.output[:-1]:
        src, offset = by_output[name]
        source = externals(src)
        start = offset if offset >= 0 else source.shape[0] + offset
        if start > source.shape[0] or start < 0:
            ctx.fail(f"alias '{name}' of '{src}' from row {offset}: invalid offset")
        outputs.append(source[start:])
    blobs.update(states)  # the states stay in the workspace, for the gradient op
    blobs.update(copies)
    return tuple(outputs) + (ScratchWorkspaces(steps, shared.local),)


# -- the gradient -------------------------------------------------------------------------

@dataclass
class Backward:
    step: StepNet
    n_grads: int                 # gradients of outputs at the front of the inputs
    params: list                 # (input index, output index, per-step gradient blob)
    recurrent: list              # (state, state gradient, _all gradient input, _last one)
    initial: list                # input index of each initial state
    input_grad: str


@once_per_op
def _backward(ctx):
    args, op = ctx.args, ctx.op_def
    net_def = _net_argument(ctx, "backward_step_net")
    if net_def is None:
        ctx.fail("argument 'backward_step_net' is required")
    with_grads = args["outputs_with_grads"]
    params, param_grads = args["param"], [_renamed(op, g) for g in args["param_grads"]]
    if param_grads and len(param_grads) != len(params):
        ctx.fail(f"param ({len(params)}) and param_grads ({len(param_grads)}) mismatch")
    per_param = []
    for i, index in enumerate(params):
        grad = op.output[i + 1]
        cell = (param_grads[i] if param_grads else grad) + "_tmpstep"
        _rename_in_net(net_def, param_grads[i] if param_grads else grad, cell)
        per_param.append((index + len(with_grads), i + 1, cell))
    recurrent = []
    for state in args["recurrent_states"]:
        ext = last = None
        for j, (src, offset) in enumerate(zip(args["alias_src"], args["alias_offset"])):
            if src != state or j not in with_grads:
                continue
            k = max(k for k, w in enumerate(with_grads) if w == j)
            if offset not in (1, -1):
                ctx.fail(f"alias {j} of '{state}' has offset {offset}; a gradient flows "
                         f"only through offsets 1 (_all) and -1 (_last)")
            if offset == 1:
                ext = k
            else:
                last = k
        recurrent.append((state, _renamed(op, state + "_grad"), ext, last))
    links = _links(ctx, "link", rename=True) + \
        _links(ctx, "backward_link", with_window=False, rename=True)
    return Backward(StepNet(net_def, links, args["timestep"]), len(with_grads), per_param,
                    recurrent, [i + len(with_grads) for i in args["initial_recurrent_state_ids"]],
                    _renamed(op, op.input[len(with_grads)] + "_grad"))


def _rename_in_net(net_def, old, new):
    for op in net_def.op:
        op.input[:] = [new if b == old else b for b in op.input]
        op.output[:] = [new if b == old else b for b in op.output]


@register_kernel("RecurrentNetworkGradient")
def recurrent_network_gradient(ctx, *inputs):
    plan = _backward(ctx)
    xp = ctx.xp
    blobs = ctx.workspace.blob_dict
    sequence = inputs[plan.n_grads]
    seq_len, _ = _sequence(ctx, sequence)
    scratch = inputs[-1]
    if not isinstance(scratch, ScratchWorkspaces) or len(scratch.steps) < seq_len:
        ctx.fail(f"{ctx.input_label(len(inputs) - 1)} must be the step workspaces of a "
                 f"RecurrentNetwork run with a backward_step_net over {seq_len} steps")
    owned = {}
    for state, grad, ext, last in plan.recurrent:
        value = blobs.get(state)
        if getattr(value, "ndim", 0) != 3:
            ctx.fail(f"state '{state}' must be a 3-dimensional tensor in the workspace "
                     f"(run the RecurrentNetwork first)")
        owned[grad] = xp.zeros_like(value)
        if last is not None:
            g_last = inputs[last]
            if g_last.size != owned[grad][-1].size:
                ctx.fail(f"{ctx.input_label(last)} has {g_last.size} values, the last "
                         f"step of '{state}' {owned[grad][-1].size}")
            owned[grad][-1] += g_last.reshape(owned[grad][-1].shape)
    owned[plan.input_grad] = xp.zeros_like(sequence)
    sums = {cell: xp.zeros_like(inputs[index]) for index, _, cell in plan.params}
    shared = ChildBlobs(blobs, scratch.shared)
    # Blobs the backward ops make that the forward steps did not are scratch shared by
    # all steps (Caffe2's CreateSharedBlobs), not kept once per step.
    first_step = ChildBlobs(shared, scratch.steps[0] if scratch.steps else {})
    for op in plan.step.net_def.op:
        for name in op.output:
            if name not in first_step:
                shared.local[name] = None
    externals = _externals(owned, blobs, {})
    for t in reversed(range(seq_len)):
        for state, grad, ext, _ in plan.recurrent:
            if ext is not None:
                accumulate_gradient_input(ctx, owned[grad], inputs[ext], t, 1)
        scope = LinkedScope(shared, scratch.steps[t])
        plan.step.run(ctx, scope, t, externals)
        for cell, total in sums.items():
            value = scope.get(cell)
            if value is not None:
                total += value
    initial_grads = []
    for (state, grad, _, _), index in zip(plan.recurrent, plan.initial):
        init = inputs[index]
        rows = owned[grad][:init.shape[0] if init.ndim == 3 else 1]
        initial_grads.append(rows.reshape(init.shape) if init.ndim >= 2 else rows[0].sum(axis=0))
    for state, grad, _, _ in plan.recurrent:
        blobs[grad] = owned[grad]
    return (owned[plan.input_grad],) + tuple(sums[cell] for _, _, cell in plan.params) + \
        tuple(initial_grads)


@register_kernel("RecurrentNetworkBlobFetcher")
def recurrent_network_blob_fetcher(ctx, scratch):
    if not isinstance(scratch, ScratchWorkspaces):
        ctx.fail(f"{ctx.input_label(0)} must be a RecurrentNetwork's step workspaces")
    prefix = ctx.args["prefix"]
    copies = {f"{prefix}_{name}{i}": np.array(value, copy=True)
              for i, step in enumerate(scratch.steps) for name, value in step.items()
              if value is not None}
    ctx.workspace.blob_dict.update(copies)
    names = np.empty(len(copies), dtype=object)  # Caffe2's string tensors hold bytes
    names[:] = [name.encode("utf-8") for name in copies]
    return (names,)
