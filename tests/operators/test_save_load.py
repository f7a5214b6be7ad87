"""Save / Load / Checkpoint / DBExists against Caffe2's minidb format.

The expected file layout is written out here from Caffe2's sources
(caffe2/core/db.cc, blob_serialization.cc, operators/load_save_op.*):
records of <int32 key len><int32 value len><key><BlobProto>, tensors keyed
'<name>#%<chunk>' with a segment and device_detail, strings keyed by name.
"""

import os
import struct

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, Caffe2LiteError, DBError, DeviceUnavailable
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import devices
from helpers import assert_unchanged, snapshot

TP = caffe2_pb2.TensorProto


# -- an independent minidb reader / writer (plain struct + the proto classes) ---
def read_records(path):
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        klen, vlen = struct.unpack_from("<ii", data, pos)
        pos += 8
        key = data[pos:pos + klen].decode()
        pos += klen
        blob = caffe2_pb2.BlobProto.FromString(data[pos:pos + vlen])
        pos += vlen
        if key != "__caffe2lite_integrity__":  # Save's checksums: tests/test_safety_checkpoints.py
            out.append((key, blob))
    return out


def write_records(path, records):
    with open(path, "wb") as f:
        for key, blob in records:
            k, v = key.encode(), blob.SerializeToString()
            f.write(struct.pack("<ii", len(k), len(v)) + k + v)


def run(op_type, inputs, outputs, **kwargs):
    return workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **kwargs))




@pytest.fixture
def root(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    return tmp_path


# Caffe2's TensorProto field for each dtype (bool, small ints and float16 bits in int32_data).
FIELD = {np.float32: "float_data", np.float64: "double_data", np.int32: "int32_data",
         np.int64: "int64_data", np.int8: "int32_data", np.int16: "int32_data",
         np.uint8: "int32_data", np.uint16: "int32_data", np.bool_: "int32_data",
         np.float16: "int32_data"}
DATA_TYPE = {np.float32: TP.FLOAT, np.float64: TP.DOUBLE, np.int32: TP.INT32,
             np.int64: TP.INT64, np.int8: TP.INT8, np.int16: TP.INT16, np.uint8: TP.UINT8,
             np.uint16: TP.UINT16, np.bool_: TP.BOOL, np.float16: TP.FLOAT16}


def sample(dtype, shape):
    rng = np.random.default_rng(0)
    if dtype is np.bool_:
        return np.asarray(rng.random(shape) > 0.5)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.asarray(rng.integers(info.min, info.max, size=shape, endpoint=True,
                                       dtype=dtype))
    return np.asarray(rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", list(FIELD))
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)])
def test_every_dtype_round_trips_in_caffe2_layout(root, dtype, shape):
    x = sample(dtype, shape)
    workspace.FeedBlob("x", x)
    run("Save", ["x"], [], db="ck.minidb", db_type="minidb")
    [(key, blob)] = read_records(root / "ck.minidb")
    assert key == "x#%0" and blob.name == "x" and blob.type == "Tensor"
    t = blob.tensor
    assert list(t.dims) == list(shape) and t.data_type == DATA_TYPE[dtype]
    assert (t.segment.begin, t.segment.end) == (0, x.size)
    assert t.HasField("device_detail") and t.device_detail.device_type == caffe2_pb2.CPU
    stored = np.asarray(getattr(t, FIELD[dtype]))
    expect = x.reshape(-1).view(np.uint16) if dtype is np.float16 else x.reshape(-1)
    np.testing.assert_array_equal(stored, expect.astype(stored.dtype))

    workspace.FeedBlob("x", np.zeros(1, np.int8))
    run("Load", [], ["x"], db="ck.minidb", db_type="minidb")
    y = workspace.FetchBlob("x")
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_strings_round_trip(root):
    workspace.FeedBlob("s", "héllo")
    workspace.FeedBlob("b", b"\x00raw\xff")
    workspace.FeedBlob("t", np.array([["a", "bc"], ["", "d\u00e9"]], dtype=object))
    run("Save", ["s", "b", "t"], [], db="s.minidb", db_type="minidb")
    records = dict(read_records(root / "s.minidb"))
    assert records["s"].type == "std::string" and records["s"].content == "héllo".encode()
    assert records["t#%0"].tensor.data_type == TP.STRING
    assert list(records["t#%0"].tensor.string_data) == [b"a", b"bc", b"", "dé".encode()]
    workspace.ResetWorkspace()
    run("Load", [], ["s", "b", "t"], db="s.minidb", db_type="minidb")
    # As in Caffe2's Python API, strings come back as bytes.
    assert workspace.FetchBlob("s") == "héllo".encode()
    assert workspace.FetchBlob("b") == b"\x00raw\xff"
    t = workspace.FetchBlob("t")
    assert t.shape == (2, 2) and t.tolist() == [[b"a", b"bc"], [b"", "dé".encode()]]


