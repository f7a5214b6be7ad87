"""Rebatching queues against Caffe2's rebatching_queue.cc semantics.

Reference behaviour written here: elements go in one at a time or one per row of a
batch; a dequeue of n elements stacks each component along a new first axis; the
queue is bounded (writers wait, readers wait); a closed queue refuses writes, hands
out what is left (possibly fewer elements than asked) and then fails.
"""

import threading

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot


def op(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))


def create(capacity, num_blobs=1, name="rq"):
    op("CreateRebatchingQueue", [], [name], capacity=capacity, num_blobs=num_blobs)
    return name


def dequeue(n, outputs=("out",), queue="rq"):
    op("DequeueRebatchingQueue", [queue], list(outputs), num_elements=n)
    return [workspace.FetchBlob(o) for o in outputs]


def test_single_elements_are_stacked_along_a_new_axis():
    create(capacity=4)
    for value in ([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]):
        workspace.FeedBlob("x", np.array(value, np.float32))
        op("EnqueueRebatchingQueue", ["rq", "x"], [])
    (one,) = dequeue(1)
    assert one.shape == (1, 2) and one.tolist() == [[1.0, 2.0]]
    (two,) = dequeue(2)
    assert two.dtype == np.float32 and two.tolist() == [[3.0, 4.0], [5.0, 6.0]]


def test_batches_are_split_into_rows_and_regrouped():
    create(capacity=10, num_blobs=3)
    ids = np.arange(6, dtype=np.int64)
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    names = np.array([b"a", b"b", b"c", b"d", b"e", b"f"], dtype=object)
    for name, value in (("ids", ids), ("feats", feats), ("names", names)):
        workspace.FeedBlob(name, value)
    op("EnqueueRebatchingQueue", ["rq", "ids", "feats", "names"], [], enqueue_batch=True)
    for rows in (slice(0, 4), slice(4, 6)):
        got = dequeue(rows.stop - rows.start, ["o_ids", "o_feats", "o_names"])
        np.testing.assert_array_equal(got[0], ids[rows])
        np.testing.assert_array_equal(got[1], feats[rows])
        assert got[2].tolist() == names[rows].tolist()


def test_a_batch_larger_than_the_capacity_streams_to_a_reader():
    create(capacity=3)
    received = []

    def consume():
        for _ in range(4):
            received.append(dequeue(5, ["consumed"])[0].tolist())

    reader = threading.Thread(target=consume)
    reader.start()
    workspace.FeedBlob("x", np.arange(20, dtype=np.int32))
    op("EnqueueRebatchingQueue", ["rq", "x"], [], enqueue_batch=True)
    reader.join(30)
    assert not reader.is_alive()
    assert received == [list(range(k, k + 5)) for k in range(0, 20, 5)]


def test_close_refuses_writes_and_drains_what_is_left():
    create(capacity=10)
    workspace.FeedBlob("x", np.arange(7, dtype=np.int32))
    op("EnqueueRebatchingQueue", ["rq", "x"], [], enqueue_batch=True)
    op("CloseRebatchingQueue", ["rq"], [])
    with pytest.raises(EnforceError, match="closed"):
        op("EnqueueRebatchingQueue", ["rq", "x"], [], enqueue_batch=True)
    assert dequeue(5)[0].tolist() == [0, 1, 2, 3, 4]
    assert dequeue(5)[0].tolist() == [5, 6]  # fewer than asked: closed and run dry
    before = snapshot()
    with pytest.raises(EnforceError, match="closed and empty"):
        dequeue(1, ["never"])
    assert_unchanged(before)


def test_close_wakes_a_waiting_reader():
    create(capacity=2)
    errors = []

    def read():
        try:
            dequeue(1, ["woken"])
        except EnforceError as e:
            errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    op("CloseRebatchingQueue", ["rq"], [])
    reader.join(30)
    assert not reader.is_alive() and len(errors) == 1


@pytest.mark.parametrize("inputs, args, match", [
    ([np.zeros(3), np.zeros(2)], {"enqueue_batch": True}, "first axis of the same size"),
    ([np.float32(1), np.zeros(2)], {"enqueue_batch": True}, "first axis"),
    ([np.zeros(3)], {}, "elements of 2 tensors"),
])
def test_enqueue_errors(inputs, args, match):
    create(capacity=4, num_blobs=2)
    names = [f"t{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, np.asarray(value))
    with pytest.raises(EnforceError, match=match):
        op("EnqueueRebatchingQueue", ["rq"] + names, [], **args)


def test_elements_that_do_not_stack_fail_the_dequeue():
    create(capacity=4)
    for value in (np.zeros(2, np.float32), np.zeros(3, np.float32)):
        workspace.FeedBlob("x", value)
        op("EnqueueRebatchingQueue", ["rq", "x"], [])
    with pytest.raises(EnforceError, match="stack"):
        dequeue(2)
    with pytest.raises(EnforceError, match="RebatchingQueue"):
        workspace.FeedBlob("not_a_queue", np.zeros(1))
        op("CloseRebatchingQueue", ["not_a_queue"], [])
