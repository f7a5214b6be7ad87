"""Caffe2's dbs: workspace.C.create_db, CreateDB, DBReader and TensorProtosDBInput.

The LMDB files here are written with the ``lmdb`` package itself and the
TensorProtos by hand (typed fields), so what the ops read back is checked
against data no caffe2lite code produced; the expected batches follow
Caffe2's documented order: keys in LMDB's byte order (minidb: file order),
``batch_size`` records a batch, wrapping round at the end, every
``num_shards``-th record from ``shard_id``.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, Caffe2LiteError, DBError, EnforceError
from caffe2lite.proto import caffe2_pb2
from helpers import assert_unchanged, snapshot

lmdb = pytest.importorskip("lmdb", reason="the lmdb extra (pip install 'caffe2lite[lmdb]')")

N_RECORDS = 13


def _record(j: int) -> bytes:
    """TensorProtos of (image: float32 (2, 3) filled with j + k/10, label: int32 j % 4)."""
    protos = caffe2_pb2.TensorProtos()
    image = protos.protos.add(data_type=caffe2_pb2.TensorProto.FLOAT, dims=[2, 3])
    image.float_data.extend(float(np.float32(j + k / 10)) for k in range(6))
    label = protos.protos.add(data_type=caffe2_pb2.TensorProto.INT32)
    label.int32_data.append(j % 4)
    return protos.SerializeToString()


def _expected(j: int):
    return np.float32(j) + np.arange(6, dtype=np.float32).reshape(2, 3) / np.float32(10), j % 4


def _write_lmdb(path) -> list[int]:
    """Records keyed str(j): LMDB hands them back in byte order ('0', '1', '10', ...)."""
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for j in range(N_RECORDS):
            txn.put(str(j).encode("ascii"), _record(j))
    env.close()
    return sorted(range(N_RECORDS), key=lambda j: str(j).encode("ascii"))


def _write_minidb(path) -> list[int]:
    db = workspace.C.create_db("minidb", str(path), workspace.C.Mode.new)
    txn = db.new_transaction()
    for j in range(N_RECORDS):
        txn.put(f"key{j}".encode(), _record(j))
    txn.commit()
    db.close()
    return list(range(N_RECORDS))  # file order


@pytest.fixture(params=["lmdb", "minidb"])
def db_file(request, tmp_path):
    path = tmp_path / f"data.{request.param}"
    order = (_write_lmdb if request.param == "lmdb" else _write_minidb)(path)
    return request.param, str(path), order


@pytest.mark.parametrize("batch_size", [0, 1, 5])
def test_tensor_protos_db_input_reads_batches_in_order_and_wraps(db_file, batch_size):
    db_type, path, order = db_file
    workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], db=path,
                                                  db_type=db_type))
    op = core.CreateOperator("TensorProtosDBInput", ["reader"], ["data", "label"],
                             batch_size=batch_size)
    per_batch = max(batch_size, 1)
    for step in range(4):  # 20 records > 13: the reader wraps round
        workspace.RunOperatorOnce(op)
        ids = [order[(step * per_batch + k) % N_RECORDS] for k in range(per_batch)]
        images = np.stack([_expected(j)[0] for j in ids])
        labels = np.array([_expected(j)[1] for j in ids], np.int32)
        data, label = workspace.FetchBlob("data"), workspace.FetchBlob("label")
        if batch_size == 0:
            images, labels = images[0], labels[0]
        assert data.dtype == np.float32 and label.dtype == np.int32
        np.testing.assert_array_equal(data, images)
        np.testing.assert_array_equal(label, labels)


def test_sharded_readers_split_the_db(db_file):
    db_type, path, order = db_file
    seen = []
    for shard in range(3):
        workspace.RunOperatorOnce(core.CreateOperator(
            "CreateDB", [], [f"r{shard}"], db=path, db_type=db_type, num_shards=3,
            shard_id=shard))
        op = core.CreateOperator("TensorProtosDBInput", [f"r{shard}"], ["d", "l"],
                                 batch_size=1)
        for _ in range(len(order[shard::3])):
            workspace.RunOperatorOnce(op)
            seen.append(float(workspace.FetchBlob("d")[0, 0, 0]))
        workspace.RunOperatorOnce(op)  # back at the shard's first record
        assert float(workspace.FetchBlob("d")[0, 0, 0]) == order[shard]
    assert sorted(seen) == list(range(N_RECORDS))  # each record read by exactly one shard


def test_c_create_db_round_trip_and_cursor(tmp_path):
    """Caffe2's db_test: write with transactions, read back with a cursor, in order."""
    data = [(f"key{i}".encode(), f"value{i}".encode()) for i in range(1, 10)]
    path = str(tmp_path / "simple.minidb")
    db = workspace.C.create_db("minidb", path, workspace.C.Mode.write)
    for key, value in data:
        transaction = db.new_transaction()
        transaction.put(key, value)
        del transaction  # commits, as Caffe2's destructor did
    del db
    db = workspace.C.create_db("minidb", path, workspace.C.Mode.read)
    cursor = db.new_cursor()
    read = []
    while cursor.valid():
        read.append((cursor.key(), cursor.value()))
        cursor.next()
    db.close()
    assert read == data


