"""ONNX models on caffe2lite: Caffe2's ``caffe2.python.onnx.backend``.

``Caffe2Backend`` is an ``onnx.backend.base.Backend``: ``prepare(model,
device="CPU")`` converts the graph to Caffe2 ops (the ``_import_*`` mapping
tables), loads the initializers into a workspace of its own and returns a
``Caffe2Rep`` whose ``run(inputs)`` gives the outputs; ``run_model`` and
``run_node`` do it in one call, and ``onnx_graph_to_caffe2_net(model)`` gives
``(init_net, predict_net)`` to save and run anywhere caffe2lite runs.

Opsets 6 to ``KNOWN_OPSET`` of the default domain are read; nodes of the
``org.caffe2`` domain (the frontend's custom ops) become the Caffe2 ops they
name.  A model with nodes no mapping covers fails with one ``Unsupported``
error listing every such op type with its positions.
"""

from __future__ import annotations

import collections
import os

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, Device, DeviceType

from caffe2lite.onnx import (_import_activations, _import_detection, _import_index,  # noqa: F401
                             _import_math, _import_nn, _import_pad, _import_tensor)
from caffe2lite.onnx._import_base import (IMPORTERS, ImportContext, NeedsValue, Node,
                                          attribute_value, op)
from caffe2lite.onnx.backend_rep import Caffe2Rep, SpecializingRep
from caffe2lite.onnx.dtypes import caffe2_type_of_onnx, onnx_type
from caffe2lite.onnx.error import ConversionError, Unsupported
from caffe2lite.onnx.frontend import CUSTOM_DOMAIN, KNOWN_OPSET
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import Caffe2LiteError
from caffe2lite.runtime.workspaces import Workspace

# Caffe2's own backend read opset 1 on; caffe2lite reads from 6, whose broadcasting
# (broadcast=1 with axis) is Caffe2's legacy rule (the frontend writes 9 on).
OLDEST_OPSET = 6
KNOWN_DOMAINS = ("", "ai.onnx")