def test_chunked_tensor_records_and_reassembly(root):
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    workspace.FeedBlob("x", x)
    run("Save", ["x"], [], db="c.minidb", db_type="minidb", chunk_size=3)
    records = read_records(root / "c.minidb")
    assert [k for k, _ in records] == ["x#%0", "x#%1", "x#%2", "x#%3"]
    segments = [(b.tensor.segment.begin, b.tensor.segment.end) for _, b in records]
    assert segments == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert all(list(b.tensor.dims) == [2, 5] for _, b in records)
    assert list(records[3][1].tensor.float_data) == [9.0]
    run("Save", ["x"], [], db="n.minidb", db_type="minidb", chunk_size=0)
    assert [k for k, _ in read_records(root / "n.minidb")] == ["x#%0"]
    workspace.ResetWorkspace()
    run("Load", [], ["x"], db="c.minidb", db_type="minidb")
    np.testing.assert_array_equal(workspace.FetchBlob("x"), x)


def caffe2_style_file(path, device_type=caffe2_pb2.CPU):
    """What Caffe2 wrote for gpu_0/w (3x2 float, 2 chunks, out of order) and a string."""
    w = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
    records = []
    for chunk, (b, e) in [(1, (4, 6)), (0, (0, 4))]:
        blob = caffe2_pb2.BlobProto(name="gpu_0/w", type="Tensor")
        blob.tensor.dims.extend([3, 2])
        blob.tensor.data_type = TP.FLOAT
        blob.tensor.name = "gpu_0/w"
        blob.tensor.float_data.extend(w.reshape(-1)[b:e].tolist())
        blob.tensor.segment.begin, blob.tensor.segment.end = b, e
        blob.tensor.device_detail.device_type = device_type
        records.append((f"gpu_0/w#%{chunk}", blob))
    records.append(("gpu_0/note", caffe2_pb2.BlobProto(name="gpu_0/note", type="std::string",
                                                       content=b"caffe2")))
    write_records(path, records)
    return w


def test_loads_a_file_written_the_caffe2_way(root):
    w = caffe2_style_file(root / "c2.minidb")
    run("Load", [], ["w", "note"], db="c2.minidb", db_type="minidb", strip_prefix="gpu_0/")
    np.testing.assert_array_equal(workspace.FetchBlob("w"), w)
    assert workspace.FetchBlob("note") == b"caffe2"
    run("Load", [], ["m"], db="c2.minidb", db_type="minidb", source_blob_names=["gpu_0/w"])
    np.testing.assert_array_equal(workspace.FetchBlob("m"), w)


def test_save_strip_prefix_and_overrides(root):
    workspace.FeedBlob("gpu_0/w", np.ones(2, np.float32))
    workspace.FeedBlob("gpu_0/b", np.zeros(2, np.float32))
    run("Save", ["gpu_0/w", "gpu_0/b"], [], db="p.minidb", db_type="minidb",
        strip_prefix="gpu_0/")
    assert [k for k, _ in read_records(root / "p.minidb")] == ["w#%0", "b#%0"]
    run("Save", ["gpu_0/w", "gpu_0/b"], [], db="o.minidb", db_type="minidb",
        blob_name_overrides=["W", "B"])
    assert [k for k, _ in read_records(root / "o.minidb")] == ["W#%0", "B#%0"]
    run("Load", [], ["gpu_1/W"], db="o.minidb", db_type="minidb", add_prefix="gpu_1/",
        allow_incomplete=True)
    np.testing.assert_array_equal(workspace.FetchBlob("gpu_1/W"), np.ones(2, np.float32))
    before = snapshot()
    with pytest.raises(ArgumentError, match="mutually exclusive"):
        run("Save", ["gpu_0/w"], [], db="x.minidb", db_type="minidb", strip_prefix="gpu_0/",
            blob_name_overrides=["a"])
    with pytest.raises(ArgumentError, match="blob_name_overrides"):
        run("Save", ["gpu_0/w", "gpu_0/b"], [], db="x.minidb", db_type="minidb",
            blob_name_overrides=["a"])
    with pytest.raises(ArgumentError, match="Duplicated input: 'w'"):
        workspace.FeedBlob("gpu_1/w", np.ones(1, np.float32))
        run("Save", ["gpu_0/w", "gpu_1/w"], [], db="x.minidb", db_type="minidb",
            strip_prefix="/")
    assert not (root / "x.minidb").exists()
    before["gpu_1/w"] = np.ones(1, np.float32)
    assert_unchanged(before)


