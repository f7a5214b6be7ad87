"""Operator arguments: Python values <-> ``Argument`` protos.

``make_argument`` follows Caffe2's ``utils.MakeArgument`` typing rules (used
by ``core.CreateOperator``).  ``parse_arguments`` reads an OperatorDef's
arguments once, when the operator is created, into a read-only mapping with
the schema's defaults filled in; mistyped arguments are rejected there, naming
the op and the argument.  An argument the schema does not declare is ignored,
as Caffe2 ignored it (real nets and scripts carry many: engine options, layout
hints, helper-added extras), with one warning per op type and argument name
through the ``caffe2lite`` logger; the strict switch
(``--caffe2lite_strict_args=1``, see caffe2lite/flags.py) makes it an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import MappingProxyType

import numpy as np
from google.protobuf.message import Message

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import flags
from caffe2lite.runtime.errors import ArgumentError

logger = logging.getLogger("caffe2lite")
_warned: set[tuple[str, str]] = set()  # (op type, argument) pairs already reported

# Arguments that Caffe2 nets carry for the runtime rather than for one op's
# math (executors, engines, layouts).  They are accepted and ignored by every
# schema, so real nets load without listing them per op.
RUNTIME_ARGS = frozenset({"order", "use_cudnn", "cudnn_exhaustive_search", "exhaustive_search",
                          "ws_nbytes_limit", "is_test", "legacy_pad", "engine"})


def make_argument(key: str, value) -> caffe2_pb2.Argument:
    """Build an Argument proto from a Python value, as Caffe2's MakeArgument did."""
    arg = caffe2_pb2.Argument(name=key)
    if isinstance(value, np.ndarray):
        if value.dtype == np.float32:
            arg.floats.extend(value.flatten().tolist())
            return arg
        value = value.flatten().tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        arg.f = value
    elif isinstance(value, (bool, int)):
        arg.i = int(value)
    elif isinstance(value, bytes):
        arg.s = value
    elif isinstance(value, str):
        arg.s = value.encode("utf-8")
    elif isinstance(value, caffe2_pb2.NetDef):
        arg.n.CopyFrom(value)
    elif isinstance(value, Message):
        arg.s = value.SerializeToString()
    elif isinstance(value, Iterable):
        items = [v.item() if isinstance(v, np.generic) else v for v in value]
        if all(isinstance(v, float) for v in items):
            arg.floats.extend(items)
        elif all(isinstance(v, (bool, int)) for v in items):
            arg.ints.extend(int(v) for v in items)
        elif all(isinstance(v, (str, bytes)) for v in items):
            arg.strings.extend(v.encode("utf-8") if isinstance(v, str) else v for v in items)
        elif all(isinstance(v, caffe2_pb2.NetDef) for v in items):
            arg.nets.extend(items)
        elif all(isinstance(v, Message) for v in items):
            arg.strings.extend(v.SerializeToString() for v in items)
        else:
            raise ValueError(f"Unknown iterable argument type: key={key} value={value}, "
                             f"value type={type(value)}")
    else:
        raise ValueError(f"Unknown argument type: key={key} value={value}, "
                         f"value type={type(value)}")
    return arg


def _set_fields(arg) -> list[str]:
    return [f.name for f, _ in arg.ListFields() if f.name != "name"]


def _decode(s: bytes) -> str:
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError:
        return s


def argument_value(arg, expected: str, where: str):
    """The Python value of ``arg`` as the schema type ``expected`` (see schema.ARG_TYPES)."""
    fields = _set_fields(arg)
    field = fields[0] if fields else None

    def bad():
        got = f"field '{field}'" if field else "no value"
        return ArgumentError(f"{where}: argument '{arg.name}' must be {expected}, got {got}")

    if expected == "any":
        if field is None:
            return None
        if field in ("f", "i", "n", "t"):
            return getattr(arg, field)
        if field == "s":
            return _decode(arg.s)
        if field == "strings":
            return [_decode(s) for s in arg.strings]
        return list(getattr(arg, field))
    if field is None:
        # An empty repeated field is how an empty list is written.
        if expected in ("floats", "ints", "strings", "tensors", "nets"):
            return []
        raise bad()
    if expected == "float" and field in ("f", "i"):
        return float(getattr(arg, field))
    if expected == "int" and field == "i":
        return int(arg.i)
    if expected == "bool" and field == "i":
        return bool(arg.i)
    if expected == "scalar" and field in ("f", "i"):
        return getattr(arg, field)
    if expected == "string" and field == "s":
        return _decode(arg.s)
    if expected == "bytes" and field == "s":
        return bytes(arg.s)
    if expected == "floats" and field in ("floats", "ints"):
        return [float(v) for v in getattr(arg, field)]
    if expected == "ints" and field == "ints":
        return [int(v) for v in arg.ints]
    if expected == "strings" and field == "strings":
        return [_decode(s) for s in arg.strings]
    if expected == "tensor" and field == "t":
        return arg.t
    if expected == "tensors" and field == "tensors":
        return list(arg.tensors)
    if expected == "net" and field == "n":
        return arg.n
    if expected == "nets" and field == "nets":
        return list(arg.nets)
    raise bad()


def parse_arguments(op_def, schema, where: str) -> MappingProxyType:
    """Read op_def.arg once into a read-only {name: value} with schema defaults.

    Rejects duplicated arguments and mistyped values.  An argument the schema
    does not declare is kept when the schema opts in with ``allow_unknown_args``,
    else ignored with a warning -- or rejected when the ``caffe2lite_strict_args``
    flag is on.
    """
    values = {a.name: a.default for a in schema.args}
    seen = set()
    for arg in op_def.arg:
        if arg.name in seen:
            raise ArgumentError(f"{where}: argument '{arg.name}' is given twice")
        seen.add(arg.name)
        spec = schema.arg_by_name.get(arg.name)
        if spec is None:
            if arg.name in RUNTIME_ARGS:
                continue
            if schema.allow_unknown_args:
                values[arg.name] = argument_value(arg, "any", where)
                continue
            known = ", ".join(sorted(schema.arg_by_name)) or "none"
            if flags.get("caffe2lite_strict_args"):
                raise ArgumentError(f"{where}: unknown argument '{arg.name}' "
                                    f"({schema.type} takes: {known}; strict arguments are on)")
            if (schema.type, arg.name) not in _warned:
                _warned.add((schema.type, arg.name))
                logger.warning("%s: argument '%s' is not one %s takes (%s); ignored, as Caffe2 "
                               "did (--caffe2lite_strict_args=1 makes this an error)",
                               where, arg.name, schema.type, known)
            continue
        values[arg.name] = argument_value(arg, spec.type, where)
    return MappingProxyType(values)
