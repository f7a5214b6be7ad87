"""Checksummed checkpoints (issue 13, item 4): Save's integrity record, Load's check.

The file layout is read here with an independent minidb reader (struct + the
proto classes + zlib), so the tests do not trust caffe2lite's own reader.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zlib

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, DBError
from caffe2lite.proto import caffe2_pb2
from helpers import assert_unchanged, snapshot

KEY = "__caffe2lite_integrity__"  # documented in docs/errors-and-safety.md and caffe2lite/runtime/integrity.py


def raw_records(data: bytes):
    """[(key, value bytes, value offset)] of a minidb, read with struct alone."""
    out, pos = [], 0
    while pos < len(data):
        klen, vlen = struct.unpack_from("<ii", data, pos)
        key = data[pos + 8:pos + 8 + klen].decode()
        start = pos + 8 + klen
        out.append((key, data[start:start + vlen], start))
        pos = start + vlen
    return out


def write_raw(path, records) -> None:
    with open(path, "wb") as f:
        for key, value in records:
            key = key.encode()
            f.write(struct.pack("<ii", len(key), len(value)) + key + value)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of w (float32), ids (int64) and name (a string) in tmp_path."""
    workspace.ResetWorkspace(str(tmp_path))
    workspace.FeedBlob("w", np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5)
    workspace.FeedBlob("ids", np.array([7, -3, 11], np.int64))
    workspace.FeedBlob("name", b"table")
    workspace.RunOperatorOnce(core.CreateOperator(
        "Save", ["w", "ids", "name"], [], db="ck.minidb", db_type="minidb"))
    return tmp_path / "ck.minidb"


def load(outputs=("w", "ids", "name"), **args):
    workspace.RunOperatorOnce(core.CreateOperator(
        "Load", [], list(outputs), db="ck.minidb", db_type="minidb", **args))


def feed_other_values():
    """Blobs that a failed Load must leave exactly as they are."""
    workspace.FeedBlob("w", np.zeros((2, 3), np.float32))
    workspace.FeedBlob("ids", np.zeros(3, np.int64))
    workspace.FeedBlob("name", b"before")


def test_the_integrity_record_is_an_ordinary_string_blob_listing_every_record(saved):
    records = raw_records(saved.read_bytes())
    assert records[0][0] == KEY  # first: a cut between later records is noticed
    blob = caffe2_pb2.BlobProto.FromString(records[0][1])
    assert (blob.name, blob.type) == (KEY, "std::string")  # what Caffe2's reader loads
    payload = json.loads(blob.content)
    assert payload["format"] == "caffe2lite-integrity-v1" and payload["algorithm"] == "crc32"
    expected = [[key, zlib.crc32(key.encode() + value)] for key, value, _ in records[1:]]
    assert payload["records"] == expected
    assert [key for key, *_ in records[1:]] == ["w#%0", "ids#%0", "name"]


def test_a_flipped_payload_byte_is_caught_naming_the_blob_and_nothing_is_assigned(saved):
    """The issue's repro: a byte inside w's float payload used to load silently."""
    data = bytearray(saved.read_bytes())
    at = data.find(np.float32(2.5).tobytes())
    assert at > 0
    data[at + 1] ^= 0x40
    saved.write_bytes(bytes(data))
    feed_other_values()
    before = snapshot()
    with pytest.raises(DBError, match=r"op Load: db '.*ck.minidb': blob 'w' \(record 'w#%0'\) "
                                      r"fails its CRC-32 check"):
        load()
    assert_unchanged(before)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_flipped_byte_of_the_file_is_caught(saved, mask):
    good = saved.read_bytes()
    feed_other_values()
    before = snapshot()
    for at in range(len(good)):
        data = bytearray(good)
        data[at] ^= mask
        saved.write_bytes(bytes(data))
        for outputs, args in ((("w", "ids", "name"), {}), ((), {"load_all": 1})):
            with pytest.raises(DBError):
                load(outputs, **args)
                pytest.fail(f"byte {at} ^ {mask:#x} went unnoticed ({args})")
            assert_unchanged(before)


def test_a_file_cut_between_records_is_caught(saved):
    good = saved.read_bytes()
    ends = [offset + len(value) for _, value, offset in raw_records(good)]
    feed_other_values()
    before = snapshot()
    for end in ends[:-1]:
        saved.write_bytes(good[:end])
        with pytest.raises(DBError, match="listed by the integrity record but missing|"
                                          "missing from the db"):
            load((), load_all=1)
        assert_unchanged(before)


