"""Checksummed checkpoints: one more minidb record holding a CRC-32 of every record.

minidb has no checksum, so a byte flipped inside a tensor payload used to load
without error and change a value.  ``Save`` now writes, first in the file, a
record keyed ``INTEGRITY_KEY`` whose value is an ordinary ``std::string``
BlobProto: Caffe2's ``Load`` skips it when it names its outputs and loads it as
a string blob with ``load_all``, so the files stay readable by Caffe2.  Its
content is JSON::

    {"format": "caffe2lite-integrity-v1", "algorithm": "crc32",
     "records": [[key, crc32(key bytes + value bytes)], ...]}

covering every other record of the file.  ``Load`` checks it, when present,
before it parses anything else: a record whose CRC differs, one the list does
not cover, or one it lists but the file lacks (a file cut between records)
raises ``DBError`` naming the blob, and no blob is assigned.  CRC-32 detects
every error confined to 32 consecutive bits, so every flipped byte is caught.
A record under another key that is the integrity record damaged (its key within
three bytes of ``INTEGRITY_KEY``, or its value naming it) is refused too, so damage
to the record's key cannot make the file pass for one of Caffe2's.
Files without the record (Caffe2's own) load as before.
"""

from __future__ import annotations

import json
import zlib

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import DBError
from caffe2lite.runtime.serialization import STRING_BLOB_TYPE, blob_name_from_db_key

INTEGRITY_KEY = "__caffe2lite_integrity__"
FORMAT = "caffe2lite-integrity-v1"
# Where a damaged integrity record still shows what it is: its value names it (the
# BlobProto's name, then the JSON's format) within its first bytes.
_HEAD_BYTES = 512
_SIGNS = (INTEGRITY_KEY.encode("utf-8"), FORMAT.encode("utf-8"))
_KEY_EDITS = 3  # a key of the integrity key's length this close to it is that key, damaged


def _crc(key: str, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(key.encode("utf-8")))


def _record_value(payload: dict) -> bytes:
    """The integrity record's value for ``payload``: the one way it is ever written, so
    Load can require the exact bytes back (no byte of the record is insignificant)."""
    blob = caffe2_pb2.BlobProto(name=INTEGRITY_KEY, type=STRING_BLOB_TYPE,
                                content=json.dumps(payload).encode("utf-8"))
    return blob.SerializeToString()


def with_integrity_record(records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``records`` preceded by the integrity record covering them."""
    payload = {"format": FORMAT, "algorithm": "crc32",
               "records": [[key, _crc(key, value)] for key, value in records]}
    return [(INTEGRITY_KEY, _record_value(payload))] + list(records)


def _expected(value: bytes, source: str) -> dict[str, int]:
    """{key: crc} from the integrity record's value; DBError if it is not one."""
    try:
        blob = caffe2_pb2.BlobProto.FromString(value)
        if blob.name != INTEGRITY_KEY or blob.type != STRING_BLOB_TYPE:
            raise ValueError(f"a BlobProto named {blob.name!r} of type {blob.type!r}")
        payload = json.loads(blob.content.decode("utf-8"))
        if payload.get("format") != FORMAT or payload.get("algorithm") != "crc32":
            raise ValueError(f"unknown format {payload.get('format')!r}")
        listed = [(str(key), int(crc)) for key, crc in payload["records"]]
        if _record_value(payload) != value:  # e.g. JSON white space moved: still altered
            raise ValueError("its bytes are not those Save writes for what it lists")
    except Exception as e:  # noqa: BLE001 - any failure means a damaged record
        raise DBError(f"{source}: the integrity record '{INTEGRITY_KEY}' is corrupt "
                      f"({type(e).__name__}: {e}); the file cannot be trusted") from None
    expected = dict(listed)
    if len(expected) != len(listed):
        raise DBError(f"{source}: the integrity record '{INTEGRITY_KEY}' lists a record "
                      f"twice; the file cannot be trusted")
    return expected


def _damaged_integrity_record(key: str, value: bytes) -> bool:
    """Whether a record under another key is the integrity record with damage: its key
    within ``_KEY_EDITS`` bytes of the integrity key, or its value naming it.  Without
    this, damage to the key alone would make a checksummed file pass for one of
    Caffe2's, and a payload corrupted with it would load unchecked: now no error of up
    to three bytes in the integrity record goes unnoticed."""
    if key == INTEGRITY_KEY:
        return False
    if len(key) == len(INTEGRITY_KEY) and \
            sum(a != b for a, b in zip(key, INTEGRITY_KEY)) <= _KEY_EDITS:
        return True
    head = value[:_HEAD_BYTES]
    return any(sign in head for sign in _SIGNS)


def verified(records: list[tuple[str, bytes]], source: str) -> list[tuple[str, bytes]]:
    """The records other than the integrity record, each checked against it when the
    file has one (files without it are returned as they are)."""
    marks = [value for key, value in records if key == INTEGRITY_KEY]
    for key, value in records:
        if _damaged_integrity_record(key, value):
            raise DBError(f"{source}: record '{key}' holds the integrity record under a "
                          f"damaged key; the file cannot be trusted")
    if not marks:
        return records
    if len(marks) > 1:
        raise DBError(f"{source}: {len(marks)} integrity records '{INTEGRITY_KEY}'; the "
                      f"file cannot be trusted")
    expected = _expected(marks[0], source)
    rest = [(key, value) for key, value in records if key != INTEGRITY_KEY]
    for key, value in rest:
        name = blob_name_from_db_key(key)
        crc = expected.pop(key, None)
        if crc is None:
            raise DBError(f"{source}: blob '{name}' (record '{key}') is not covered by the "
                          f"integrity record: the file was altered or holds a record twice")
        if crc != _crc(key, value):
            raise DBError(f"{source}: blob '{name}' (record '{key}') fails its CRC-32 "
                          f"check: the file is corrupt")
    if expected:
        key = next(iter(expected))
        raise DBError(f"{source}: blob '{blob_name_from_db_key(key)}' (record '{key}') is "
                      f"listed by the integrity record but missing from the file: it was "
                      f"truncated or altered")
    return rest
