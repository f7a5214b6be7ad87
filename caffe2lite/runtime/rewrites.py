"""Inference rewrites: a net created for inference computes its outputs in fewer passes.

A net is created *for inference* when one of its ops has ``is_test`` set, or
when a Predictor creates it.  Its NetDef stays as written (``Proto()``, saving,
drawing); only the created net's schedule changes, and ``net.rewrites`` lists
what changed, as ``net.fusions`` does for runtime/fusion.py.  Four rewrites,
each with its flag (``GlobalInit(["caffe2", "--caffe2lite_fold_bn=0"])``, or
the environment variable of the same name in capitals, ``CAFFE2LITE_FOLD_BN=0``):

* ``caffe2lite_remove_noops``: an op that hands its input through unchanged
  (Dropout with is_test, Copy, Alias, StopGradient, ...) is dropped; the ops
  after it read its input instead.  Same bits.
* ``caffe2lite_fold_bn``: a SpatialBN with is_test after a Conv is folded into
  the convolution's weights and bias (W * a per output channel, b * a + c,
  with the BN's a = scale / sqrt(var + eps), c = bias - a * mean).  The roundings
  differ: outputs agree to about 1e-6 relative (tests/test_rewrites.py checks
  1e-5 of the largest logit on ResNet-shaped nets).
* ``caffe2lite_fuse_conv_act``: Conv (or FC) followed by Relu, or by a Sum
  with one other tensor and then Relu, is one step: the add and the activation
  run in place on the convolution's fresh output, saving a pass and an array
  each.  Same bits, but where the fused step takes another algorithm: it keeps
  its kernel's cache (a Conv's Winograd filters) from run to run, so a 3x3
  layer with fewer 2x2 tiles takes Winograd than a lone Conv would (other
  roundings, within 1e-6 relative on TrafficLight).
* ``caffe2lite_fold_constants``: in a Predictor's net, an op that is a function
  of its inputs alone, whose inputs are all parameters (blobs the init net set
  that the predict net never writes; never the data inputs), runs once; each
  run stores its result again.  Same bits.  (A net created in a workspace does
  not say which of its inputs are parameters and which are fed for every run.)

What makes a rewrite invisible, and so allowed: a blob the rewritten net no
longer writes (the conv output that a SpatialBN now absorbs, a no-op's output)
must be neither an external output nor an external input of the net, and the
net must say what its outputs are (``external_output``, or a Predictor, which
returns only those); a net that declares none is rewritten only where every
blob is still written.  Parameters and folded results must not be written by
another net of the workspace (runtime/write_log.py): a test net sharing its
weights with a training net that updates them in place keeps its BNs as they
are.  A step that holds folded arrays remembers which arrays it folded and
refolds when a parameter blob is replaced (FeedBlob, a net writing it).  Only
ops on the CPU are rewritten.  A rewritten step that fails runs the ops it
stands for as written, so errors name the op and blob they always did.

The engine names no operator: operator modules declare what the rewrites need
(``register_passthrough``, ``register_channel_affine``, ``register_affine_absorber``,
``register_epilogue_host``, ``register_residual_add``, ``register_activation``,
``register_pure``).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import flags
from caffe2lite.runtime.fusion import FusedSteps
from caffe2lite.runtime.operator import Operator

# op type -> when(op) -> bool: the op's first output is its first input, unchanged
_passthrough: dict = {}
# op type -> (axis(op) -> int | None, coefficients(op, *params) -> (a, c)): in test mode
# the op is y = x * a + c per channel along axis (negative: from the end); params are
# its inputs after the first.
_channel_affine: dict = {}
# op type -> spec(op) -> (weight input, bias input or None, output channel axis) or None:
# the op is linear in its weight, whose axis 0 is the output channel.
_absorbers: dict = {}
# op type -> apply(y, steps) running the in-place ``steps`` [(fn, operand or None)] on
# output 0 of its kernel, a fresh array (the op's module decides how: in pieces, on
# threads)
_epilogue_hosts: dict = {}
# op type -> (its plain kernel, run(ctx, inputs, steps)): see register_epilogue_host
_fused_kernels: dict = {}
# op types whose fused run also takes ``out=`` (see register_epilogue_host)
_fused_writes_into: set = set()
# op type -> add(y, other) in place: for a two-input op computing a + b
_residual_adds: dict = {}
# op type -> apply(y) in place: an elementwise activation of one input
_activations: dict = {}
# op types that are functions of their inputs and arguments alone (no state, no RNG)
_pure: set = set()

FLAGS = ("caffe2lite_remove_noops", "caffe2lite_fold_bn", "caffe2lite_fuse_conv_act",
         "caffe2lite_fold_constants")


def register_passthrough(op_type: str, when=None) -> None:
    """``op_type`` (when ``when(op)`` says so) outputs its first input unchanged."""
    _passthrough[op_type] = when or (lambda op: True)


def register_channel_affine(op_type: str, axis, coefficients) -> None:
    """``op_type`` is a per-channel affine map where ``axis(op)`` is not None."""
    _channel_affine[op_type] = (axis, coefficients)


def register_affine_absorber(op_type: str, spec) -> None:
    """``op_type`` can absorb a per-channel affine map of its output (see _absorbers)."""
    _absorbers[op_type] = spec


def register_epilogue_host(op_type: str, apply=None, fused=None,
                           writes_into: bool = False) -> None:
    """``op_type``'s kernel returns a fresh output 0 that a fused step may update in place,
    through ``apply(y, steps)`` (default: each step on the whole array, in order).
    ``fused`` = (kernel, run(ctx, inputs, steps, cache) -> outputs): when the op runs that
    very kernel (not one wrapped by a limit or a check), ``run`` does the op with the
    steps applied inside it (where the kernel makes its output piece by piece).
    ``cache`` is a dict the step keeps from run to run, for what the kernel derives from
    inputs that are parameters (transformed filters): the step's inputs are never
    written in place by another net, so an array it saw before holds what it held.
    ``writes_into``: ``run`` also takes ``out=`` (an array of output 0's shape and
    dtype) and computes into it, returning None when it cannot; the fused step then
    offers itself to runtime/fusion.py's joins (a Conv + Relu writing straight into its
    slice of a Concat's output)."""
    _epilogue_hosts[op_type] = apply or _apply_whole
    if fused is not None:
        _fused_kernels[op_type] = fused
        if writes_into:
            _fused_writes_into.add(op_type)


