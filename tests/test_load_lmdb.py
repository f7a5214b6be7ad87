"""Load from LMDB, by arguments and through a CreateDB reader (Caffe2's load_save_op.h:
any db type, a DBReader's cursor): the LMDB written with the lmdb package itself."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import DBError
from caffe2lite.proto import caffe2_pb2
from helpers import assert_unchanged, snapshot

lmdb = pytest.importorskip("lmdb", reason="the lmdb extra (pip install 'caffe2lite[lmdb]')")


def _blob(name, values):
    """A BlobProto as Caffe2's serializer wrote a float tensor (typed fields, by hand)."""
    proto = caffe2_pb2.BlobProto(name=name, type="Tensor")
    proto.tensor.data_type = caffe2_pb2.TensorProto.FLOAT
    proto.tensor.dims.extend(values.shape)
    proto.tensor.float_data.extend(values.reshape(-1).tolist())
    return proto.SerializeToString()


@pytest.fixture
def params_lmdb(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([0.5, -1.5], np.float32)
    env = lmdb.open(str(tmp_path / "params.lmdb"), map_size=1 << 22)
    with env.begin(write=True) as txn:
        txn.put(b"w", _blob("w", w))
        txn.put(b"b", _blob("b", b))
    env.close()
    return str(tmp_path / "params.lmdb"), w, b


def test_load_reads_lmdb_by_argument_and_through_a_reader(params_lmdb):
    path, w, b = params_lmdb
    workspace.RunOperatorOnce(core.CreateOperator("Load", [], ["w", "b"], db=path,
                                                  db_type="lmdb", absolute_path=True))
    np.testing.assert_array_equal(workspace.FetchBlob("w"), w)
    np.testing.assert_array_equal(workspace.FetchBlob("b"), b)
    workspace.ResetWorkspace()
    workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], db=path,
                                                  db_type="lmdb"))
    workspace.RunOperatorOnce(core.CreateOperator("Load", ["reader"], [], load_all=1))
    np.testing.assert_array_equal(workspace.FetchBlob("w"), w)
    np.testing.assert_array_equal(workspace.FetchBlob("b"), b)


def test_a_reader_of_shard_one_starts_at_its_shard(params_lmdb):
    path, w, b = params_lmdb  # LMDB's key order: b, w
    workspace.RunOperatorOnce(core.CreateOperator("CreateDB", [], ["reader"], db=path,
                                                  db_type="lmdb", num_shards=2, shard_id=1))
    workspace.RunOperatorOnce(core.CreateOperator("Load", ["reader"], [], load_all=1))
    assert workspace.HasBlob("w") and not workspace.HasBlob("b")


def test_a_missing_lmdb_changes_nothing(tmp_path):
    workspace.FeedBlob("w", np.ones(1, np.float32))
    before = snapshot()
    with pytest.raises(DBError, match="lmdb"):
        workspace.RunOperatorOnce(core.CreateOperator("Load", [], ["w"], db=str(tmp_path / "no"),
                                                      db_type="lmdb", absolute_path=True))
    assert_unchanged(before)
