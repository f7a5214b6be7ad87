"""Caffe2 net -> ONNX model, with the API of Caffe2's ``caffe2.python.onnx.frontend``.

``caffe2_net_to_onnx_model(predict_net, init_net=None, value_info=None)`` gives
an ``onnx.ModelProto`` that passes ``onnx.checker.check_model(full_check=True)``:

* the init net is run (whatever ops make the parameters), and every blob it
  writes that the predict net reads becomes an initializer; a fill of a blob
  that ``value_info`` names as a data input is a placeholder and is dropped;
* ``value_info`` is Caffe2's ``{name: (onnx element type, shape)}`` (the
  model zoo's ``value_info.json``); it must give each data input, and what
  it says of any other blob must agree with the net.  The other blobs' shapes
  come from caffe2lite's shape inference (Caffe2 ran the net on random data
  for all of them); only blobs that inference cannot see through are found by
  running the net once on stand-in inputs;
* ONNX writes every value once, so blobs that ops write in place or more than
  once are renamed per version (``ssa_rewrite``): inputs and the last version
  of each blob keep their names, earlier versions get ``<name>_<k>``;
* every op goes through the mapping table (``_export_*`` modules); the ops with
  no mapping, or used in a way ONNX cannot express, are all listed in one
  ``Unsupported`` error with their positions -- or, with
  ``allow_custom_ops=True``, exported as-is into the ``org.caffe2`` domain.

The default opset is the newest the mappings were written against (capped by
the installed onnx); ``opset_version`` picks an older one, down to 9.
"""

from __future__ import annotations

import collections
import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe2lite.onnx import (_export_activations, _export_index, _export_losses,  # noqa: F401
                             _export_math, _export_nn, _export_reduce, _export_seq, _export_sparse,
                             _export_tensor)
from caffe2lite.onnx._export_base import EXPORTERS, ExportContext, Op
from caffe2lite.onnx.dtypes import numpy_type, onnx_type
from caffe2lite.onnx.error import ConversionError, Unsupported
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry, shape_inference, ssa
from caffe2lite.runtime.arguments import argument_value, parse_arguments
from caffe2lite.runtime.errors import Caffe2LiteError
from caffe2lite.runtime.op_context import describe_op
from caffe2lite.runtime.protoio import as_message
from caffe2lite.runtime.shape_inference import TensorSpec
from caffe2lite.runtime.workspaces import Workspace

logger = logging.getLogger("caffe2lite.onnx")

# The newest opset the mappings were written and checked against, and the oldest.
KNOWN_OPSET = 28
OLDEST_OPSET = 9
DEFAULT_OPSET = min(KNOWN_OPSET, onnx.defs.onnx_opset_version())
CUSTOM_DOMAIN = "org.caffe2"  # Caffe2-only ops, exported as-is when asked
PRODUCER = "caffe2lite"