def _apply_whole(y, steps) -> None:
    for fn, operand in steps:
        if operand is None:
            fn(y)
        else:
            fn(y, operand)


def register_residual_add(op_type: str, add) -> None:
    """``op_type`` with two inputs is their elementwise sum; ``add(y, other)`` adds in place."""
    _residual_adds[op_type] = add


def register_activation(op_type: str, apply) -> None:
    """``op_type`` is an elementwise activation; ``apply(y)`` computes it in place."""
    _activations[op_type] = apply


def register_pure(*op_types: str) -> None:
    """Each of ``op_types`` computes its outputs from its inputs and arguments alone."""
    _pure.update(op_types)


def _ask(fn, *args):
    """A declaration's answer, or None when it cannot tell (bad arguments: the op will
    say so itself when it runs)."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001
        return None


def for_inference(net_def) -> bool:
    """Whether a net is created for inference by its own ops: one sets ``is_test``."""
    return any(arg.name == "is_test" and arg.i for op in net_def.op for arg in op.arg)


def enabled() -> bool:
    return any(flags.get(name) for name in FLAGS)


class Node:
    """One step being planned: an op (or several fused), the blobs it reads and writes."""

    __slots__ = ("ops", "inputs", "outputs", "labels", "fold", "residual", "activation",
                 "constant")

    def __init__(self, op):
        self.ops = [op]            # the ops this step stands for, inputs renamed
        self.inputs = list(op.inputs)
        self.outputs = list(op.outputs)
        self.labels: list[str] = []
        self.fold = None           # (BN op, weight input, bias input or None, BN params)
        self.residual = None       # (other blob, add)
        self.activation = None
        self.constant = False

    @property
    def head(self):
        return self.ops[0]

    @property
    def plain(self) -> bool:
        return len(self.ops) == 1 and not self.constant and self.fold is None

    @property
    def type(self) -> str:
        return self.head.op_def.type


class Plan:
    """The planner's view of a net: nodes, which blobs are intermediate, parameters."""

    def __init__(self, operators, net_def, outside_writes, data_inputs, predictor: bool):
        self.nodes = [Node(op) for op in operators]
        self.final = set(net_def.external_output)
        self.external_inputs = set(net_def.external_input)
        self.outputs_declared = predictor or bool(net_def.external_output)
        written = {name for op in operators for name in op.outputs}
        self.params = {name for op in operators for name in op.inputs
                       if name not in written} - set(outside_writes) - set(data_inputs)
        self.depends: set[str] = set()  # parameters and results the steps bake in
        self.rewrites: list[tuple[str, tuple]] = []

    # -- questions about blobs ------------------------------------------------------
    def may_drop(self, name: str) -> bool:
        """Whether the rewritten net may leave ``name`` unwritten."""
        return self.outputs_declared and name not in self.final and \
            name not in self.external_inputs

    def readers(self, name: str) -> list[int]:
        return [k for k, node in enumerate(self.nodes) if name in node.inputs]

    def writers(self, name: str) -> list[int]:
        return [k for k, node in enumerate(self.nodes) if name in node.outputs]

    def is_param(self, name: str) -> bool:
        return name in self.params

    def value_readers(self, k: int, name: str) -> list[int]:
        """The nodes that read the value node k writes to ``name``: those after k up to
        and including the next node that writes ``name`` again."""
        found = []
        for j in range(k + 1, len(self.nodes)):
            node = self.nodes[j]
            if name in node.inputs:
                found.append(j)
            if name in node.outputs:
                break
        return found

    def carried_over(self, name: str) -> bool:
        """Whether some node reads ``name`` before any node writes it: the value of the
        last write carries over to the next run, so every write must stay."""
        for node in self.nodes:
            if name in node.inputs:
                return True
            if name in node.outputs:
                return False
        return False

    def sole_reader(self, k: int, name: str):
        """The one node that reads the value node k writes to ``name``, or None."""
        readers = self.value_readers(k, name)
        return readers[0] if len(readers) == 1 else None

    def may_skip_write(self, k: int, j: int, name: str) -> bool:
        """Whether node k's write of ``name``, read only by node j, may vanish when j
        is fused into k: j writes ``name`` itself, or nothing can see the value."""
        return name in self.nodes[j].outputs or \
            (self.may_drop(name) and not self.carried_over(name))

    def can_hoist(self, k: int, j: int) -> bool:
        """Whether node j may run right after node k: nothing in between reads what j
        writes or writes what j reads or writes."""
        later = self.nodes[j]
        for node in self.nodes[k + 1:j]:
            if set(node.inputs) & set(later.outputs) or \
                    set(node.outputs) & (set(later.inputs) | set(later.outputs)):
                return False
        return True

    def on_cpu(self, *nodes) -> bool:
        return all(op.ctx.device.name == "CPU" for node in nodes for op in node.ops)

    # -- the rewrites ---------------------------------------------------------------
    def remove_passthroughs(self) -> None:
        """Drop no-ops until none is left that may go (removing an in-place one can make
        the copy before it removable)."""
        removed = []
        while self._remove_passthroughs_once(removed):
            pass
        self.rewrites += sorted(removed, key=lambda r: r[1])

    def _remove_passthroughs_once(self, removed) -> bool:
        before = len(removed)
        k = 0
        while k < len(self.nodes):
            node = self.nodes[k]
            when = _passthrough.get(node.type)
            if node.plain and when is not None and self.on_cpu(node) and _ask(when, node.head) \
                    and self._removable(k):
                source, alias = node.inputs[0], node.outputs[0]
                for later in self.nodes[k + 1:]:
                    if alias != source and alias in later.inputs:
                        later.inputs = [source if n == alias else n for n in later.inputs]
                        later.ops = [_renamed(op, alias, source) for op in later.ops]
                removed.append((f"{node.type} removed", (node.head.position,)))
                del self.nodes[k]
                continue
            k += 1
        return len(removed) > before

    def _removable(self, k: int) -> bool:
        node = self.nodes[k]
        if not node.inputs or not node.outputs:
            return False
        source, alias = node.inputs[0], node.outputs[0]
        for extra in node.outputs[1:]:  # Dropout's mask: unread, not an output of the net
            if extra in (source, alias) or self.readers(extra) or not self.may_drop(extra):
                return False
        if alias == source:
            return True
        return self.may_drop(alias) and self.writers(alias) == [k] and \
            all(r > k for r in self.readers(alias)) and \
            all(w < k for w in self.writers(source))

    def fold_affines(self) -> None:
        k = 0
        while k < len(self.nodes):
            node = self.nodes[k]
            spec = _absorbers.get(node.type)
            spec = _ask(spec, node.head) if spec is not None and node.plain else None
            j = self.sole_reader(k, node.outputs[0]) if spec is not None else None
            if j is not None and self._foldable(k, j, spec):
                bn = self.nodes[j]
                weight, bias, _ = spec
                if bias is not None and bias >= len(node.inputs):
                    bias = None  # no bias input: the folded step passes one
                params = bn.inputs[1:]
                self.depends.update(params + [node.inputs[weight]] +
                                    ([node.inputs[bias]] if bias is not None else []))
                node.fold = (bn.head, weight, bias, params)
                node.inputs += params
                node.ops.append(bn.head)
                node.outputs = list(bn.outputs)
                node.labels.append(f"{bn.type} (folded)")
                del self.nodes[j]
            k += 1

    def _foldable(self, k: int, j: int, spec) -> bool:
        node, bn = self.nodes[k], self.nodes[j]
        affine = _channel_affine.get(bn.type)
        weight, bias, out_axis = spec
        if affine is None or not bn.plain or not self.on_cpu(node, bn) or \
                bn.inputs[0] != node.outputs[0] or len(bn.outputs) != 1:
            return False
        if _ask(affine[0], bn.head) != out_axis or weight >= len(node.inputs):
            return False
        params = bn.inputs[1:] + [node.inputs[weight]] + \
            ([node.inputs[bias]] if bias is not None and bias < len(node.inputs) else [])
        return (self.may_skip_write(k, j, node.outputs[0])
                and all(self.is_param(p) for p in params) and self.can_hoist(k, j))

    def fuse_epilogues(self) -> None:
        for k, node in enumerate(self.nodes):
            if node.type not in _epilogue_hosts or node.constant or node.residual or \
                    node.activation or len(node.outputs) != 1 or not self.on_cpu(node):
                continue
            j = self._next_fusable(k)
            if j is not None:
                consumer = self.nodes[j]
                if consumer.type in _residual_adds:
                    y = node.outputs[0]
                    other = consumer.inputs[1] if consumer.inputs[0] == y else consumer.inputs[0]
                    node.residual = (other, _residual_adds[consumer.type])
                    node.inputs.append(other)
                else:
                    node.activation = _activations[consumer.type]
                node.ops.append(consumer.head)
                node.labels.append(consumer.type)
                node.outputs = list(consumer.outputs)
                del self.nodes[j]
                if node.residual is not None:  # then perhaps the activation after the add
                    j = self._next_fusable(k, activation_only=True)
                    if j is not None:
                        node.activation = _activations[self.nodes[j].type]
                        node.ops.append(self.nodes[j].head)
                        node.labels.append(self.nodes[j].type)
                        node.outputs = list(self.nodes[j].outputs)
                        del self.nodes[j]

    def _next_fusable(self, k: int, activation_only: bool = False):
        """The node that may fuse into node k's epilogue, or None."""
        node = self.nodes[k]
        y = node.outputs[0]
        j = self.sole_reader(k, y)
        if j is None:
            return None
        consumer = self.nodes[j]
        if not consumer.plain or not self.on_cpu(consumer) or len(consumer.outputs) != 1:
            return None
        if not self.may_skip_write(k, j, y):
            return None
        if consumer.type in _activations:
            ok = consumer.inputs == [y]
        elif consumer.type in _residual_adds and not activation_only:
            ok = len(consumer.inputs) == 2 and consumer.inputs.count(y) == 1
            if ok:  # the other addend must already be there when node k runs
                other = consumer.inputs[1] if consumer.inputs[0] == y else consumer.inputs[0]
                ok = other not in node.outputs and \
                    not any(other in n.outputs for n in self.nodes[k + 1:j])
        else:
            ok = False
        return j if ok and self.can_hoist(k, j) else None

    def fold_constants(self) -> None:
        for node in self.nodes:
            if node.plain and node.type in _pure and self.on_cpu(node) and \
                    all(self.is_param(n) for n in node.inputs) and \
                    all(len(self.writers(n)) == 1 and n not in node.inputs
                        for n in node.outputs):
                node.constant = True
                node.labels.append("constant")
                self.depends.update(node.inputs)
                self.depends.update(node.outputs)
                self.params.update(node.outputs)

    def steps(self) -> list:
        steps = []
        for node in self.nodes:
            if node.plain:
                steps.append(node.head)
                continue
            self.rewrites.append((" + ".join([node.type] + node.labels),
                                  tuple(op.position for op in node.ops)))
            steps.append(ConstantStep(node) if node.constant else FusedStep(node))
        return steps


