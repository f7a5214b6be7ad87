"""Caffe2's ``core`` module: building OperatorDefs and nets from Python.

``CreateOperator`` only builds a proto (the schema is checked when the op is
created in a workspace, as in Caffe2).  ``Net`` wraps a NetDef and turns
``net.OpType(inputs, outputs, **args)`` into an appended operator.
"""

from __future__ import annotations

import difflib
import os
import pickle
import sys
import traceback
from itertools import chain

import numpy as np

from caffe2lite import workspace  # noqa: F401 (Caffe2's core.workspace, which scripts use)
from caffe2lite import control_ops_grad, gradients
from caffe2lite import pybind_state as C  # noqa: N812 (Caffe2's core.C)
from caffe2lite import scope
from caffe2lite.operators import python_op
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import immediate, registry, ssa
from caffe2lite.runtime.devices import device_option_equal  # noqa: F401 (Caffe2's core has it)
from caffe2lite.runtime.gradient_makers import PYTHON_MAKERS, GradientSlice, get_gradient_for_op
from caffe2lite.runtime.op_context import operator_tracebacks
from caffe2lite.runtime.opdef import make_operator
from caffe2lite.runtime.plan_builder import (ExecutionStep, Plan,  # noqa: F401 (Caffe2's core)
                                             add_nets_in_order, execution_step,
                                             scoped_execution_step, to_execution_step)
from caffe2lite.scope import DeviceScope, NameScope  # noqa: F401  (Caffe2's core re-exports)


class DataType:
    """TensorProto.DataType values by name (core.DataType.FLOAT == 1, ...)."""


for _name, _value in caffe2_pb2.TensorProto.DataType.items():
    setattr(DataType, _name, _value)

def IsOperator(op_type) -> bool:  # noqa: N802
    """An op type with a schema and a kernel, or an engine's registry key
    ("Ftrl_ENGINE_SIMD"), as Caffe2's registered operators listed both."""
    if "_ENGINE_" in op_type:
        return registry_key_exists(op_type)
    return registry.get_schema(op_type) is not None and any(
        t == op_type for (t, _d, _e) in registry.kernels())


def IsOperatorWithEngine(op_type, engine) -> bool:  # noqa: N802
    return registry_key_exists(registry.registry_key(op_type, engine))


def registry_key_exists(key: str) -> bool:
    return key in registry.registered_operators()


def RefreshRegisteredOperators():  # noqa: N802
    """Kept for Caffe2 scripts; the registry is always current here."""
    registry.load_operator_packages()


def DeviceOption(device_type, device_id=0, random_seed=None, node_name=None,
                 numa_node_id=None, extra_info=None):  # noqa: N802
    """A DeviceOption proto (numa_node_id only for CPU, as in Caffe2)."""
    option = caffe2_pb2.DeviceOption(device_type=device_type, device_id=device_id)
    if random_seed is not None:
        option.random_seed = random_seed
    if node_name is not None:
        option.node_name = node_name
    if numa_node_id is not None:
        assert device_type == caffe2_pb2.CPU, "numa_node_id is only valid for CPU"
        option.numa_node_id = numa_node_id
    if extra_info is not None:
        option.extra_info.extend(extra_info)
    return option


def IsGPUDeviceType(device_type) -> bool:  # noqa: N802
    """CUDA or HIP (Caffe2's GPU device types)."""
    return device_type in (caffe2_pb2.CUDA, caffe2_pb2.HIP)


def InferBlobDevices(net):  # noqa: N802
    """{blob: DeviceOption} from the device option of the op that writes each blob."""
    mapping = {}
    for op in net.Proto().op:
        for blob in op.output:
            mapping[blob] = op.device_option
    return mapping


def ScopedName(name) -> str:  # noqa: N802
    if isinstance(name, bytes):
        name = name.decode("ascii")
    return scope.CurrentNameScope() + name