def test_load_all_incomplete_and_missing(root):
    workspace.FeedBlob("a", np.array([1, 2], np.int64))
    workspace.FeedBlob("b", np.array([3.5], np.float64))
    run("Save", ["a", "b"], [], db="d.minidb", db_type="minidb")
    workspace.ResetWorkspace()
    run("Load", [], [], db="d.minidb", db_type="minidb", load_all=1)
    assert sorted(workspace.Blobs()) == ["a", "b"]
    np.testing.assert_array_equal(workspace.FetchBlob("b"), [3.5])

    workspace.FeedBlob("c", np.array([9], np.int32))
    before = snapshot()
    with pytest.raises(DBError, match=r"Expected to load 2 blobs, got 1.*\['c'\]"):
        run("Load", [], ["a", "c"], db="d.minidb", db_type="minidb")
    with pytest.raises(DBError, match=r"\['c'\] do not exist"):
        run("Load", [], ["c"], db="d.minidb", db_type="minidb", load_all=1)
    assert_unchanged(before)
    workspace.FeedBlob("a", np.zeros(1, np.int64))
    run("Load", [], ["a", "c"], db="d.minidb", db_type="minidb", allow_incomplete=True)
    np.testing.assert_array_equal(workspace.FetchBlob("a"), [1, 2])
    np.testing.assert_array_equal(workspace.FetchBlob("c"), [9])  # untouched
    with pytest.raises(ArgumentError, match="load_all"):
        run("Load", [], ["a"], db="d.minidb", db_type="minidb", load_all=1,
            source_blob_names=["a"])


def test_several_dbs_and_duplicate_keys(root):
    workspace.FeedBlob("a", np.ones(1, np.float32))
    workspace.FeedBlob("b", np.full(1, 2, np.float32))
    run("Save", ["a"], [], db="1.minidb", db_type="minidb")
    run("Save", ["b"], [], db="2.minidb", db_type="minidb")
    run("Save", ["a", "b"], [], db="3.minidb", db_type="minidb")
    workspace.ResetWorkspace()
    run("Load", [], ["a", "b"], dbs=["1.minidb", "2.minidb"], db_type="minidb")
    assert workspace.FetchBlob("b")[0] == 2
    with pytest.raises(DBError, match="Duplicate Key 'a'"):
        run("Load", [], ["a", "b"], dbs=["1.minidb", "3.minidb"], db_type="minidb")
    with pytest.raises(ArgumentError, match="Duplicated db name"):
        run("Load", [], ["a"], dbs=["1.minidb", "1.minidb"], db_type="minidb")


def test_keep_device(root):
    caffe2_style_file(root / "g.minidb", device_type=caffe2_pb2.CUDA)
    run("Load", [], ["w"], db="g.minidb", db_type="minidb", strip_prefix="gpu_0/",
        allow_incomplete=True)
    assert isinstance(workspace.current().blob_dict["w"], np.ndarray)  # op's device: CPU
    workspace.FeedBlob("v", np.zeros(1, np.float32))
    before = snapshot()
    if workspace.NumCudaDevices() == 0:
        with pytest.raises(DeviceUnavailable):
            run("Load", [], ["v"], db="g.minidb", db_type="minidb",
                source_blob_names=["gpu_0/w"], keep_device=1)
        assert_unchanged(before)
    else:
        run("Load", [], ["v"], db="g.minidb", db_type="minidb",
            source_blob_names=["gpu_0/w"], keep_device=1)
        assert not isinstance(workspace.current().blob_dict["v"], np.ndarray)