class Caffe2Backend(Backend):
    """caffe2lite as an ONNX backend (CPU; CUDA where CuPy and a GPU are present)."""

    _known_opset_version = KNOWN_OPSET

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs) -> Caffe2Rep:
        model = load_model(model)

        def build(bound=None):
            init_net, predict_net, values, inputs = _convert(model, None, device, bound)
            ws = Workspace()
            option = _device_option(device)
            for name, value in values.items():
                ws.feed_blob(name, value, option)
            ws.run_net_once(init_net)
            return Caffe2Rep(init_net, predict_net, ws, inputs)

        try:
            return build()
        except NeedsValue as e:
            inputs = [vi.name for vi in model.graph.input
                      if vi.name not in {i.name for i in model.graph.initializer}]
            return SpecializingRep(build, inputs, e.names)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, opset_version=None,
                 **kwargs):
        """Run one NodeProto on ``inputs`` (a list in the node's input order, or a dict)."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        names = [n for n in node.input if n]
        if isinstance(inputs, dict):
            values = dict(inputs)
        else:
            values = dict(zip(names, inputs))
        graph_inputs = [onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
            np.asarray(v).shape) for name, v in values.items()]
        graph = onnx.helper.make_graph([node], "run_node", graph_inputs,
                                       [onnx.helper.make_empty_tensor_value_info(o)
                                        for o in node.output if o])
        version = opset_version or min(KNOWN_OPSET, onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[
            onnx.helper.make_opsetid(node.domain or "", version)])
        return cls.prepare(model, device).run(values)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        parsed = Device(device)
        if parsed.type == DeviceType.CPU:
            return True
        if parsed.type == DeviceType.CUDA:
            from caffe2lite import workspace

            return bool(workspace.has_cuda_support)
        return False

    @classmethod
    def onnx_graph_to_caffe2_net(cls, model, device="CPU", opset_version=None):
        """(init_net, predict_net): the initializers as fill ops, the nodes as Caffe2 ops."""
        model = load_model(model)
        init_net, predict_net, values, _ = _convert(model, opset_version, device)
        for name, value in values.items():
            init_net.op.extend(_fill_ops(name, value))
        init_net.external_output.extend(values)
        return init_net, predict_net


def load_model(model) -> onnx.ModelProto:
    """A ModelProto from a ModelProto, serialized bytes or a file path, with an error
    that names the file and what is wrong when it is not a model."""
    if isinstance(model, onnx.ModelProto):
        return model
    source = "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        try:
            with open(source, "rb") as f:
                model = f.read()
        except OSError as e:
            raise ConversionError(f"cannot read ONNX model '{source}': {e}") from e
    if not isinstance(model, (bytes, bytearray)):
        raise ConversionError(f"expected an onnx.ModelProto, bytes or a path, got "
                              f"{type(model).__name__}")
    parsed = onnx.ModelProto()
    try:
        parsed.ParseFromString(bytes(model))
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ConversionError(f"{source} is not an ONNX model (truncated or not a "
                              f"ModelProto): {e}") from e
    if not parsed.HasField("graph"):
        raise ConversionError(f"{source} is not an ONNX model: it has no graph "
                              f"({len(model)} bytes)")
    try:
        onnx.checker.check_model(parsed)
    except onnx.checker.ValidationError as e:
        raise ConversionError(f"{source} is not a valid ONNX model: "
                              f"{str(e).strip().splitlines()[0]}") from e
    return parsed


def model_opset(model, requested=None) -> int:
    """The default-domain opset the model declares, checked against what caffe2lite reads."""
    version = requested
    for entry in model.opset_import:
        if entry.domain in KNOWN_DOMAINS and requested is None:
            version = entry.version
        elif entry.domain not in KNOWN_DOMAINS + (CUSTOM_DOMAIN,):
            used = [n.op_type for n in model.graph.node if n.domain == entry.domain]
            if used:
                raise Unsupported(f"the model uses operator set '{entry.domain}' (nodes: "
                                  f"{', '.join(sorted(set(used)))}), which caffe2lite does "
                                  f"not read")
    if version is None:
        raise Unsupported("the model declares no opset of the default ONNX domain")
    if not OLDEST_OPSET <= version <= KNOWN_OPSET:
        raise Unsupported(f"the model uses ONNX opset {version}; caffe2lite reads opsets "
                          f"{OLDEST_OPSET} to {KNOWN_OPSET}")
    return version


def _convert(model, opset_version, device, bound=None):
    """(init_net with the mappings' own ops, predict_net, {blob: array} to load, inputs).

    ``bound`` gives values for graph inputs that a mapping needs as constants; without
    them such a model raises NeedsValue naming every such input."""
    opset = model_opset(model, opset_version)
    graph = model.graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = _inferred_shapes(model)
    names = {vi.name for vi in graph.input} | set(values)
    names |= {n for node in graph.node for n in list(node.input) + list(node.output)}
    constants = dict(values)
    constants.update({name: np.asarray(v) for name, v in (bound or {}).items()})
    cx = ImportContext(opset, constants, shapes, names,
                       [vi.name for vi in graph.input if vi.name not in constants])
    ops, unmapped, problems, needed = [], collections.defaultdict(list), [], []
    for position, node_proto in enumerate(graph.node):
        node = _node(node_proto, position)
        if node.op_type == "Constant" and node.domain in KNOWN_DOMAINS:
            try:
                value = _constant_value(node)
            except Unsupported as e:
                problems.append(str(e))
                continue
            cx.constants[node.outputs[0]] = cx.new_constants[node.outputs[0]] = value
            continue
        if node.domain == CUSTOM_DOMAIN:
            ops.append(op(node.op_type, node.inputs, node.outputs, node, **node.attrs))
            continue
        _track_dependencies(node, cx)
        fn = IMPORTERS.get(node.op_type) if node.domain in KNOWN_DOMAINS else None
        if fn is None:
            unmapped[node.op_type].append(position)
            continue
        try:
            node_ops = fn(node, cx)
            ops.extend(node_ops)
            _fold_constants(node, node_ops, cx)
        except Unsupported as e:
            problems.append(str(e))
        except NeedsValue as e:
            needed += [name for name in e.names if name not in needed]
    if needed and not unmapped and not problems:
        raise NeedsValue(needed)
    if unmapped or problems:
        lines = []
        if unmapped:
            listed = "; ".join(f"{t} (node{'s' if len(p) > 1 else ''} #{', #'.join(map(str, p))})"
                               for t, p in sorted(unmapped.items()))
            lines.append(f"{sum(map(len, unmapped.values()))} node(s) of graph '{graph.name}' "
                         f"have no Caffe2 mapping in caffe2lite: {listed}")
        raise Unsupported("\n".join(lines + problems))

    option = _device_option(device)
    predict = caffe2_pb2.NetDef(name=graph.name or "onnx_model", op=ops)
    init = caffe2_pb2.NetDef(name=f"{predict.name}_init")
    if option is not None:
        predict.device_option.CopyFrom(option)
        init.device_option.CopyFrom(option)
    inputs = [vi.name for vi in graph.input if vi.name not in values]
    loaded = dict(values)
    loaded.update(cx.new_constants)
    predict.external_input.extend(inputs + list(loaded))
    predict.external_output.extend(vi.name for vi in graph.output)
    return init, predict, loaded, inputs


def _track_dependencies(node, cx):
    """Record which unbound graph inputs the node's outputs are computed from (inputs
    that folded to constants, such as a static Shape, contribute none)."""
    source = set().union(*(cx.depends.get(name, set()) for name in node.inputs
                           if name and name not in cx.constants))
    for name in node.outputs:
        if name:
            cx.depends[name] = source


def _fold_constants(node, node_ops, cx):
    """Know the values a node computes from constants alone (or a Shape of a static
    shape) while converting: a later input that Caffe2 takes as an argument (axes,
    sizes, a target shape) may be computed so.  The ops stay in the net all the same."""
    if node.op_type == "Shape":
        shape = cx.shape(node.inputs[0])
        if shape is not None and None not in shape:
            start, end = node.attrs.get("start"), node.attrs.get("end")
            cx.constants[node.outputs[0]] = np.asarray(shape[slice(start, end)], np.int64)
        return
    if not node.inputs or not all(name in cx.constants for name in node.inputs if name):
        return
    read = {name for o in node_ops for name in o.input}
    ws = Workspace()
    try:
        for name in read:
            if name in cx.constants:
                ws.feed_blob(name, cx.constants[name])
        for o in node_ops:
            ws.run_operator_once(o)
    except Caffe2LiteError:  # it will fail at run time, with the op's own message
        return
    for name in node.outputs:
        if name and ws.has_blob(name):
            cx.constants[name] = np.asarray(ws.fetch_blob(name))


def _node(proto, position) -> Node:
    where = f"node #{position} {proto.op_type}" + (f' "{proto.name}"' if proto.name else "")
    return Node(proto.op_type, list(proto.input), list(proto.output),
                {a.name: attribute_value(a) for a in proto.attribute}, proto.name, where,
                proto.domain)


def _constant_value(node):
    attrs = node.attrs
    for key, dtype in (("value", None), ("value_float", np.float32),
                       ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64), ("value_string", object),
                       ("value_strings", object)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise node.unsupported(f"Constant with {', '.join(attrs) or 'no value'} (sparse tensors "
                           f"have no Caffe2 mapping)")


def _inferred_shapes(model) -> dict:
    """{value name: (shape with None for unknown dims, elem type)} from ONNX's inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is a help, not a requirement
        inferred = model
    out = {}
    graph = inferred.graph
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        out[vi.name] = (dims, t.elem_type)
    return out


