"""The backward pass: Caffe2's ``IR`` and ``GetBackwardPass`` over a net's operators.

``net.AddGradientOperators(ys)`` walks a net's operators backwards from the
loss blobs ``ys`` and asks each operator's gradient maker for the operators
that compute its inputs' gradients, as Caffe2's Python ``IR`` did:

* blobs are tracked in SSA form (a version per write), so in-place operators
  and blobs written twice get the gradient of the right version, and a
  gradient operator that needs a value that was overwritten later is an
  error instead of a silently wrong result;
* a maker is asked only when at least one output of its operator has a
  gradient, so ops off the path from the losses are never consulted;
* a blob version read by several operators gets its partial gradients
  accumulated: dense ones are renamed ``_<name>_autosplit_<k>`` and summed
  by one ``Sum``; sparse ones (``GradientSlice``) are concatenated by
  two ``Concat`` ops along axis 0; a mix of the two is an error.

Asking one operator's maker (schema first, then Python-registered makers,
and what each kind of maker's ops get copied from the forward op) is the
engine's ``caffe2lite.runtime.gradient_makers.get_gradient_for_op``.

Auto-generated accumulation ops (``Sum``, or the two ``Concat`` of sparse
gradients) follow Caffe2's newest ``_SetSumOpsDeviceOption``: they take the
device option of the gradient ops they sum, plus the ``extra_info`` tag
``is_auto_gen_sum_ops:1``; when that device option carries
``only_keep_is_auto_gen_sum_ops_tag:1`` they get the tag alone.  The seed
``ConstantFill`` of a loss without a given gradient takes the current
DeviceScope, as Caffe2's ``CreateOperator`` gave it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import scope
from caffe2lite.runtime.devices import device_option_equal
from caffe2lite.runtime.errors import GradientError
from caffe2lite.runtime.gradient_makers import (GradientSlice, as_gradient, get_gradient_for_op,
                                                grad_name)
from caffe2lite.runtime.op_context import describe_op
from caffe2lite.runtime.opdef import make_operator

AUTOGEN_GRAD_SUFFIX = "_autogen_grad"
IS_AUTO_GEN_SUM_OPS_TAG = "is_auto_gen_sum_ops"
ONLY_KEEP_IS_AUTO_GEN_SUM_OPS_TAG = "only_keep_is_auto_gen_sum_ops_tag"


class OrphanStopGradientError(GradientError, ValueError):
    """A StopGradient whose output nothing reads; Caffe2 raised ValueError for it."""


def _tag_sum_ops(sum_ops, generator_options, set_options):
    """Caffe2's newest ``IR._SetSumOpsDeviceOption`` for auto-generated accumulation ops.

    Each op gets the device option of the gradient ops it sums (the first set
    one; Caffe2 took the first generator's, all being equal once verified)
    with ``is_auto_gen_sum_ops:1`` appended; when a generator's option asks for
    ``only_keep_is_auto_gen_sum_ops_tag:1``, the op gets the tag alone.
    """
    tag = f"{IS_AUTO_GEN_SUM_OPS_TAG}:1"
    only_keep = any(f"{ONLY_KEEP_IS_AUTO_GEN_SUM_OPS_TAG}:1" in opt.extra_info
                    for opt in generator_options)
    source = set_options[0] if set_options else generator_options[0]
    for sum_op in sum_ops:
        if not only_keep:
            sum_op.device_option.CopyFrom(source)
        sum_op.device_option.extra_info.append(tag)


# -- the backward pass ----------------------------------------------------------
@dataclass
class _OpSSA:
    op: object
    in_versions: dict
    out_versions: dict
    position: int   # in the net, for error messages
    index: int      # in self.ssa


@dataclass
class _DenseGen:
    """A dense partial gradient: written by grad_op.output[idx], or passed through."""
    grad_op: object
    idx: int
    gradient: str
    device_option: object


@dataclass
class _SparseGen:
    """A sparse partial gradient: indices / values each written by an op or passed through."""
    op_i: object
    idx_i: int
    op_v: object
    idx_v: int
    gradient: GradientSlice
    device_option: object


def _index_in_grads(grads, name):
    """Index of the entry of grads (None / name / GradientSlice) that mentions name."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        if isinstance(g, GradientSlice):
            if name in (g.indices, g.values):
                return i
        elif g == name:
            return i
    return None


class BackwardPass:
    """The SSA bookkeeping of one backward pass (Caffe2's ``IR``)."""

    def __init__(self, operators, net_name=None, first_position=0):
        self.net_name = net_name
        self.ssa: list[_OpSSA] = []
        self.input_usages = defaultdict(lambda: defaultdict(list))
        self.frontier = defaultdict(int)
        self.gradient_frontier = {}
        self.gradient_generators = defaultdict(lambda: defaultdict(list))
        self.produced = set()
        for i, op in enumerate(operators):
            self._play(op, first_position + i)
        for entry in self.ssa:
            op = entry.op
            if op.type == "StopGradient" and op.output[0] not in self.input_usages:
                raise OrphanStopGradientError(
                    f"{self._where(entry)}: StopGradient's output '{op.output[0]}' is orphan "
                    f"(no operator reads it). You typically want to specify the same input "
                    f"and output for StopGradient.")

    def _where(self, entry):
        return describe_op(entry.op, entry.position, self.net_name)

    def _play(self, op, position):
        in_versions = {}
        for name in op.input:
            in_versions[name] = self.frontier[name]
            self.input_usages[name][self.frontier[name]].append(len(self.ssa))
        out_versions = {}
        for name in op.output:
            if name in self.frontier:
                self.frontier[name] += 1
            out_versions[name] = self.frontier[name]
            self.produced.add(name)
        self.ssa.append(_OpSSA(op, in_versions, out_versions, position, len(self.ssa)))

    # -- checks ----------------------------------------------------------------
    def _check_grad_op_input(self, name, g_output, entry, local_blobs):
        """A gradient op may read: output gradients, the op's blobs at their version, or
        blobs written by earlier gradient ops of the same maker."""
        op = entry.op
        out_index = _index_in_grads(g_output, name)
        if out_index is not None:
            out_name = op.output[out_index]
            if entry.out_versions[out_name] != self.gradient_frontier.get(out_name):
                raise GradientError(
                    f"{self._where(entry)}: gradient name '{name}' is expected to correspond "
                    f"to version {entry.out_versions[out_name]} of '{out_name}', but the "
                    f"gradient at hand is for version {self.gradient_frontier.get(out_name)} "
                    f"(is the same blob written by two operators?)")
        elif name in entry.out_versions or name in entry.in_versions:
            role, versions = (("output", entry.out_versions) if name in entry.out_versions
                              else ("input", entry.in_versions))
            if self.frontier[name] != versions[name]:
                raise GradientError(
                    f"{self._where(entry)}: its gradient operator needs {role} '{name}' at "
                    f"version {versions[name]}, but a later operator overwrites it "
                    f"(version {self.frontier[name]}); write that later result to another blob")
        elif name not in local_blobs:
            raise GradientError(
                f"{self._where(entry)}: blob '{name}' read by its gradient operator is neither "
                f"an input, an output or an output gradient of the operator, nor written by "
                f"one of its other gradient operators")

    def _record_generators(self, entry, grad_ops, g_output, g_input):
        """Caffe2's BuildGradientGenerators: remember who writes each input gradient."""
        op = entry.op
        local_blobs: list[str] = []
        sparse_parts = defaultdict(list)
        for grad_op in grad_ops:
            for name in grad_op.input:
                self._check_grad_op_input(name, g_output, entry, local_blobs)
            local_blobs.extend(grad_op.output)
            for i, out in enumerate(grad_op.output):
                input_index = _index_in_grads(g_input, out)
                if input_index is None:
                    continue
                input_name = op.input[input_index]
                key = (input_name, entry.in_versions[input_name])
                g = g_input[input_index]
                if isinstance(g, GradientSlice):
                    if g.indices == out:
                        sparse_parts[key].append(_SparseGen(grad_op, i, None, 0, g,
                                                            grad_op.device_option))
                    else:
                        sparse_parts[key].append(_SparseGen(None, 0, grad_op, i, g,
                                                            grad_op.device_option))
                else:
                    self.gradient_generators[key[0]][key[1]].append(
                        _DenseGen(grad_op, i, g, grad_op.device_option))
        for (name, version), parts in sparse_parts.items():
            merged = parts[0]
            for part in parts[1:]:
                merged = _SparseGen(merged.op_i or part.op_i, merged.idx_i + part.idx_i,
                                    merged.op_v or part.op_v, merged.idx_v + part.idx_v,
                                    merged.gradient, merged.device_option)
            self.gradient_generators[name][version].append(merged)
        # Gradients passed straight through (no op writes them, e.g. Sum's maker).
        for i, g in enumerate(g_input):
            if g is None:
                continue
            name = op.input[i]
            version = entry.in_versions[name]
            if isinstance(g, GradientSlice):
                if g.indices not in local_blobs and g.values not in local_blobs:
                    self.gradient_generators[name][version].append(
                        _SparseGen(None, 0, None, 0, g, op.device_option))
            elif g not in local_blobs:
                self.gradient_generators[name][version].append(
                    _DenseGen(None, 0, g, op.device_option))
        for i, g in enumerate(g_input):
            if g is not None:
                self.gradient_frontier[op.input[i]] = entry.in_versions[op.input[i]]

    # -- accumulation ------------------------------------------------------------
    @staticmethod
    def _rename_output(grad_op, idx, count):
        new_name = f"_{grad_op.output[idx]}_autosplit_{count}"
        if grad_op.type == "If":  # Caffe2's _DisambiguateGradOpOutput
            disambiguate_grad_if_op_output(grad_op, idx, new_name)
        else:
            grad_op.output[idx] = new_name
        return grad_op.output[idx], count + 1

    @staticmethod
    def _sum_output_name(generators, input_name):
        for g in generators:
            if isinstance(g, _DenseGen):
                if g.grad_op is not None:
                    return g.grad_op.output[g.idx]
            else:
                if g.op_i is not None:
                    return g.op_i.output[g.idx_i].removesuffix("_indices")
                if g.op_v is not None:
                    return g.op_v.output[g.idx_v].removesuffix("_values")
        return grad_name(input_name)

    @staticmethod
    def _check_conflict(base, name, input_name):
        if str(base) == str(name):
            raise GradientError(
                f"gradient accumulation for '{input_name}': a gradient passed through "
                f"unchanged is named '{name}', the name the accumulated gradient needs")

    def _dense_sum(self, generators, base, input_name):
        inputs, count, first = [], 0, True
        for g in generators:
            if g.grad_op is not None:
                if first:
                    first = False
                    out = g.grad_op.output[g.idx]
                else:
                    out, count = self._rename_output(g.grad_op, g.idx, count)
                inputs.append(out)
            else:
                self._check_conflict(base, g.gradient, input_name)
                inputs.append(str(g.gradient))
        if base in inputs:  # Sum works in place only on its first input.
            k = inputs.index(base)
            inputs[0], inputs[k] = inputs[k], inputs[0]
        return [make_operator("Sum", inputs, [base])], base

    def _sparse_sum(self, generators, base, input_name):
        indices, values, count_i, count_v = [], [], 0, 0
        for g in generators:
            if g.op_i is not None:
                out, count_i = self._rename_output(g.op_i, g.idx_i, count_i)
                indices.append(out)
            else:
                self._check_conflict(base, g.gradient.indices, input_name)
                indices.append(g.gradient.indices)
            if g.op_v is not None:
                out, count_v = self._rename_output(g.op_v, g.idx_v, count_v)
                values.append(out)
            else:
                self._check_conflict(base, g.gradient.values, input_name)
                values.append(g.gradient.values)
        ops = [make_operator("Concat", indices, [f"{base}_indices_concat",
                                                  f"{base}_indices_concat_split"], axis=0),
               make_operator("Concat", values, [f"{base}_values_concat",
                                                 f"{base}_values_concat_split"], axis=0)]
        return ops, GradientSlice(f"{base}_indices_concat", f"{base}_values_concat")

    def _accumulate(self, entry):
        """Caffe2's DoGradientAccumulation for the inputs of one forward op."""
        ops, grad_map = [], {}
        for name in dict.fromkeys(entry.op.input):
            version = entry.in_versions[name]
            usage = self.input_usages[name][version]
            if len(usage) <= 1 or usage[0] != entry.index:
                continue  # read once, or earlier readers are still to come
            generators = self.gradient_generators[name][version]
            kinds = {type(g) for g in generators}
            if len(kinds) > 1:
                raise GradientError(
                    f"gradients for '{name}' (read by {len(usage)} operators) failed to "
                    f"verify: Automatic aggregation of a mix of sparse and dense gradients "
                    f"is not supported yet")
            if len(generators) < 2:
                continue
            options = [g.device_option for g in generators if g.device_option.ByteSize()]
            if any(not device_option_equal(o, options[0]) for o in options[1:]):
                raise GradientError(f"gradients for '{name}' failed to verify: not all "
                                    f"gradient operators have the same device option")
            base = self._sum_output_name(generators, name)
            if kinds == {_DenseGen}:
                sum_ops, g = self._dense_sum(generators, base, name)
            else:
                sum_ops, g = self._sparse_sum(generators, base, name)
            _tag_sum_ops(sum_ops, [g.device_option for g in generators], options)
            ops.extend(sum_ops)
            grad_map[name] = g
        return ops, grad_map

    # -- the walk ----------------------------------------------------------------
    def _seed(self, ys):
        grads, ops = {}, []
        for y, g in ys.items():
            y = str(y)
            version = self.frontier[y]
            if g is None:
                fill = make_operator("ConstantFill", [y], [y + AUTOGEN_GRAD_SUFFIX], value=1.0,
                                     device_option=scope.CurrentDeviceScope())
                ops.append(fill)
                grads[y] = fill.output[0]
                self.gradient_generators[y][version].append(
                    _DenseGen(fill, 0, fill.output[0], fill.device_option))
            else:
                g = as_gradient(g)
                grads[y] = g
                # Caffe2 dropped a given seed when y also fed another op; keep it so
                # that it is summed with the other partial gradients.
                gen = (_SparseGen(None, 0, None, 0, g, caffe2_pb2.DeviceOption())
                       if isinstance(g, GradientSlice) else
                       _DenseGen(None, 0, g, caffe2_pb2.DeviceOption()))
                self.gradient_generators[y][version].append(gen)
        return grads, ops

    def run(self, ys):
        """Caffe2's GetBackwardPass: ``(grad_ops, {input: grad})`` for ys (list or dict)."""
        if isinstance(ys, (list, tuple)):
            ys = {y: None for y in ys}
        elif not isinstance(ys, dict):
            raise TypeError("ys should either be a list or a dict.")
        ys = {str(y): g for y, g in ys.items()}
        for y in ys:
            if y not in self.produced:
                where = f'net "{self.net_name}"' if self.net_name else "the operators given"
                raise GradientError(
                    f"cannot compute the gradient of '{y}': no operator in {where} produces "
                    f"it (a loss must be the output of an operator of the net)")
        for y in ys:
            self.gradient_frontier[y] = self.frontier[y]
            self.input_usages[y][self.frontier[y]].append(len(self.ssa))
        all_grads, all_ops = self._seed(ys)
        for entry in reversed(self.ssa):
            new_grads, grad_ops = self._grads_for_op(entry, all_grads)
            all_grads.update(new_grads)
            all_ops += grad_ops
            sum_ops, grad_map = self._accumulate(entry)
            all_grads.update(grad_map)
            all_ops += sum_ops
        return all_ops, {name: g for name, g in all_grads.items() if g is not None}

    def _grads_for_op(self, entry, all_grads):
        op = entry.op
        g_output = [all_grads.get(name) for name in op.output]
        if all(g is None for g in g_output) and op.type != "ZeroGradient":
            return {}, []
        grad_ops, g_input = get_gradient_for_op(op, g_output, entry.position, self.net_name)
        self._record_generators(entry, grad_ops, g_output, g_input)
        new_grads = {}
        for name, g in zip(op.input, g_input):
            # Keep an existing gradient rather than overwrite it with None, unless the op
            # also writes the blob (then the older version really has no gradient).
            if g is not None or name not in all_grads or name in op.output:
                new_grads[name] = g
        return new_grads, grad_ops


def disambiguate_grad_if_op_output(grad_op, idx, new_grad_output):
    """Rename output ``idx`` of a gradient If op, and that output of its branches' ops
    (which write it), to ``new_grad_output``."""
    old = grad_op.output[idx]
    for arg in grad_op.arg:
        if arg.name in ("then_net", "else_net"):
            for op in arg.n.op:
                op.output[:] = [new_grad_output if o == old else o for o in op.output]
    grad_op.output[idx] = new_grad_output


def get_backward_pass(operators, ys, net_name=None, first_position=0):
    """Caffe2's GradientRegistry.GetBackwardPass: ``(grad_ops, {input: grad})`` with blob
    names as strings (and GradientSlice of strings); ``core`` makes BlobReferences."""
    return BackwardPass(list(operators), net_name, first_position).run(ys)