def test_paths_root_folder_and_absolute(root, tmp_path_factory):
    other = tmp_path_factory.mktemp("abs") / "abs.minidb"
    workspace.FeedBlob("x", np.ones(3, np.float32))
    run("Save", ["x"], [], db="rel.minidb", db_type="minidb")
    run("Save", ["x"], [], db=str(other), db_type="minidb", absolute_path=1)
    assert (root / "rel.minidb").is_file() and other.is_file()
    run("DBExists", [], ["e1"], db_name="rel.minidb")
    run("DBExists", [], ["e2"], db_name="nope.minidb")
    assert workspace.FetchBlob("e1").item() is True and workspace.FetchBlob("e2").item() is False
    with pytest.raises(DBError, match="does not exist"):
        run("Load", [], ["x"], db="missing.minidb", db_type="minidb")
    with pytest.raises(DBError, match="folder .* does not exist"):
        run("Save", ["x"], [], db="no/such/dir.minidb", db_type="minidb")
    with pytest.raises(ArgumentError, match="Must specify a db type"):
        run("Save", ["x"], [], db="a.minidb")
    with pytest.raises(ArgumentError, match="'leveldb' is not supported"):
        run("Load", [], ["x"], db="rel.minidb", db_type="leveldb")
    workspace.CreateBlob("empty")
    with pytest.raises(Caffe2LiteError, match="'empty'"):
        run("Save", ["empty"], [], db="e.minidb", db_type="minidb")
    assert not (root / "e.minidb").exists()


def test_truncated_at_every_byte_fails_cleanly(root):
    workspace.FeedBlob("w", np.arange(5, dtype=np.float32))
    workspace.FeedBlob("s", "abc")
    workspace.FeedBlob("i", np.array([7, -8], np.int16))
    run("Save", ["w", "s", "i"], [], db="full.minidb", db_type="minidb", chunk_size=2)
    data = (root / "full.minidb").read_bytes()
    workspace.FeedBlob("w", np.zeros(2, np.float32))
    workspace.FeedBlob("s", "old")
    workspace.FeedBlob("i", np.zeros(1, np.int16))
    before = snapshot()
    for cut in range(len(data)):
        (root / "cut.minidb").write_bytes(data[:cut])
        with pytest.raises(DBError):
            run("Load", [], ["w", "s", "i"], db="cut.minidb", db_type="minidb")
        assert_unchanged(before)
    (root / "cut.minidb").write_bytes(data)
    run("Load", [], ["w", "s", "i"], db="cut.minidb", db_type="minidb")
    np.testing.assert_array_equal(workspace.FetchBlob("w"), np.arange(5, dtype=np.float32))


@pytest.mark.parametrize("corrupt", ["negative_len", "zero_len", "garbage_value",
                                     "overlap", "bad_type"])
def test_corrupt_files_fail_cleanly(root, corrupt):
    path = root / "bad.minidb"
    if corrupt in ("negative_len", "zero_len"):
        n = -5 if corrupt == "negative_len" else 0
        path.write_bytes(struct.pack("<ii", 1, n) + b"x")
    elif corrupt == "garbage_value":
        path.write_bytes(struct.pack("<ii", 1, 3) + b"x" + b"\xff\xff\xff")
    else:
        blob = caffe2_pb2.BlobProto(name="x", type="Tensor")
        blob.tensor.dims.append(4)
        blob.tensor.data_type = TP.FLOAT if corrupt == "overlap" else TP.ZERO_COLLISION_HASH
        blob.tensor.float_data.extend([1, 2, 3])
        blob.tensor.segment.begin, blob.tensor.segment.end = 0, 3
        second = caffe2_pb2.BlobProto()
        second.CopyFrom(blob)
        second.tensor.segment.begin, second.tensor.segment.end = 1, 4
        if corrupt == "bad_type":  # one whole record of a type Caffe2 did not serialize
            blob.tensor.float_data.append(4)
            blob.tensor.segment.end = 4
        write_records(path, [("x#%0", blob)] + ([("x#%1", second)] if corrupt == "overlap"
                                                else []))
    workspace.FeedBlob("x", np.ones(2, np.float32))
    before = snapshot()
    with pytest.raises(DBError, match="bad.minidb|'x'"):
        run("Load", [], ["x"], db="bad.minidb", db_type="minidb")
    assert_unchanged(before)