def caffe2_net_to_onnx_model(predict_net, init_net=None, value_info=None, *,
                             opset_version=None, allow_custom_ops=False) -> onnx.ModelProto:
    """The ONNX model of a Caffe2 predict net (and init net), checked by onnx's checker."""
    opset = _opset(opset_version)
    graph, custom = _convert(predict_net, init_net, value_info, opset, allow_custom_ops)
    imports = [helper.make_opsetid("", opset)]
    if custom:
        imports.append(helper.make_opsetid(CUSTOM_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=imports, producer_name=PRODUCER,
                              ir_version=helper.find_min_ir_version_for(imports, True))
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ConversionError(f"the exported model fails onnx's checker (a caffe2lite "
                              f"mapping bug; please report it): {e}") from e
    return model


def caffe2_net_to_onnx_graph(predict_net, init_net=None, value_info=None, *,
                             opset_version=None, allow_custom_ops=False) -> onnx.GraphProto:
    """The ONNX graph of a Caffe2 predict net (initializers from the init net)."""
    graph, _ = _convert(predict_net, init_net, value_info, _opset(opset_version),
                        allow_custom_ops)
    return graph


def caffe2_op_to_onnx_node(op_def, shapes=None, *, opset_version=None):
    """(nodes, constant tensors) for one Caffe2 op; ``shapes`` maps its blobs to
    shapes, or to (shape, dtype) where a dtype other than float32 matters."""
    op_def = as_message(op_def, caffe2_pb2.OperatorDef, "caffe2_op_to_onnx_node")
    specs = {}
    for name, value in (shapes or {}).items():
        shape, dtype = value if _is_shape_and_dtype(value) else (value, np.float32)
        specs[name] = TensorSpec(shape, dtype)
    cx = ExportContext(_opset(opset_version), specs, set(op_def.input) | set(op_def.output))
    op = _as_op(op_def, None, "")
    fn = EXPORTERS.get(op_def.type)
    if fn is None or op is None:
        raise Unsupported(f"no ONNX mapping for operator {op_def.type}")
    return fn(op, cx), cx.initializers


def caffe2_init_net_to_initializer(init_net) -> list:
    """Run ``init_net`` and return every blob it writes as an ONNX TensorProto."""
    init_net = as_message(init_net, caffe2_pb2.NetDef, "init_net")
    values = _run_init_net(init_net, {op_out for op in init_net.op for op_out in op.output})
    return [numpy_helper.from_array(values[name], name=name) for name in sorted(values)]


def ssa_rewrite(net, init_net=None, value_info=None):
    """Rename ``net``'s blobs in place so that every version is written once.

    Inputs and the last version of each blob keep their names (so graph inputs
    and outputs are the Caffe2 names); an earlier version of a blob written
    more than once becomes ``<name>_<k>``, and so does the last version of a
    blob that is also an input.  ``init_net`` and ``value_info`` need no change
    (they name inputs); they are accepted for Caffe2's signature.
    """
    renamed, _ = _ssa_ops(net.op, set(net.external_input))
    for op, new in zip(net.op, renamed):
        op.CopyFrom(new)
    final = _final_names(net, renamed)
    net.external_output[:] = [final.get(name, name) for name in net.external_output]
    return net


# -- the conversion ----------------------------------------------------------------------------
def _convert(predict_net, init_net, value_info, opset, allow_custom_ops):
    predict = _copy_net(predict_net, "predict_net")
    init = _copy_net(init_net, "init_net") if init_net is not None else None
    declared = _read_value_info(value_info)
    data_inputs = {name for name in declared if name in predict.external_input}
    reads = _read_before_written(predict)
    params = {}
    if init is not None:
        _drop_placeholder_fills(init, data_inputs)
        params = _run_init_net(init, reads - data_inputs)
    inputs = [name for name in _ordered_inputs(predict, reads) if name not in params]
    missing = [name for name in inputs if name not in declared]
    if missing:
        raise ConversionError(
            f"no type and shape for the net's data input(s) {', '.join(missing)}: give them "
            f"in value_info as {{name: (onnx element type, shape)}} (the CLI: --input "
            f"NAME=1,3,224,224 or --value-info FILE)")
    _check_params_against_value_info(params, declared)

    if not allow_custom_ops:
        _refuse_unmapped(predict)
    renamed, _ = _ssa_ops(predict.op, set(inputs) | set(params) | set(predict.external_input))
    known = {name: TensorSpec(array.shape, array.dtype) for name, array in params.items()
             if hasattr(array, "dtype")}
    known.update({name: TensorSpec(shape, numpy_type(elem)) for name, (elem, shape)
                  in declared.items() if name in inputs})
    ssa_net = caffe2_pb2.NetDef(name=predict.name, op=renamed)
    specs = _blob_specs(ssa_net, known, params, inputs)
    final = _final_names(predict, renamed)
    _check_value_info_against_specs(declared, specs, final, set(inputs))

    names = {n for op in renamed for n in list(op.input) + list(op.output)}
    cx = ExportContext(opset, specs, names | set(params) | set(inputs), params)
    cx.needed = {n for op in renamed for n in op.input} | {
        final.get(name, name) for name in predict.external_output}
    nodes, custom = _convert_ops(ssa_net, cx, allow_custom_ops)

    graph = helper.make_graph(nodes, predict.name or "caffe2lite_net", [], [])
    graph.input.extend(_value_info(name, specs[name]) for name in inputs)
    produced = {out for node in nodes for out in node.output} | set(params) | set(inputs)
    for name in predict.external_output:
        onnx_name = final.get(name, name)
        if onnx_name not in produced:
            logger.warning("external output '%s' of net '%s' is made by no op and is no "
                           "input; it is left out of the ONNX graph, as Caffe2 did", name,
                           predict.name)
            continue
        graph.output.append(_value_info(onnx_name, specs.get(onnx_name)))
    read = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    graph.initializer.extend(numpy_helper.from_array(_onnx_ready(value), name=name)
                             for name, value in sorted(params.items()) if name in read)
    graph.initializer.extend(cx.initializers)
    _type_outputs_by_onnx(graph, opset)
    return graph, custom


_CUSTOM_HINT = (f"(allow_custom_ops=True exports such ops as-is in the '{CUSTOM_DOMAIN}' "
                f"domain, for runtimes that know them)")


def _refuse_unmapped(net):
    """One error listing every op type with no mapping, with the ops' positions."""
    unmapped = collections.defaultdict(list)
    for position, op_def in enumerate(net.op):
        if op_def.type not in EXPORTERS or registry.get_schema(op_def.type) is None:
            unmapped[op_def.type].append(position)
    if unmapped:
        listed = "; ".join(f"{t} (op{'s' if len(p) > 1 else ''} #{', #'.join(map(str, p))})"
                           for t, p in sorted(unmapped.items()))
        raise Unsupported(f"{sum(map(len, unmapped.values()))} op(s) of net '{net.name}' have "
                          f"no ONNX mapping: {listed}\n{_CUSTOM_HINT}")


def _convert_ops(net, cx, allow_custom_ops):
    """(nodes, whether any is a custom op); the ops that a mapping refuses are listed
    together in one Unsupported error."""
    nodes, custom, problems = [], False, []
    for position, op_def in enumerate(net.op):
        fn = EXPORTERS.get(op_def.type)
        op = _as_op(op_def, position, net.name)
        if fn is not None and op is not None:
            try:
                nodes.extend(fn(op, cx))
                continue
            except Unsupported as e:
                if not allow_custom_ops:
                    problems.append(str(e))
                    continue
        nodes.append(_custom_node(op_def, position))
        custom = True
    if problems:
        raise Unsupported("\n".join(problems + [_CUSTOM_HINT]))
    return nodes, custom


def _as_op(op_def, position, net_name):
    """The Op a mapping sees, or None when caffe2lite has no schema for the type."""
    where = describe_op(op_def, position, net_name)
    schema = registry.get_schema(op_def.type)
    if schema is None:
        return None
    args = parse_arguments(op_def, schema, where)
    return Op(op_def.type, list(op_def.input), list(op_def.output), args,
              frozenset(a.name for a in op_def.arg), op_def.name, where)


def _custom_node(op_def, position):
    attrs = {}
    for arg in op_def.arg:
        if arg.HasField("n") or len(arg.nets):
            raise Unsupported(f"{describe_op(op_def, position)}: argument '{arg.name}' holds "
                              f"a net, which an ONNX attribute of a custom op cannot carry")
        attrs[arg.name] = argument_value(arg, "any", describe_op(op_def, position))
    return helper.make_node(op_def.type, list(op_def.input), list(op_def.output),
                            name=op_def.name or None, domain=CUSTOM_DOMAIN, **attrs)


# -- blobs: versions, shapes, inputs ------------------------------------------------------------
def _ssa_ops(ops, inputs):
    """Copies of ``ops`` with every blob version named once (see ``ssa_rewrite``)."""
    per_op, latest = ssa.versions_of(ops)
    taken_at_zero = set(inputs) | ssa.read_before_written(per_op)
    used = {name for op in ops for name in list(op.input) + list(op.output)} | set(inputs)
    names = {}

    def name_of(blob, version):
        if version == 0 or (version == latest[blob] and blob not in taken_at_zero):
            return blob
        if (blob, version) not in names:
            candidate, k = f"{blob}_{version}", version
            while candidate in used:
                k += 1
                candidate = f"{blob}_v{k}"
            used.add(candidate)
            names[(blob, version)] = candidate
        return names[(blob, version)]

    renamed = []
    for op, (reads, writes) in zip(ops, per_op):
        new = caffe2_pb2.OperatorDef()
        new.CopyFrom(op)
        new.input[:] = [name_of(*v) for v in reads]
        new.output[:] = [name_of(*v) for v in writes]
        renamed.append(new)
    return renamed, latest


def _final_names(original, renamed) -> dict:
    """Caffe2 blob -> the ONNX name of its last version."""
    final = {}
    for old, new in zip(original.op, renamed):
        final.update(zip(old.output, new.output))
    return final


def _read_before_written(net) -> set:
    """The blobs the net needs from outside: read by an op before any op writes them,
    or passed straight through (external inputs that are also external outputs)."""
    per_op, latest = ssa.versions_of(net.op)
    through = {name for name in net.external_output if latest.get(name, 0) == 0}
    return ssa.read_before_written(per_op) | (through & set(net.external_input))


def _ordered_inputs(net, reads) -> list:
    """External inputs in the net's order, then blobs read unwritten that it forgot to list."""
    order = list(dict.fromkeys(net.external_input))
    listed = set(order)
    per_op, _ = ssa.versions_of(net.op)
    for op_reads, _ in per_op:
        for name, version in op_reads:
            if version == 0 and name not in listed:
                order.append(name)
                listed.add(name)
    return [name for name in order if name in reads]


def _blob_specs(net, known, params, inputs) -> dict:
    """Every blob's TensorSpec that can be had: shape inference, then one run on stand-in
    inputs for what it cannot tell.  Where that run fails (an op whose output shape
    depends on input values), the blobs it did make still count; a mapping that needs
    an unknown shape says so, and graph outputs get their types from ONNX's inference."""
    specs = shape_inference.infer([net], dict(known))
    unknown = [name for op in net.op for name in op.output if name not in specs]
    if not unknown:
        return specs
    ws = Workspace()
    rng = np.random.default_rng(0)
    try:
        for name, value in params.items():
            ws.feed_blob(name, value)
        for name in inputs:
            spec = known[name]
            stand_in = (rng.standard_normal(spec.shape).astype(spec.dtype)
                        if spec.dtype.kind == "f" else np.zeros(spec.shape, spec.dtype))
            ws.feed_blob(name, stand_in)
        ws.run_net_once(net)
    except Caffe2LiteError as e:
        logger.debug("net '%s' on stand-in inputs: %s", net.name, e)
    for name in unknown:
        value = ws.fetch_blob(name) if ws.has_blob(name) else None
        if hasattr(value, "shape"):
            specs[name] = TensorSpec(value.shape, value.dtype)
    return specs


def _type_outputs_by_onnx(graph, opset):
    """Graph outputs whose type caffe2lite could not tell, typed by ONNX's inference."""
    untyped = [o for o in graph.output if not o.type.HasField("tensor_type")]
    if not untyped:
        return
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False).graph
    except Exception:  # noqa: BLE001 - then the outputs stay untyped and are reported
        inferred = probe.graph
    found = {vi.name: vi.type for vi in list(inferred.value_info) + list(inferred.output)
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type}
    missing = [o.name for o in untyped if o.name not in found]
    if missing:
        raise ConversionError(f"the type of output(s) {', '.join(missing)} is unknown: "
                              f"give them in value_info")
    for output in untyped:
        output.type.CopyFrom(found[output.name])