class BlobReference:
    """A blob name, optionally tied to the net that produces it."""

    def __init__(self, name, net=None):
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        self._name = name if isinstance(name, str) else str(name)
        self._from_net = net
        self.meta = {}

    def __hash__(self):
        return hash(self._name)

    def __eq__(self, other):
        if isinstance(other, str):
            return self._name == other
        if isinstance(other, bytes):
            return self._name == other.decode("utf-8")
        if isinstance(other, BlobReference):
            return self._name == other._name
        return False

    def __ne__(self, other):
        return not self == other

    def __str__(self):
        return self._name

    def __repr__(self):
        return f'BlobReference("{self._name}")'

    def __add__(self, other):
        if not isinstance(other, str):
            raise RuntimeError("Cannot add BlobReference to a non-string.")
        return BlobReference(self._name + other, self._from_net)

    def __radd__(self, other):
        if not isinstance(other, str):
            raise RuntimeError("Cannot add a non-string to BlobReference.")
        return BlobReference(other + self._name, self._from_net)

    def Net(self):  # noqa: N802
        return self._from_net

    def GetNameScope(self):  # noqa: N802
        return self._name[:self._name.rfind("/") + 1]

    def GetUnscopedName(self):  # noqa: N802
        return self._name[self._name.rfind("/") + 1:]

    def __getattr__(self, op_type):
        if op_type.startswith("__"):
            raise AttributeError(op_type)
        if self._from_net is None:
            raise RuntimeError("You cannot use a blob reference that does not have a net "
                               "source to create operators. Create the operator from an "
                               "explicit net object.")
        if not IsOperator(op_type):
            raise RuntimeError(f"Method {op_type} is not a registered operator. Did you mean: "
                               f"[{', '.join(registry.close_names(op_type))}]")
        return lambda *args, **kwargs: self._create_op(op_type, *args, **kwargs)

    def _create_op(self, op_type, inputs=None, *args, **kwargs):
        inputs = [self] + (_rectify(inputs) if inputs is not None else [])
        return self._from_net.__getattr__(op_type)(inputs, *args, **kwargs)


def ScopedBlobReference(name, *args, **kwargs):  # noqa: N802
    return BlobReference(ScopedName(name), *args, **kwargs)


def _rectify(blobs):
    """Caffe2's _RectifyInputOutput: names -> [BlobReference], strings get the name scope."""
    if isinstance(blobs, (str, bytes)):
        return [ScopedBlobReference(blobs)]
    if isinstance(blobs, BlobReference):
        return [blobs]
    if isinstance(blobs, (list, tuple)):
        out = []
        for i, blob in enumerate(blobs):
            if isinstance(blob, (str, bytes)):
                out.append(ScopedBlobReference(blob))
            elif isinstance(blob, BlobReference):
                out.append(blob)
            else:
                raise TypeError(f"I/O blob #{i} of unsupported type: {blob} of type "
                                f"{type(blob)}")
        return out
    raise TypeError(f"Unknown input/output type: {blobs} of type {type(blobs)}")


def CreateOperator(operator_type, inputs, outputs, name="", control_input=None,
                   device_option=None, arg=None, engine=None, **kwargs):  # noqa: N802
    """Build an OperatorDef (not checked here: the schema is verified when it is created).

    Blob names given as strings get the current name scope; with no
    ``device_option`` the current DeviceScope's applies; in immediate mode the
    op also runs at once (see caffe2lite.runtime.immediate)."""
    if device_option is None:
        device_option = scope.CurrentDeviceScope()
    op = make_operator(operator_type, _rectify(inputs), _rectify(outputs), name,
                       _rectify(control_input) if control_input else None, device_option,
                       arg, engine, **kwargs)
    if os.environ.get("CAFFE2_DEBUG"):  # Caffe2's switch: where each op was made
        op.debug_info = "".join(traceback.format_stack()[:-1])
    if immediate.IsImmediate():
        immediate.RunOperatorImmediate(op)
    return op


def _RegisterPythonImpl(f, grad_f=None, python_func_type=None,  # noqa: N802
                        pass_workspace=False):
    """Register f (and grad_f) for a Python op; returns the op's token.

    ``python_func_type(f)`` gives an object with ``forward`` / ``backward``;
    a tuple ``(func, args, kwargs)`` is called now to make the function.  With
    ``pass_workspace`` the function gets ``workspace.C.Workspace`` handles."""
    if python_func_type:
        func = python_func_type(f)
        f, grad_f = func.forward, func.backward
    else:
        if isinstance(f, tuple):
            f = f[0](*f[1], **f[2])
        if isinstance(grad_f, tuple):
            grad_f = grad_f[0](*grad_f[1], **grad_f[2])
    if pass_workspace:
        f, grad_f = _with_workspace_handle(f), _with_workspace_handle(grad_f)
    token = python_op.register_python_op(f, pass_workspace, "")
    if grad_f:
        python_op.register_python_gradient_op(token, grad_f)
    return token


def _with_workspace_handle(function):
    """function(inputs, outputs, ws) called with Caffe2's C.Workspace for the engine's ws."""
    if function is None:
        return None
    return lambda inputs, outputs, ws: function(inputs, outputs, C.Workspace(ws))