def _checkpoint(root, value):
    workspace.FeedBlob("w", value)
    run("Save", ["w"], [], db="ck.minidb", db_type="minidb")
    return (root / "ck.minidb").read_bytes()


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace", "interrupt"])
def test_interrupted_save_keeps_previous_checkpoint(root, monkeypatch, fail_at):
    old = _checkpoint(root, np.arange(4, dtype=np.float32))
    workspace.FeedBlob("w", np.full(1000, 3, np.float32))
    import caffe2lite.runtime.minidb as minidb

    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(28, "No space left on device")

    def boom(*args, **kwargs):
        if fail_at == "interrupt":
            raise KeyboardInterrupt
        raise OSError(5, "I/O error")

    if fail_at == "write":
        monkeypatch.setattr(minidb.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    elif fail_at in ("fsync", "interrupt"):
        monkeypatch.setattr(minidb.os, "fsync", boom)
    else:
        monkeypatch.setattr(minidb.os, "replace", boom)
    expected = KeyboardInterrupt if fail_at == "interrupt" else DBError
    with pytest.raises(expected):
        run("Save", ["w"], [], db="ck.minidb", db_type="minidb")
    monkeypatch.undo()
    assert (root / "ck.minidb").read_bytes() == old
    assert sorted(os.listdir(root)) == ["ck.minidb"]  # no temporary file left behind
    run("Load", [], ["w"], db="ck.minidb", db_type="minidb")
    np.testing.assert_array_equal(workspace.FetchBlob("w"), np.arange(4, dtype=np.float32))


def test_checkpoint_every(root):
    workspace.FeedBlob("w", np.ones(2, np.float32))
    for it in range(5):
        workspace.FeedBlob("iter", np.array([it], np.int64))
        run("Checkpoint", ["iter", "w"], [], db="ck_%03d.minidb", db_type="minidb", every=2)
    assert sorted(os.listdir(root)) == ["ck_000.minidb", "ck_002.minidb", "ck_004.minidb"]
    assert [k for k, _ in read_records(root / "ck_002.minidb")] == ["iter#%0", "w#%0"]


def test_save_in_a_net_overwrites_each_run(root):
    net = core.Net("saver")
    net.Save(["w"], [], db="n.minidb", db_type="minidb")
    workspace.FeedBlob("w", np.zeros(2, np.float32))
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    workspace.FeedBlob("w", np.ones(2, np.float32))
    workspace.RunNet(net.Name())
    [(_, blob)] = read_records(root / "n.minidb")
    assert list(blob.tensor.float_data) == [1.0, 1.0]


def test_load_from_dbreader_inputs(root):
    from caffe2lite.operators.save_load import DBReader

    workspace.FeedBlob("x", np.arange(3, dtype=np.int32))
    run("Save", ["x"], [], db="r.minidb", db_type="minidb")
    workspace.ResetWorkspace()
    workspace.current().blob_dict["reader"] = DBReader(str(root / "r.minidb"))
    run("Load", ["reader"], ["x"])
    np.testing.assert_array_equal(workspace.FetchBlob("x"), np.arange(3, dtype=np.int32))
    workspace.FeedBlob("not_a_reader", np.zeros(1, np.float32))
    with pytest.raises(Caffe2LiteError, match="'not_a_reader' must hold a DBReader"):
        run("Load", ["not_a_reader"], ["x"])


@pytest.mark.cuda
def test_cuda_blobs_save_and_load_on_the_ops_device(root):
    if workspace.NumCudaDevices() == 0:
        pytest.skip("needs CuPy and an NVIDIA GPU")
    cuda = core.DeviceOption(caffe2_pb2.CUDA, 0)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    workspace.FeedBlob("x", x, device_option=cuda)
    run("Save", ["x"], [], db="g.minidb", db_type="minidb", device_option=cuda)
    [(_, blob)] = read_records(root / "g.minidb")
    assert blob.tensor.device_detail.device_type == caffe2_pb2.CUDA
    workspace.ResetWorkspace()
    run("Load", [], ["x"], db="g.minidb", db_type="minidb")  # a CPU op loads to the CPU
    assert type(workspace.current().blob_dict["x"]) is np.ndarray
    run("Load", [], ["y"], db="g.minidb", db_type="minidb", source_blob_names=["x"],
        device_option=cuda)
    assert devices.is_device_array(workspace.current().blob_dict["y"])
    run("Load", [], ["z"], db="g.minidb", db_type="minidb", source_blob_names=["x"],
        keep_device=1)  # a CPU op, but the saved device wins
    assert devices.is_device_array(workspace.current().blob_dict["z"])
    np.testing.assert_array_equal(workspace.FetchBlob("y"), x)