# -- init net -----------------------------------------------------------------------------------
def _drop_placeholder_fills(init, data_inputs):
    """Fills of the data inputs are placeholders (zoo init nets carry them): drop them."""
    kept = [op for op in init.op if not (op.output and set(op.output) <= data_inputs)]
    del init.op[:]
    init.op.extend(kept)


def _run_init_net(init, wanted) -> dict:
    """{blob: value} for every blob ``init`` writes that is in ``wanted``."""
    ws = Workspace()
    try:
        ws.run_net_once(init)
    except Caffe2LiteError as e:
        raise ConversionError(f"running the init net '{init.name}' failed: {e}") from e
    written = {name for op in init.op for name in op.output}
    return {name: ws.fetch_blob(name) for name in sorted(written & set(wanted))}


def _onnx_ready(value):
    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        return np.asarray(array, dtype=object)
    return array


# -- value_info ---------------------------------------------------------------------------------
def _read_value_info(value_info) -> dict:
    """{name: (onnx element type, shape tuple)}, checked."""
    if value_info is None:
        return {}
    if not isinstance(value_info, dict):
        raise ConversionError("value_info must be a dict {name: (onnx element type, shape)}, "
                              f"got {type(value_info).__name__}")
    out = {}
    for name, entry in value_info.items():
        try:
            elem, shape = entry
            elem = int(elem)
            shape = tuple(int(d) for d in shape)
            numpy_type(elem)
        except (TypeError, ValueError, Caffe2LiteError) as e:
            raise ConversionError(f"value_info['{name}'] = {entry!r} is not (onnx element "
                                  f"type, shape): {e}") from None
        if any(d < 0 for d in shape):
            raise ConversionError(f"value_info['{name}'] has a negative dimension: {shape}")
        out[name] = (elem, shape)
    return out