def _renamed(op, old: str, new: str):
    """``op`` reading blob ``new`` wherever it read ``old`` (the same OperatorDef: errors
    still name the input as the NetDef does)."""
    clone = object.__new__(Operator)
    for slot in Operator.__slots__:
        setattr(clone, slot, getattr(op, slot))
    clone.inputs = tuple(new if n == old else n for n in op.inputs)
    return clone


def plan(operators, net_def, outside_writes=(), data_inputs=(), predictor: bool = False):
    """(steps, rewrites, blobs the steps depend on) for a net created for inference;
    ``outside_writes``: blobs other nets of the workspace write (never parameters);
    ``data_inputs``: blobs fed for every run (never parameters).  The steps are the
    Operators themselves where nothing changed."""
    p = Plan(operators, net_def, outside_writes, data_inputs, predictor)
    if flags.get("caffe2lite_remove_noops"):
        p.remove_passthroughs()
    if flags.get("caffe2lite_fold_bn"):
        p.fold_affines()
    if flags.get("caffe2lite_fuse_conv_act"):
        p.fuse_epilogues()
    if flags.get("caffe2lite_fold_constants") and predictor:
        p.fold_constants()
    steps = p.steps()
    return steps, p.rewrites, p.depends


class RewrittenStep(FusedSteps):
    """A step standing for several ops (or one op computed once): the executor runs it
    through ``run(blobs)``.  ``ops`` are the original ops (inputs renamed where a no-op
    was removed), which ``run_as_written`` runs when the rewrite cannot apply."""

    def __init__(self, node):
        self.ops = tuple(node.ops)
        self.inputs = tuple(node.inputs)
        self.outputs = tuple(node.outputs)
        self.positions = tuple(op.position for op in self.ops)
        self.where = " + ".join(op.where for op in self.ops)


