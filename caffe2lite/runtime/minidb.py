"""Caffe2's ``minidb``: a flat file of (key, value) records, read and written whole.

Each record is a 4-byte key length and a 4-byte value length (signed,
little endian, both > 0), then the key bytes and the value bytes; there is
no header and no footer (caffe2/core/db.cc).  Save and Load store one
serialized BlobProto per record.

Writes are crash-safe (``atomic_file.write_atomically``): the records go to a
temporary file in the target's folder, fsync'ed and renamed over the target.
A write interrupted at any point leaves the previous file untouched.  Reads check every length against the bytes that
are actually there, so a truncated or corrupt file raises ``DBError``
before any caller sees a record.
"""

from __future__ import annotations

import os
import struct

from caffe2lite.runtime.atomic_file import write_atomically
from caffe2lite.runtime.errors import DBError

DB_TYPE = "minidb"
_HEADER = struct.Struct("<ii")


def _as_bytes(key) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def encode(records) -> bytes:
    """The minidb bytes for an iterable of (key, value) pairs."""
    parts = []
    for key, value in records:
        key, value = _as_bytes(key), bytes(value)
        if not key or not value:
            raise DBError(f"minidb record {key!r}: keys and values must be non-empty "
                          f"(a reader rejects a zero length)")
        parts += [_HEADER.pack(len(key), len(value)), key, value]
    return b"".join(parts)


def decode(data: bytes, source: str = "<bytes>") -> list[tuple[str, bytes]]:
    """Every (key, value) record in ``data``; DBError if the bytes are not whole records."""
    records = []
    pos, size = 0, len(data)
    view = memoryview(data)
    while pos < size:
        where = f"{source}: record {len(records)} at byte {pos}"
        if size - pos < _HEADER.size:
            raise DBError(f"{where}: truncated record header ({size - pos} of "
                          f"{_HEADER.size} bytes); the file is incomplete")
        key_len, value_len = _HEADER.unpack_from(data, pos)
        if key_len <= 0 or value_len <= 0:
            raise DBError(f"{where}: invalid lengths key={key_len}, value={value_len} "
                          f"(both must be > 0); the file is corrupt or not a minidb")
        pos += _HEADER.size
        if size - pos < key_len + value_len:
            raise DBError(f"{where}: truncated record, needs {key_len + value_len} bytes, "
                          f"{size - pos} left; the file is incomplete")
        key = bytes(view[pos:pos + key_len])
        pos += key_len
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise DBError(f"{where}: key is not UTF-8 text; the file is corrupt") from None
        records.append((key, bytes(view[pos:pos + value_len])))
        pos += value_len
    return records


def read(path) -> list[tuple[str, bytes]]:
    """All records of the minidb file at ``path``."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DBError(f"minidb '{path}' does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise DBError(f"minidb {path!r} cannot be read: {e}") from e
    return decode(data, f"minidb '{path}'")


def write(path, records) -> None:
    """Atomically replace ``path`` with a minidb holding ``records``."""
    path = os.fspath(path)
    data = encode(records)  # fail on bad records before touching the disk
    if "\0" in path:
        raise DBError(f"cannot write minidb {path!r}: the path holds a NUL byte")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DBError(f"cannot write minidb '{path}': folder '{folder}' does not exist")
    try:
        write_atomically(path, data)
    except OSError as e:
        raise DBError(f"cannot write minidb '{path}': {e}") from e


def exists(path) -> bool:
    return os.path.isfile(os.fspath(path))