def _describe(elem, shape) -> str:
    return f"{onnx.TensorProto.DataType.Name(elem)} {tuple(shape)}"


def _check_params_against_value_info(params, declared):
    for name, value in params.items():
        if name in declared and hasattr(value, "dtype"):
            elem, shape = declared[name]
            mine = (onnx_type(value.dtype), tuple(value.shape))
            if mine != (elem, shape):
                raise ConversionError(f"value_info contradicts the init net: '{name}' is "
                                      f"{_describe(*mine)} there, value_info says "
                                      f"{_describe(elem, shape)}")


def _check_value_info_against_specs(declared, specs, final, inputs):
    for name, (elem, shape) in declared.items():
        onnx_name = name if name in inputs else final.get(name)
        if onnx_name is None:
            if name not in specs:
                raise ConversionError(f"value_info names '{name}', which the net neither "
                                      f"reads nor writes")
            continue
        spec = specs.get(onnx_name)
        if spec is not None and (onnx_type(spec.dtype), spec.shape) != (elem, shape):
            raise ConversionError(f"value_info contradicts the net: '{name}' is "
                                  f"{_describe(onnx_type(spec.dtype), spec.shape)} by the "
                                  f"net's ops, value_info says {_describe(elem, shape)}")


def _value_info(name, spec):
    if spec is None:
        return onnx.ValueInfoProto(name=name)  # typed later by _type_outputs_by_onnx
    return helper.make_tensor_value_info(name, onnx_type(spec.dtype), list(spec.shape))


