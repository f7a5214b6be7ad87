"""Reading and writing Caffe2 protos (NetDef, PlanDef, OperatorDef, ...).

Real Caffe2 files come in binary (``.pb``) and text (``.pbtxt``) form, and
the extension does not always tell the truth (some ``.pb`` files are text).
``parse_proto`` tries the likely form first and the other second; a file
that is neither raises ``ProtoParseError`` saying what was tried and why
each attempt failed.
"""

from __future__ import annotations

import os
import re

from google.protobuf import text_format

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.atomic_file import write_atomically
from caffe2lite.runtime.errors import ProtoParseError


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\n\r\t" for c in text[:4096])


# Quoted strings and comments of protobuf text, whose braces do not nest anything.
_NOT_STRUCTURE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*')
_BRACES = re.compile(r"[{}<>]")


def check_text_nesting(text: str, message_cls, source: str) -> None:
    """ProtoParseError when messages in ``text`` nest deeper than safety.MAX_NESTING.

    protobuf's text parser recurses once per level, so a file nested a few
    hundred levels deep (``arg { n { op { arg { n ...``) would end in a raw
    RecursionError; this linear scan refuses it first.
    """
    from caffe2lite.runtime.safety import MAX_NESTING

    depth = 0
    for brace in _BRACES.findall(_NOT_STRUCTURE.sub("", text)):
        depth += 1 if brace in "{<" else -1
        if depth > MAX_NESTING:
            raise ProtoParseError(f"{source}: not accepted as a {message_cls.__name__}: "
                                  f"messages nested deeper than {MAX_NESTING} levels")


def escaped(text: str) -> str:
    """``text`` with every unprintable character written as an escape (``\\x00``), so that
    a message quoting a binary file's bytes is one readable line on any terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def parse_text(text, message_cls, source: str = "<text>"):
    """Parse protobuf text format into a new ``message_cls``."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtoParseError(f"{source}: not a valid {message_cls.__name__} in text "
                                  f"format: byte 0x{text[e.start]:02x} at offset {e.start} "
                                  f"is not UTF-8") from None
    check_text_nesting(text, message_cls, source)
    msg = message_cls()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise ProtoParseError(f"{source}: not a valid {message_cls.__name__} in text "
                              f"format: {escaped(str(e))}") from e
    except RecursionError:  # a guard behind check_text_nesting
        raise ProtoParseError(f"{source}: not a valid {message_cls.__name__} in text "
                              f"format: nested too deeply to parse") from None
    _check_required(msg, source)
    return msg


def _check_required(msg, source: str) -> None:
    """proto2 required fields (Segment.end, MapFieldEntry.val, ...) must be present."""
    missing = msg.FindInitializationErrors()
    if missing:
        raise ProtoParseError(f"{source}: {type(msg).__name__} is missing required "
                              f"fields {missing}")


def parse_binary(data: bytes, message_cls, source: str = "<bytes>"):
    """Parse protobuf wire format into a new ``message_cls``."""
    msg = message_cls()
    try:
        msg.ParseFromString(data)
    except Exception as e:  # DecodeError, or missing required fields
        if isinstance(e, RecursionError) or "Depth" in str(e):
            raise ProtoParseError(f"{source}: not a valid {message_cls.__name__} in binary "
                                  f"format ({len(data)} bytes): messages nested too deeply "
                                  f"({type(e).__name__}: {e})") from None
        raise ProtoParseError(f"{source}: not a valid {message_cls.__name__} in binary "
                              f"format ({len(data)} bytes): {e}"
                              f"{_stray_tail_hint(data, message_cls)}") from e
    _check_required(msg, source)
    _check_strings(msg, source, type(msg).__name__)
    return msg


