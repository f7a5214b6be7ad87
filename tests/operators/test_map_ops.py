"""CreateMap / KeyValueToMap / MapToKeyValue, and maps through Save and Load."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2


def run(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 9)), max_size=8))
def test_key_value_round_trip_keeps_last_value(pairs):
    workspace.FeedBlob("k", np.array([k for k, _ in pairs], np.int64))
    workspace.FeedBlob("v", np.array([v for _, v in pairs], np.int32))
    run("KeyValueToMap", ["k", "v"], ["m"])
    keys, values = run("MapToKeyValue", ["m"], ["k2", "v2"])
    want = dict(pairs)  # a later pair overwrites an earlier one
    assert dict(zip(keys.tolist(), values.tolist())) == want
    assert keys.dtype == np.int64 and values.dtype == np.int32


def test_create_map_and_save_load(tmp_path):
    run("CreateMap", [], ["empty"], key_dtype=caffe2_pb2.TensorProto.INT64,
        value_dtype=caffe2_pb2.TensorProto.INT64)
    keys, values = run("MapToKeyValue", ["empty"], ["k", "v"])
    assert keys.size == 0 and keys.dtype == np.int64
    workspace.FeedBlob("k", np.array([3, 1], np.int32))
    workspace.FeedBlob("v", np.array([30, 10], np.int64))
    run("KeyValueToMap", ["k", "v"], ["m"])
    db = str(tmp_path / "map.minidb")
    run("Save", ["m"], [], db=db, db_type="minidb", absolute_path=1)
    workspace.ResetWorkspace()
    run("Load", [], ["m"], db=db, db_type="minidb", absolute_path=1, load_all=1)
    keys, values = run("MapToKeyValue", ["m"], ["k", "v"])
    assert keys.tolist() == [1, 3] and values.tolist() == [10, 30]
    assert_fails_unchanged(core.CreateOperator("KeyValueToMap", ["a", "b"], ["m2"]),
                           {"a": np.ones(2, np.int32), "b": np.ones(3, np.int32)},
                           EnforceError, "same size")