def CreatePythonOperator(f, inputs, outputs, grad_f=None, pass_workspace=False,  # noqa: N802
                         python_func_type=None, grad_output_indices=None,
                         grad_input_indices=None, *args, **kwargs):
    """A ``Python`` op running ``f(inputs, outputs)`` (see operators/python_op.py);
    ``pass_workspace`` adds the workspace as a third argument."""
    kwargs["token"] = _RegisterPythonImpl(f, grad_f, python_func_type,
                                          pass_workspace=pass_workspace)
    kwargs["pass_workspace"] = pass_workspace
    if grad_output_indices is not None:
        kwargs["grad_output_indices"] = grad_output_indices
    if grad_input_indices is not None:
        kwargs["grad_input_indices"] = grad_input_indices
    return CreateOperator("Python", inputs, outputs, *args, **kwargs)


class GradientRegistry:
    """Caffe2's Python GradientRegistry; the engine lives in caffe2lite.gradients.

    ``RegisterGradient(op_type)`` registers a Python maker ``(op, g_output) ->
    (grad_ops, g_input)``.  As in Caffe2 it is consulted only when the op's
    schema declares no maker of its own (nor NO_GRADIENT), and its ops are
    returned as it built them: no copied device option, engine or arguments,
    no ``is_gradient_op`` (those come only with schema makers, Caffe2's C++ ones).
    """

    gradient_registry_: dict = PYTHON_MAKERS  # the engine's Python maker registry

    @classmethod
    def RegisterGradient(cls, op_type):  # noqa: N802
        def wrapper(func):
            cls.gradient_registry_[op_type] = func
            return func

        return wrapper

    @classmethod
    def GetGradientForOp(cls, op, g_output):  # noqa: N802
        return get_gradient_for_op(op, g_output)

    @classmethod
    def GetBackwardPass(cls, operators, ys, ys_generate_gradient=False):  # noqa: N802
        grad_ops, input_to_grad = gradients.get_backward_pass(operators, ys)
        return grad_ops, _blob_references(input_to_grad)


# Control ops' gradients are Python makers, as Caffe2's core registered them.
GradientRegistry.RegisterGradient("Do")(control_ops_grad.gen_do_gradient)
GradientRegistry.RegisterGradient("If")(control_ops_grad.gen_if_gradient)
GradientRegistry.RegisterGradient("While")(control_ops_grad.gen_while_gradient)


class IR(gradients.BackwardPass):
    """Caffe2's ``IR``: the SSA form of a list of operators, and their backward pass."""

    def __init__(self, operators):
        super().__init__(list(operators))

    def GetBackwardPass(self, ys):  # noqa: N802
        """(gradient ops, {BlobReference(input): BlobReference(grad) or GradientSlice})."""
        grad_ops, input_to_grad = self.run(ys)
        return grad_ops, _blob_references(input_to_grad)


def _blob_references(input_to_grad):
    """{BlobReference(input): BlobReference(grad) or GradientSlice of them}: the backward
    pass's names as Caffe2's GetBackwardPass returned them."""
    return {BlobReference(name): (GradientSlice(BlobReference(g.indices), BlobReference(g.values))
                                  if isinstance(g, GradientSlice) else BlobReference(g))
            for name, g in input_to_grad.items()}