def test_lmdb_cursor_seeks_and_transactions_commit(tmp_path):
    path = str(tmp_path / "kv.lmdb")
    db = workspace.C.create_db("lmdb", path, workspace.C.Mode.new)
    txn = db.new_transaction()
    for key in (b"b", b"a", b"d"):
        txn.put(key, key * 2)
    txn.commit()
    db.close()
    del txn, db  # the environment closes with its last user
    env = lmdb.open(path, readonly=True, lock=False)  # the lmdb package reads it back
    with env.begin() as check:
        assert list(check.cursor()) == [(b"a", b"aa"), (b"b", b"bb"), (b"d", b"dd")]
    env.close()
    cursor = workspace.C.create_db("lmdb", path, workspace.C.Mode.read).new_cursor()
    assert cursor.supports_seek()
    cursor.seek(b"c")  # the first key at or after "c"
    assert (cursor.key(), cursor.value()) == (b"d", b"dd")
    cursor.next()
    assert not cursor.valid()


def test_load_reads_blobs_through_a_created_db_reader(tmp_path):
    path = str(tmp_path / "params.minidb")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    workspace.FeedBlob("w", w)
    workspace.RunOperatorOnce(core.CreateOperator("Save", ["w"], [], db=path, db_type="minidb",
                                                  absolute_path=True))
    workspace.ResetWorkspace()
    workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], db=path,
                                                  db_type="minidb"))
    workspace.RunOperatorOnce(core.CreateOperator("Load", ["reader"], ["w"]))
    np.testing.assert_array_equal(workspace.FetchBlob("w"), w)


@pytest.mark.parametrize("args, error, match", [
    ({"db_type": "minidb"}, ArgumentError, "Must specify a db name"),
    ({"db": "x", "db_type": "leveldb"}, ArgumentError, "'leveldb' is not available"),
    ({"db": "missing.minidb", "db_type": "minidb"}, DBError, "does not exist"),
    ({"db": "missing.lmdb", "db_type": "lmdb"}, DBError, "no such LMDB folder"),
    ({"db": "x", "db_type": "minidb", "num_shards": 2, "shard_id": 2}, EnforceError,
     "shard_id"),
])
def test_create_db_refuses_bad_arguments_naming_the_op(tmp_path, args, error, match):
    if "db" in args and args["db"] != "x":
        args = dict(args, db=str(tmp_path / args["db"]))
    before = snapshot()
    with pytest.raises(error, match=match) as info:
        workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], **args))
    assert "CreateDB" in str(info.value)
    assert_unchanged(before)


def test_tensor_protos_db_input_bad_records_fail_cleanly(tmp_path):
    path = str(tmp_path / "bad.minidb")
    db = workspace.C.create_db("minidb", path, workspace.C.Mode.new)
    txn = db.new_transaction()
    txn.put(b"a", _record(1))
    txn.put(b"b", b"\xff\xff not a proto")
    txn.commit()
    db.close()
    workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], db=path,
                                                  db_type="minidb"))
    workspace.FeedBlob("data", np.zeros(1, np.float32))
    before = snapshot()
    with pytest.raises(DBError, match="b'b'.*not a serialized TensorProtos"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "TensorProtosDBInput", ["reader"], ["data", "label"], batch_size=2))
    assert_unchanged(before)
    with pytest.raises(EnforceError, match="holds 2 tensors, the op has 3 outputs"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "TensorProtosDBInput", ["reader"], ["data", "label", "extra"]))
    workspace.FeedBlob("not_a_reader", np.zeros(2, np.float32))
    with pytest.raises(Caffe2LiteError, match="must hold a DBReader"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "TensorProtosDBInput", ["not_a_reader"], ["data"]))