def test_a_damaged_integrity_key_is_not_mistaken_for_a_caffe2_file(saved):
    records = raw_records(saved.read_bytes())
    write_raw(saved, [("__caffe2lite_integritY__", records[0][1])]
              + [(k, v) for k, v, _ in records[1:]])
    with pytest.raises(DBError, match="damaged key"):
        load()


@pytest.mark.parametrize("damage", ["key and value's first byte swapped", "value's name",
                                    "three key bytes"])
def test_damage_to_both_the_integrity_key_and_its_value_is_caught(saved, damage):
    # The fuzz found a swap of a key byte with the value's first byte: the record then
    # neither had the key nor began with the BlobProto name; it still names itself
    # within its first bytes, and a key three bytes from the integrity key is that key.
    data = bytearray(saved.read_bytes())
    (_, value, start), = [r for r in raw_records(bytes(data)) if r[0] == KEY]
    key_start = start - len(KEY)
    if damage == "key and value's first byte swapped":
        data[key_start + 10], data[start] = data[start], data[key_start + 10]
    elif damage == "value's name":
        data[key_start + 3] ^= 0x20
        name_at = bytes(data).index(KEY.encode(), start)
        data[name_at + 2] ^= 0x20
    else:
        for k in (1, 9, 20):
            data[key_start + k] ^= 0x01
    saved.write_bytes(bytes(data))
    feed_other_values()
    before = snapshot()
    with pytest.raises(DBError, match="damaged key|corrupt"):
        load()
    assert_unchanged(before)


def test_an_integrity_record_altered_without_changing_its_meaning_is_caught(saved):
    # JSON white space moved: the same CRCs, other bytes. The record is written one
    # way only, so any other bytes mean the file was altered.
    records = raw_records(saved.read_bytes())
    blob = caffe2_pb2.BlobProto.FromString(records[0][1])
    assert b", " in blob.content
    blob.content = blob.content.replace(b", ", b" ,", 1)
    assert json.loads(blob.content) == json.loads(
        caffe2_pb2.BlobProto.FromString(records[0][1]).content)
    write_raw(saved, [(KEY, blob.SerializeToString())] + [(k, v) for k, v, _ in records[1:]])
    with pytest.raises(DBError, match="integrity record .* is corrupt"):
        load()


def test_load_all_and_named_loads_never_show_the_record(saved):
    workspace.ResetWorkspace()
    load((), load_all=1)
    assert sorted(workspace.Blobs()) == ["ids", "name", "w"]
    np.testing.assert_array_equal(workspace.FetchBlob("w"),
                                  np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5)
    workspace.ResetWorkspace()
    load(["ids"])
    assert workspace.Blobs() == ["ids"]


def test_files_without_the_record_still_load(tmp_path):
    """Caffe2's own files (no integrity record) load as before."""
    tensor = caffe2_pb2.TensorProto(dims=[3], data_type=caffe2_pb2.TensorProto.FLOAT,
                                    float_data=[1.0, 2.0, 3.0], name="w")
    tensor.segment.begin, tensor.segment.end = 0, 3
    blob = caffe2_pb2.BlobProto(name="w", type="Tensor", tensor=tensor)
    write_raw(tmp_path / "ck.minidb", [("w#%0", blob.SerializeToString())])
    workspace.ResetWorkspace(str(tmp_path))
    load(["w"])
    np.testing.assert_array_equal(workspace.FetchBlob("w"), [1.0, 2.0, 3.0])


def test_save_refuses_the_reserved_name(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    workspace.FeedBlob(KEY, np.ones(1, np.float32))
    with pytest.raises(ArgumentError, match="integrity record"):
        workspace.RunOperatorOnce(core.CreateOperator("Save", [KEY], [], db="x.minidb",
                                                      db_type="minidb"))
    assert not (tmp_path / "x.minidb").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_checkpoint_gets_the_mode_open_would_give_it(tmp_path, umask):
    """Save writes through a temporary file (tempfile.mkstemp: always 0600); the final file
    must be 0666 less the umask, as an ordinary open(path, "w") would make it."""
    workspace.FeedBlob("w", np.ones(3, np.float32))
    path = tmp_path / f"ckpt_{umask:o}.minidb"
    old = os.umask(umask)
    try:
        workspace.RunOperatorOnce(core.CreateOperator("Save", ["w"], [], db=str(path),
                                                      db_type="minidb", absolute_path=True))
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