def _caller_site() -> str:
    """'file:line' of the first frame outside this module (the user's net-building code)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "<unknown>"


def get_ssa(net, blob_versions=None):
    """Caffe2's get_ssa: ([(versioned inputs, versioned outputs)] per op, blob versions).

    A version is (name, n): external inputs (or, in a net that lists none, every
    blob read before it is written) are at version 0, each write adds one.
    ``blob_versions`` (updated in place) carries versions on from earlier nets.
    """
    if blob_versions is None:
        blob_versions = {}
    if isinstance(net, list):
        return [get_ssa(n, blob_versions) for n in net], blob_versions
    proto = net.Proto() if isinstance(net, Net) else net
    assert isinstance(proto, caffe2_pb2.NetDef), f"get_ssa takes a Net or NetDef, got {proto!r}"
    for name in proto.external_input:
        blob_versions.setdefault(str(name), 0)
    ssa = []
    for op in proto.op:
        if not proto.external_input:
            for name in op.input:
                blob_versions.setdefault(str(name), 0)
        inputs = [(str(i), blob_versions.get(str(i), 0)) for i in op.input]
        for name in op.output:
            blob_versions[str(name)] = blob_versions.get(str(name), 0) + 1
        ssa.append((inputs, [(str(o), blob_versions[str(o)]) for o in op.output]))
    return ssa, blob_versions


def get_undefined_blobs(ssa):
    """Caffe2's get_undefined_blobs: the blobs of a get_ssa() result read at version 0
    (used before any op of the net defines them)."""
    return {name for inputs, _outputs in ssa for name, version in inputs if version == 0}


def output_to_list(op_output):
    """An op's outputs as a list (Caffe2's: one BlobReference, or None for none)."""
    if op_output is None:
        return []
    if isinstance(op_output, (list, tuple)):
        return list(op_output)
    if isinstance(op_output, BlobReference):
        return [op_output]
    raise ValueError(f"Unexpected operator output type: {type(op_output)}")


class Net:
    """A NetDef under construction, with ``net.OpType(...)`` sugar."""

    _net_names_used: set[str] = set()

    @staticmethod
    def _get_next_net_name(basename: str) -> str:
        name = basename
        next_idx = 1
        while name in Net._net_names_used:
            name = f"{basename}_{next_idx}"
            next_idx += 1
        Net._net_names_used.add(name)
        return name

    def __init__(self, name_or_proto):
        self._net = caffe2_pb2.NetDef()
        self._next_name_index = 0
        self._next_blob_name_ids = {}
        self._input_record = None
        self._output_record = None
        if isinstance(name_or_proto, caffe2_pb2.NetDef):
            self._net.CopyFrom(name_or_proto)
            existing = set(self._net.external_input)
            for op in self._net.op:
                existing.update(op.output)
            prefix = f"{self._net.name}_blob_"
            ids = [int(b[len(prefix):]) for b in existing
                   if b.startswith(prefix) and b[len(prefix):].isdigit()]
            self._next_name_index = max(ids) + 1 if ids else 0
            name = self._net.name
        else:
            name = str(name_or_proto)
        self._net.name = Net._get_next_net_name(name)

    # -- Caffe2 accessors ----------------------------------------------------
    def Name(self):  # noqa: N802
        return self._net.name

    def __str__(self):
        return self.Name()

    def Proto(self):  # noqa: N802
        """The live NetDef (not a copy), as in Caffe2."""
        return self._net

    def _defined_blobs(self):
        blobs = set(self._net.external_input)
        for op in self._net.op:
            blobs.update(op.output)
        return blobs

    def BlobIsDefined(self, blob) -> bool:  # noqa: N802
        return str(blob) in self._defined_blobs()

    def GetBlobRef(self, blob_name):  # noqa: N802
        """A reference to a blob this net defines; KeyError otherwise."""
        blob_name = str(blob_name)
        if not self.BlobIsDefined(blob_name):
            raise KeyError(f"Net does not define blob {blob_name}")
        return BlobReference(blob_name, self)

    def GetUsedBlobNames(self):  # noqa: N802
        used = set(self._net.external_input) | set(self._net.external_output)
        for op in self._net.op:
            used.update(op.input)
            used.update(op.output)
        return used

    def NextName(self, prefix=None, output_id=None):  # noqa: N802
        """'<net>/<prefix>' ('_2', '_3'... while taken; ':i' for output i) or '<net>_blob_<n>'.

        Whether a name is taken is checked with the current name scope added,
        as the op sugar adds it to the returned name.
        """
        if prefix:
            output_name_base = f"{self._net.name}/{prefix}"
            suffix = f":{output_id}" if output_id is not None else ""
            output_name = output_name_base + suffix
            key = output_name
            index = self._next_blob_name_ids.get(key, 2)
            while self.BlobIsDefined(ScopedName(output_name)):
                output_name = f"{output_name_base}_{index}{suffix}"
                index += 1
                self._next_blob_name_ids[key] = index
            return output_name
        output_name = f"{self._net.name}_blob_{self._next_name_index}"
        self._next_name_index += 1
        return output_name

    def NextBlob(self, prefix=None):  # noqa: N802
        name = str(prefix or "blob")
        index = 0
        candidate = name
        used = self.GetUsedBlobNames()
        while candidate in used:
            candidate = f"{name}_auto_{index}"
            index += 1
        return BlobReference(candidate, self)

    def NextScopedBlob(self, prefix=None):  # noqa: N802
        return self.NextBlob(ScopedName(prefix or "blob"))

    def AddExternalInput(self, *inputs):  # noqa: N802
        """Declare blobs as the net's inputs, named ``str(input)`` as given (no name
        scope: AddScopedExternalInputs adds it), as Caffe2 did."""
        assert len(inputs) > 0
        names = [str(i) for i in inputs]
        existing = set(self._net.external_input)
        for name in names:
            assert name not in existing, f"Net already contains an input named {name}"
            existing.add(name)
        self._net.external_input.extend(names)
        refs = [BlobReference(name, self) for name in names]
        return refs[0] if len(refs) == 1 else refs

    def AddExternalInputs(self, *inputs):  # noqa: N802
        return self.AddExternalInput(*inputs)

    def AddExternalOutput(self, *outputs):  # noqa: N802
        for output in outputs:
            assert isinstance(output, BlobReference), "AddExternalOutput takes BlobReferences"
            assert self.BlobIsDefined(output), f"{output} is not defined in net {self.Name()}"
            self._net.external_output.append(str(output))

    def AddExternalOutputs(self, *outputs):  # noqa: N802
        return self.AddExternalOutput(*outputs)

    @property
    def external_inputs(self):
        return [BlobReference(s, self) for s in self._net.external_input]

    @property
    def external_outputs(self):
        return [BlobReference(s, self) for s in self._net.external_output]

    # -- records (caffe2lite.schema fields naming this net's blobs) ------------
    # caffe2lite.schema imports this module, so these work through the record's
    # own methods (clone_schema, all_scalars, field_names, set_value, +) rather
    # than importing it back.
    def input_record(self):
        return self._input_record

    def output_record(self):
        return self._output_record

    def set_input_record(self, input_record):
        """Declare the net's input record; a schema without blobs gets a new blob
        per column (``NextScopedBlob(column)`` under the net's name scope), as
        schema.NewRecord would.  The blobs become external inputs."""
        assert self._input_record is None or (
            input_record.has_blobs()
            and set(input_record.field_blobs()) == set(self._input_record.field_blobs())), \
            "Input schema cannot be reset"
        if not input_record.has_blobs():
            with NameScope(self.Name()):
                record = input_record.clone_schema()
                for scalar, column in zip(record.all_scalars(), record.field_names()):
                    scalar.set_value(self.NextScopedBlob(prefix=column), unsafe=True)
            self._input_record = record
        else:
            self._input_record = input_record
        existing = set(self._net.external_input)
        for blob in self._input_record.field_blobs():
            if str(blob) not in existing:
                self.AddExternalInput(blob)
                existing.add(str(blob))
        return self._input_record

    def set_output_record(self, record):
        """Declare the net's output record: its blobs must be defined here and
        become external outputs."""
        assert self._output_record is None or (
            record.has_blobs()
            and set(record.field_blobs()) == set(self._output_record.field_blobs())), \
            "Output schema cannot be reset"
        for blob in record.field_blobs():
            assert self.BlobIsDefined(blob), f"{blob} is not defined in net {self.Name()}"
        for blob in record.field_blobs():
            if str(blob) not in self._net.external_output:
                self.AddExternalOutput(BlobReference(str(blob), self))
        self._output_record = record

    def AppendOutputRecordField(self, field_name, record):  # noqa: N802
        """Add ``record`` to the output record (a Struct) as field ``field_name``."""
        assert self._output_record is not None, "Tried to append to missing output record"
        for blob in record.field_blobs():
            assert self.BlobIsDefined(blob), f"{blob} is not defined"
        for blob in record.field_blobs():
            self.AddExternalOutput(BlobReference(str(blob), self))
        # Only a Struct can be added to (Struct + Struct); build the new field
        # with the output record's own class.
        self._output_record = self._output_record + type(self._output_record)(
            (field_name, record))

    def _record_copy(self, record, remap, net):
        copy = record.clone_schema()
        for scalar, blob in zip(copy.all_scalars(), record.field_blobs()):
            scalar.set_value(BlobReference(remap.get(str(blob), str(blob)), net), unsafe=True)
        return copy

    def Clone(self, name, blob_remap=None, op_id_mask=None, remap_funcs=None,  # noqa: N802
              keep_schema=True, update_external_list=False):
        """A copy under a new name; ``blob_remap`` renames blobs, ``op_id_mask`` keeps some ops.

        ``remap_funcs`` ({op type: f(op, prefix, blob_remap)}) also renames what an op
        names in its arguments; RecurrentNetwork(Gradient) are remapped by default
        (DEFAULT_REMAP_FUNCS: their link, alias and state names and their step nets).
        With ``update_external_list`` the copy's external inputs become the blobs
        its kept ops read before any op writes them, and its external outputs the
        blobs they write that no op reads afterwards (Caffe2's rule)."""
        proto = caffe2_pb2.NetDef()
        proto.CopyFrom(self._net)
        remap = {str(k): str(v) for k, v in (blob_remap or {}).items()}
        funcs = dict(DEFAULT_REMAP_FUNCS, **(remap_funcs or {}))
        if op_id_mask is not None:
            kept = [proto.op[i] for i in op_id_mask]
            del proto.op[:]
            proto.op.extend(kept)
        for op in proto.op:
            op.input[:] = [remap.get(b, b) for b in op.input]
            op.output[:] = [remap.get(b, b) for b in op.output]
            if op.type in funcs:
                funcs[op.type](op, f"{name}/" if name else "", remap)
        proto.external_input[:] = [remap.get(b, b) for b in proto.external_input]
        proto.external_output[:] = [remap.get(b, b) for b in proto.external_output]
        if update_external_list:
            written, consumed, read_first = {}, set(), {}
            for op in proto.op:
                for blob in op.input:
                    if blob in written:
                        consumed.add(blob)
                    else:
                        read_first.setdefault(blob)
                written.update(dict.fromkeys(op.output))
            proto.external_input[:] = list(read_first)
            proto.external_output[:] = [b for b in written if b not in consumed]
        proto.name = name
        clone = Net(proto)
        if keep_schema:
            if self._input_record is not None:
                clone._input_record = self._record_copy(self._input_record, remap, clone)
            if self._output_record is not None:
                clone._output_record = self._record_copy(self._output_record, remap, clone)
        return clone

    def ClonePartial(self, name, inputs, outputs, remap_funcs=None):  # noqa: N802
        """(new net, refs to its outputs): only the ops that compute ``outputs`` from ``inputs``.

        ``inputs``: blob names kept as they are, or {original: new name} (or a list
        of such pairs) to rename them; they are taken at their last version in this
        net.  Blobs made and used inside are renamed '<name>/<blob>'; blobs read but
        neither given nor made inside stay external inputs under their own names.
        ``remap_funcs`` as in Clone (RecurrentNetwork ops are remapped by default).
        """
        if isinstance(inputs, dict):
            renamed = {str(k): str(v) for k, v in inputs.items()}
        elif inputs and all(isinstance(i, tuple) and len(i) == 2 for i in inputs):
            renamed = {str(k): str(v) for k, v in inputs}
        else:
            renamed = {str(i): str(i) for i in inputs}
        outputs = [str(o) for o in outputs]
        for output in outputs:
            assert self.BlobIsDefined(output), f"{output} is not defined"
        per_op, latest = ssa.versions_of(self._net.op, dict.fromkeys(renamed, 0))
        kept = ssa.ops_needed(per_op, latest, renamed, outputs)
        if kept & ssa.ops_needed(per_op, latest, (), renamed):
            raise ValueError("Cannot partially clone net: some of the ops required would "
                             "generate the given input.")
        outside = ssa.read_before_written([per_op[i] for i in kept]) - set(renamed)
        prefix = f"{name}/" if name else ""
        blob_remap = {b: renamed.get(b, b if b in outside else prefix + b) for b in latest}
        clone = self.Clone(name, blob_remap, sorted(kept), remap_funcs)
        clone._net.external_input[:] = [blob_remap[i] for i in renamed] + sorted(outside)
        clone._net.external_output[:] = [blob_remap[o] for o in outputs]
        return clone, [BlobReference(blob_remap[o], clone) for o in outputs]

    def AppendNet(self, net, device_option=None):  # noqa: N802
        """Add ``net``'s ops (placed on ``device_option`` if given) and the external
        inputs/outputs this net lacks; returns self."""
        assert isinstance(net, Net), f"AppendNet takes a core.Net, got {type(net).__name__}"
        defined = self._defined_blobs()
        for blob in net.Proto().external_input:
            if blob not in defined:
                self._net.external_input.append(blob)
                defined.add(blob)
        for blob in net.Proto().external_output:
            if blob not in self._net.external_output:
                self._net.external_output.append(blob)
        start = len(self._net.op)
        self._net.op.extend(net.Proto().op)
        if device_option is not None:
            for op in self._net.op[start:]:
                op.device_option.CopyFrom(device_option)
        return self

    def Const(self, array, blob_out=None, dtype=None):  # noqa: N802
        """A fill op writing ``array``: Caffe2's choice of GivenTensor*Fill by dtype
        (ConstantFill for a Python bool); returns the output reference."""
        if isinstance(array, bool):
            return self.ConstantFill([], blob_out or 1, dtype=caffe2_pb2.TensorProto.BOOL,
                                     value=array)
        array = np.array(array, dtype=dtype)
        fill = {"i": {4: "GivenTensorIntFill", 8: "GivenTensorInt64Fill"}.get(array.itemsize),
                "b": "GivenTensorBoolFill", "U": "GivenTensorStringFill",
                "S": "GivenTensorStringFill"}.get(array.dtype.kind) or "GivenTensorFill"
        return getattr(self, fill)([], blob_out or 1, shape=list(array.shape),
                                   values=array.reshape(-1).tolist())

    def DeduplicateGradientSlices(self, g, aggregator="sum"):  # noqa: N802
        """A GradientSlice with each index once: Unique of the indices, and the values
        of repeated indices summed (``aggregator="sum"``) or averaged ("mean")."""
        assert isinstance(g, GradientSlice)
        unique, remapping = self.Unique([g.indices], 2, engine="SparseHash")
        if aggregator.lower() == "sum":
            new_g = self.UnsortedSegmentSum([g.values, remapping], 1)
        elif aggregator.lower() == "mean":
            new_g = self.UnsortedSegmentMean([g.values, remapping], 1)
        else:
            raise ValueError(f"{aggregator} is not supported")
        return GradientSlice(indices=unique, values=new_g)

    def RunAllOnGPU(self, gpu_id=0, use_cudnn=False):  # noqa: N802
        """Every op on GPU ``gpu_id``, the step nets of RecurrentNetwork ops included."""
        _run_all_on_gpu(self._net, DeviceOption(caffe2_pb2.CUDA, gpu_id), use_cudnn)

    def AddScopedExternalInputs(self, *inputs):  # noqa: N802
        """AddExternalInput of the names under the current name scope; always a list."""
        refs = self.AddExternalInput(*[ScopedBlobReference(str(i)) for i in inputs])
        return refs if isinstance(refs, list) else [refs]

    def AddScopedExternalOutputs(self, *outputs):  # noqa: N802
        refs = [ScopedBlobReference(str(o), self) for o in outputs]
        self.AddExternalOutput(*refs)
        return refs

    def set_rand_seed(self, seed=100, sequence_seed=True, seed_on_op_def=False):
        for i, op in enumerate(self._net.op):
            op.device_option.random_seed = seed + i if sequence_seed else seed

    def AddGradientOperators(self, ys, skip=0):  # noqa: N802
        """Append the backward pass of ``ys`` (list, or dict {y: grad or None}).

        Returns {BlobReference(input): BlobReference(grad) or GradientSlice};
        see caffe2lite.gradients for the rules.  Ops before ``skip`` are ignored.
        """
        grad_ops, input_to_grad = gradients.get_backward_pass(
            self._net.op[skip:], ys, net_name=self._net.name, first_position=skip)
        self._net.op.extend(grad_ops)
        return _blob_references(input_to_grad)

    def Python(self, f, grad_f=None, python_func_type=None, pass_workspace=False,  # noqa: N802
               grad_output_indices=None, grad_input_indices=None):
        """A function adding a ``Python`` op running ``f`` (see CreatePythonOperator).

        ``f`` and ``grad_f`` may be builder tuples ``(func, args, kwargs)``: they are
        pickled into the op and called once per created operator to make the
        function, as Caffe2 did for per-node state (both or neither)."""
        assert IsOperator("Python")

        def make_builder(t):
            if not isinstance(t, tuple):
                return ""
            assert len(t) == 3, "Expected builder tuple (func, args, kwargs)"
            func, args, kwargs = t
            return pickle.dumps((func, tuple(args), dict(kwargs)))

        f_builder, grad_f_builder = make_builder(f), make_builder(grad_f)
        assert (not grad_f) or ((not f_builder) == (not grad_f_builder)), (
            "A tuple has to be passed to both f and grad_f or neither.")
        core_kwargs = {}
        if f_builder:
            core_kwargs["pickled_builder"] = f_builder
            core_kwargs["pickled_grad_builder"] = grad_f_builder
            core_kwargs["pass_workspace"] = pass_workspace
        else:
            core_kwargs["token"] = _RegisterPythonImpl(f, grad_f, python_func_type,
                                                       pass_workspace=pass_workspace)
        grad_output_indices = grad_output_indices or []
        grad_input_indices = grad_input_indices or []
        return lambda *args, **kwargs: self._CreateAndAddToSelf(
            "Python", *args, grad_output_indices=grad_output_indices,
            grad_input_indices=grad_input_indices, **dict(chain(kwargs.items(),
                                                                core_kwargs.items())))

    # -- operator sugar ------------------------------------------------------
    def __getattr__(self, op_type):
        if op_type.startswith("__"):
            raise AttributeError(op_type)
        if not IsOperator(op_type) and not IsOperatorWithEngine(op_type, "CUDNN"):
            hints = difflib.get_close_matches(op_type, list(registry.schemas()), n=5, cutoff=0.6)
            raise AttributeError(f"Method {op_type} is not a registered operator. Did you "
                                 f"mean: [{', '.join(hints)}]")
        return lambda *args, **kwargs: self._CreateAndAddToSelf(op_type, *args, **kwargs)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(registry.schemas()))

    def _CreateAndAddToSelf(self, op_type, inputs, outputs=None, **kwargs):  # noqa: N802
        inputs = _rectify(inputs)
        defined = self._defined_blobs()
        for blob in inputs:
            if str(blob) not in defined:
                self._net.external_input.append(str(blob))
                defined.add(str(blob))
        if outputs is None:
            outputs = self.NextName(prefix=op_type)
        elif isinstance(outputs, int):
            outputs = [self.NextName(prefix=op_type, output_id=i) for i in range(outputs)]
        outputs = _rectify(outputs)
        op = CreateOperator(op_type, inputs, outputs, **kwargs)
        self._net.op.extend([op])
        operator_tracebacks.setdefault(self._net.name, {})[len(self._net.op) - 1] = (
            op_type, _caller_site())
        refs = tuple(BlobReference(str(o), self) for o in op.output)
        if not refs:
            return None
        return refs[0] if len(refs) == 1 else refs


# -- Caffe2's net surgery helpers: blob versions, device placement, argument remapping ----

def InferOpBlobDevices(op):  # noqa: N802
    """([DeviceOption of each input], [DeviceOption of each output]) of ``op``: the op's
    own device unless its schema's device inference says otherwise."""
    schema = registry.get_schema(op.type)
    infer = getattr(schema, "infer_device", None)
    if infer is not None:
        inputs, outputs = infer(op)
        return list(inputs), list(outputs)
    option = op.device_option if op.HasField("device_option") else caffe2_pb2.DeviceOption()
    return [option] * len(op.input), [option] * len(op.output)


def InferOpBlobDevicesAsDict(op):  # noqa: N802
    """InferOpBlobDevices as ({input name: DeviceOption}, {output name: DeviceOption})."""
    inputs, outputs = InferOpBlobDevices(op)
    return dict(zip(op.input, inputs)), dict(zip(op.output, outputs))


def get_output_producers(ssa_ops):
    """{versioned blob: index of the op that writes that version}."""
    return {blob: i for i, (_, outputs) in enumerate(ssa_ops) for blob in outputs}


def _run_all_on_gpu(net_def, option, use_cudnn):
    net_def.device_option.CopyFrom(option)
    for op in net_def.op:
        op.device_option.CopyFrom(option)
        if use_cudnn:
            op.engine = "CUDNN"
        if op.type == "RecurrentNetwork":
            for arg in op.arg:
                if arg.name == "step_net":
                    _run_all_on_gpu(arg.n, option, use_cudnn)


def recurrent_network_op_remap(op, prefix, blob_remap):
    """Rename, in a RecurrentNetwork(Gradient) op's arguments, the blobs ``blob_remap``
    renames: every string list (links, aliases, states), ``timestep`` and the step nets."""
    def remapped(name):
        name = name.decode("utf-8") if isinstance(name, bytes) else name
        return blob_remap.get(name, name).encode("utf-8")

    for arg in op.arg:
        if len(arg.strings) > 0:
            arg.strings[:] = [remapped(s) for s in arg.strings]
        elif arg.name == "timestep":
            arg.s = remapped(arg.s)
        elif arg.name.endswith("step_net") and arg.HasField("n"):
            arg.n.CopyFrom(Net(arg.n).Clone("cloned_sub_net", blob_remap).Proto())


DEFAULT_REMAP_FUNCS = {
    "RecurrentNetwork": recurrent_network_op_remap,
    "RecurrentNetworkGradient": recurrent_network_op_remap,
}