def _device_option(device):
    parsed = Device(device) if isinstance(device, str) else device
    if parsed.type == DeviceType.CPU:
        return None
    return caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA, device_id=parsed.device_id)


_FILLS = {"f": {4: "GivenTensorFill", 8: "GivenTensorDoubleFill"},
          "i": {2: "GivenTensorInt16Fill", 4: "GivenTensorIntFill", 8: "GivenTensorInt64Fill"},
          "b": {1: "GivenTensorBoolFill"}}


def _fill_ops(name, value):
    """The ops writing ``value``: Caffe2's GivenTensor*Fill for its dtype (uint8 as a byte
    string); a dtype no fill writes (int8, uint16, float16, ...) is filled wider and Cast."""
    array = np.asarray(value)
    shape = list(array.shape)
    if array.dtype.kind in "OSU":
        return [op("GivenTensorStringFill", [], [name], shape=shape,
                   values=[v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()])]
    if array.dtype == np.uint8:
        return [op("GivenTensorByteStringToUInt8Fill", [], [name], shape=shape,
                   values=[array.tobytes()])]
    fill = _FILLS.get(array.dtype.kind, {}).get(array.itemsize)
    if fill is not None:
        return [op(fill, [], [name], shape=shape, values=array.ravel().tolist())]
    wide = array.astype(np.float64 if array.dtype.kind == "f" else np.int64)
    try:
        cast_to = caffe2_type_of_onnx(onnx_type(array.dtype))
    except Unsupported:
        raise Unsupported(f"initializer '{name}' has dtype {array.dtype}, which Caffe2 has no "
                          f"type for") from None
    return _fill_ops(f"{name}__wide", wide) + [op("Cast", [f"{name}__wide"], [name],
                                                  to=cast_to)]


prepare = Caffe2Backend.prepare
run_node = Caffe2Backend.run_node
run_model = Caffe2Backend.run_model
supports_device = Caffe2Backend.supports_device
onnx_graph_to_caffe2_net = Caffe2Backend.onnx_graph_to_caffe2_net
