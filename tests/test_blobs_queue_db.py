"""CreateBlobsQueueDB: TensorProtosDBInput reading records that producers enqueue."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError
from caffe2lite.proto import caffe2_pb2


@pytest.fixture(autouse=True)
def fresh_workspace():
    workspace.ResetWorkspace()
    yield
    workspace.ResetWorkspace()


def record(i: int) -> bytes:
    """A serialized TensorProtos: an int32 vector [i, 2i] and a float label i / 2."""
    protos = caffe2_pb2.TensorProtos()
    data = protos.protos.add()
    data.data_type, data.dims[:] = core.DataType.INT32, [2]
    data.int32_data[:] = [i, 2 * i]
    label = protos.protos.add()
    label.data_type, label.dims[:] = core.DataType.FLOAT, []
    label.float_data[:] = [i / 2]
    return protos.SerializeToString()


def queue_and_reader(num_blobs=1, **args):
    init = core.Net("init")
    init.CreateBlobsQueue([], "queue", capacity=100, num_blobs=num_blobs)
    init.CreateBlobsQueueDB(["queue"], "reader", **args)
    workspace.RunNetOnce(init)


def enqueue(*values):
    names = [f"v{j}" for j in range(len(values))]
    for name, value in zip(names, values):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(
        "SafeEnqueueBlobs", ["queue"] + names, names + ["status"]))


def read_batch(size):
    workspace.RunOperatorOnce(core.CreateOperator(
        "TensorProtosDBInput", ["reader"], ["data", "label"], batch_size=size))
    return workspace.FetchBlob("data"), workspace.FetchBlob("label")


def test_records_are_read_once_in_order_as_bytes_or_string_tensors():
    queue_and_reader(timeout_secs=0.5)
    for i in range(6):
        enqueue(record(i) if i % 2 else np.array([record(i)], dtype=object))
    for first in (0, 3):
        data, label = read_batch(3)
        expected = np.arange(first, first + 3)
        np.testing.assert_array_equal(data, np.stack([expected, 2 * expected], axis=1))
        np.testing.assert_array_equal(label, (expected / 2).astype(np.float32))


def test_the_value_blob_can_be_any_of_the_record():
    queue_and_reader(num_blobs=2, value_blob_index=1, key_blob_index=0, timeout_secs=0.5)
    enqueue(b"key-7", record(7))
    data, _ = read_batch(1)
    assert data.tolist() == [[7, 14]]


def test_a_short_queue_times_out_and_gives_its_records_back():
    queue_and_reader(timeout_secs=0.05)
    enqueue(record(1))
    with pytest.raises(Caffe2LiteError, match="timed out reading.*after 1 of 2 records"):
        read_batch(2)
    assert not workspace.HasBlob("data")
    data, _ = read_batch(1)  # the record taken by the failed batch is read again
    assert data.tolist() == [[1, 2]]


def test_a_value_that_is_no_string_is_refused():
    queue_and_reader(timeout_secs=0.5)
    enqueue(np.zeros(3, np.float32))
    with pytest.raises(Caffe2LiteError, match="Unsupported Blob type"):
        read_batch(1)


@pytest.mark.parametrize("args, match", [({"value_blob_index": 1}, "value_blob_index"),
                                         ({"timeout_secs": -1.0}, "timeout_secs")])
def test_bad_arguments_are_refused(args, match):
    with pytest.raises(Caffe2LiteError, match=match):
        queue_and_reader(**args)