# -- arguments ----------------------------------------------------------------------------------
def _copy_net(net, what):
    if hasattr(net, "Proto"):  # a core.Net
        net = net.Proto()
    message = as_message(net, caffe2_pb2.NetDef, what)
    copy = caffe2_pb2.NetDef()
    copy.CopyFrom(message)
    return copy


def _opset(version) -> int:
    if version is None:
        return DEFAULT_OPSET
    if not isinstance(version, int) or not OLDEST_OPSET <= version <= DEFAULT_OPSET:
        raise Unsupported(f"opset_version {version!r}: caffe2lite exports opsets "
                          f"{OLDEST_OPSET} to {DEFAULT_OPSET}")
    return version


def _is_shape_and_dtype(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and not isinstance(value[1], int)
            and isinstance(value[0], (tuple, list)))


class Caffe2Frontend:
    """Caffe2's class-based spelling of the same functions."""

    target_opset_version = DEFAULT_OPSET
    caffe2_net_to_onnx_model = staticmethod(caffe2_net_to_onnx_model)
    caffe2_net_to_onnx_graph = staticmethod(caffe2_net_to_onnx_graph)
    caffe2_op_to_onnx_node = staticmethod(caffe2_op_to_onnx_node)
    caffe2_init_net_to_initializer = staticmethod(caffe2_init_net_to_initializer)
    ssa_rewrite = staticmethod(ssa_rewrite)