def _arrays(values) -> bool:
    return all(type(v) is np.ndarray for v in values)


class FusedStep(RewrittenStep):
    """An op with a folded per-channel affine map and/or an add and activation in place."""

    def __init__(self, node):
        super().__init__(node)
        head = node.head
        self._head = head
        self._fold = node.fold
        self._residual = node.residual
        self._activation = node.activation
        self._apply = _epilogue_hosts.get(node.type, _apply_whole)
        self._fused = _fused_kernels.get(node.type)
        # runtime/fusion.py's joins may hand this step the array to write into
        self.can_write_into = node.type in _fused_writes_into and len(self.outputs) == 1
        self._kernel_cache = {}
        self._key = None       # the parameter arrays the folded weight and bias came from
        self._folded = None

    def __repr__(self):
        return f"<FusedStep {self.where}>"

    def _compute(self, blobs):
        y = self._output(blobs)
        return None if y is None else (y,)  # outputs[0]: what the last fused op writes

    def output_spec(self, blobs):
        """The TensorSpec of the step's output (its head op's shape function), or None."""
        head = self._head
        infer = getattr(head.schema, "infer_shapes", None)
        if infer is None:
            return None
        (spec,) = infer(head.ctx, *[blobs[n] for n in head.inputs])
        return spec

    def output_into(self, blobs, out) -> bool:
        """Compute the output into ``out`` (for a join); False: it was not written, run
        the ops as written."""
        return self.can_write_into and self._output(blobs, out) is out

    def _output(self, blobs, out=None):
        head = self._head
        values = [blobs[n] for n in head.inputs]
        if self._fold is not None:
            weight, bias = self._folded_parameters(blobs, values)
            values[self._fold[1]] = weight
            if self._fold[2] is not None:
                values[self._fold[2]] = bias
            else:
                values.append(bias)
        steps = []
        if self._residual is not None:
            other = blobs[self._residual[0]]
            if type(other) is not np.ndarray:
                return None
            steps.append((self._residual[1], other))
        if self._activation is not None:
            steps.append((self._activation, None))
        if self._fused is not None and head.kernel is self._fused[0] and \
                (self._residual is None or self._output_like(head, values, other)):
            if out is not None:
                results = self._fused[1](head.ctx, values, steps, self._kernel_cache, out=out)
                return None if results is None else results[0]
            results = self._fused[1](head.ctx, values, steps, self._kernel_cache)
            return results[0] if len(results) == 1 and _arrays(results) else None
        if out is not None:
            return None
        results = head.kernel(head.ctx, *values)
        if type(results) is not tuple or len(results) != 1 or not _arrays(results):
            return None
        y = results[0]
        if self._residual is not None and (other.shape != y.shape or other.dtype != y.dtype):
            return None
        if steps:
            self._apply(y, steps)
        return y

    @staticmethod
    def _output_like(head, values, other) -> bool:
        """Whether ``other`` has the shape and dtype the op's output will have (asked of
        its shape function), so it can be added inside the kernel."""
        infer = getattr(head.schema, "infer_shapes", None)
        if infer is None:
            return False
        try:
            (spec,) = infer(head.ctx, *values)
        except Exception:  # noqa: BLE001 - the op as written says what is wrong
            return False
        return spec is not None and tuple(spec.shape) == other.shape and \
            spec.dtype == other.dtype

    def _folded_parameters(self, blobs, values):
        bn, weight_at, bias_at, param_names = self._fold
        params = [blobs[n] for n in param_names]
        weight = values[weight_at]
        bias = values[bias_at] if bias_at is not None else None
        key = [weight, bias] + params
        if self._key is None or any(a is not b for a, b in zip(key, self._key)):
            self._folded = None
            _, coefficients = _channel_affine[bn.op_def.type]
            a, c = coefficients(bn, *params)
            if not _arrays([weight, a, c]) or a.shape != (weight.shape[0],) or \
                    c.shape != a.shape or a.dtype != weight.dtype or c.dtype != weight.dtype:
                raise ValueError("cannot fold")  # -> the ops as written
            if bias is not None and (type(bias) is not np.ndarray or bias.shape != a.shape
                                     or bias.dtype != weight.dtype):
                raise ValueError("cannot fold")
            folded_w = weight * a.reshape((-1,) + (1,) * (weight.ndim - 1))
            folded_b = c if bias is None else bias * a + c
            self._key, self._folded = key, (folded_w, folded_b)
        return self._folded


class ConstantStep(RewrittenStep):
    """An op whose inputs are all parameters: computed on the first run (and again
    when one of its input blobs is replaced), its outputs stored on every run."""

    def __init__(self, node):
        super().__init__(node)
        self._op = node.head
        self._key = None
        self._values = None

    def __repr__(self):
        return f"<ConstantStep {self.where}>"

    def run(self, blobs) -> None:
        op = self._op
        inputs = [blobs.get(n) for n in op.inputs]
        if self._key is None or any(a is not b for a, b in zip(inputs, self._key)):
            self._values = None
            op.run(blobs)  # writes the outputs, or raises naming the op
            self._key, self._values = inputs, [blobs[n] for n in op.outputs]
            return
        for name, value in zip(op.outputs, self._values):
            blobs[name] = value