def _check_strings(msg, source: str, path: str) -> None:
    """proto2 ``string`` fields must be UTF-8: the wire format does not check it and the
    parser hands back bytes where it is not, which no blob or op name may be."""
    for field, value in msg.ListFields():
        repeated = _is_repeated(field)
        if field.type == field.TYPE_STRING:
            for k, item in enumerate(value if repeated else [value]):
                if not isinstance(item, str):
                    where = f"{path}.{field.name}" + (f"[{k}]" if repeated else "")
                    raise ProtoParseError(f"{source}: {where} is not valid UTF-8 text: "
                                          f"{bytes(item)[:40]!r}")
        elif field.type == field.TYPE_MESSAGE:
            for k, item in enumerate(value if repeated else [value]):
                _check_strings(item, source, f"{path}.{field.name}" +
                               (f"[{k}]" if repeated else ""))


def _is_repeated(field) -> bool:
    """FieldDescriptor.is_repeated (protobuf >= 5.29); ``label`` before (removed in 7)."""
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


def _stray_tail_hint(data: bytes, message_cls, max_tail: int = 16) -> str:
    """Say so when all but the last few bytes parse: a padded copy.  Only for a tail
    small beside what parses -- a few bytes of anything often parse as some message, so
    a short binary file of another kind is not called a net with a stray tail."""
    for tail in range(1, min(max_tail, len(data) // 16) + 1):
        try:
            message_cls.FromString(data[:-tail])
        except Exception:  # noqa: BLE001 - any failure means "not this cut"
            continue
        return (f"; the first {len(data) - tail} bytes parse as a {message_cls.__name__}, "
                f"so the data has {tail} stray trailing byte(s) at offset {len(data) - tail}")
    return ""


def parse_proto(data, message_cls, source: str = "<data>"):
    """Parse ``data`` (bytes or str, text or binary) as ``message_cls``."""
    if isinstance(data, message_cls):
        return data
    if isinstance(data, str):
        return parse_text(data, message_cls, source)
    if not isinstance(data, (bytes, bytearray)):
        raise ProtoParseError(f"{source}: expected bytes, text or a {message_cls.__name__}, "
                              f"got {type(data).__name__}")
    data = bytes(data)
    attempts = [parse_text, parse_binary] if _looks_like_text(data) else [parse_binary, parse_text]
    errors = []
    for attempt in attempts:
        try:
            return attempt(data, message_cls, source)
        except ProtoParseError as e:
            errors.append(str(e))
    raise ProtoParseError(escaped(f"{source}: cannot be parsed as a {message_cls.__name__} "
                                  f"in binary or text format. " + " | ".join(errors)))


def as_message(obj, message_cls, what: str):
    """``obj`` as a ``message_cls``: the proto itself, an object's ``.Proto()`` (core.Net),
    or serialized bytes/text parsed -- what Caffe2's API calls accepted for a proto."""
    if isinstance(obj, message_cls):
        return obj
    if hasattr(obj, "Proto"):
        return obj.Proto()
    if isinstance(obj, (bytes, bytearray, str)):
        return parse_proto(obj, message_cls, what)
    raise ValueError(f"{what}: expected a {message_cls.__name__}, an object with Proto() or "
                     f"serialized bytes, got {type(obj).__name__}")


def load_proto(path, message_cls):
    """Read a file holding one ``message_cls`` in binary or text format."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return parse_proto(data, message_cls, source=path)


def load_net(path) -> caffe2_pb2.NetDef:
    """Load a NetDef from a ``.pb`` or ``.pbtxt`` file."""
    return load_proto(path, caffe2_pb2.NetDef)


def load_plan(path) -> caffe2_pb2.PlanDef:
    """Load a PlanDef from a ``.pb`` or ``.pbtxt`` file."""
    return load_proto(path, caffe2_pb2.PlanDef)


def to_text(msg) -> str:
    return text_format.MessageToString(msg)


def save_proto(msg, path, as_text: bool | None = None) -> None:
    """Write ``msg`` whole or not at all (a temporary file, then a rename); text format
    when ``as_text`` or the name ends in .pbtxt/.prototxt/.txt."""
    path = os.fspath(path)
    if as_text is None:
        as_text = path.endswith((".pbtxt", ".prototxt", ".txt"))
    data = to_text(msg).encode("utf-8") if as_text else msg.SerializeToString()
    write_atomically(path, data)
