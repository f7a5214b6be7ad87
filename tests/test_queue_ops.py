"""Blobs queues under threads: FIFO order, blocking, timeouts, closing, the Safe variants.

Caffe2's documented semantics (caffe2/queue/queue_ops.cc, blobs_queue.cc): a
queue of ``capacity`` records of ``num_blobs`` blobs; writers wait while it
is full, readers while it is empty (``timeout_secs`` > 0 bounds the wait);
closing wakes everyone, then writes fail and reads fail once it is empty;
the Safe ops report failure in a last bool ``status`` output instead of
failing.  The threaded cases hand records over through a small queue and
check the exact order, so they are deterministic; waits are bounded.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError, SchemaError
from helpers import assert_unchanged, snapshot

JOIN_S = 10


def _run(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))


def _queue(name="q", capacity=2, num_blobs=2):
    _run("CreateBlobsQueue", [], [name], capacity=capacity, num_blobs=num_blobs)


def _record(k):
    return np.full((2, 3), k, np.float32), np.array([k, -k], np.int64)


def _enqueue(k, name="q"):
    a, b = _record(k)
    workspace.FeedBlob("a", a)
    workspace.FeedBlob("b", b)
    _run("EnqueueBlobs", [name, "a", "b"], ["a", "b"])


def _check_record(k):
    a, b = _record(k)
    np.testing.assert_array_equal(workspace.FetchBlob("x"), a)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), b)


def test_records_come_out_in_order_and_intact():
    _queue(capacity=3)
    for k in range(3):
        _enqueue(k)
    np.testing.assert_array_equal(workspace.FetchBlob("a"), _record(2)[0])  # blobs keep values
    for k in range(3):
        _run("DequeueBlobs", ["q"], ["x", "y"])
        _check_record(k)


def test_a_producer_thread_blocks_on_a_full_queue_and_order_survives():
    _queue(capacity=2)
    n = 25
    errors = []

    def produce():
        try:
            for k in range(n):
                _enqueue(k)  # waits whenever two records are pending
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    producer = threading.Thread(target=produce)
    producer.start()
    net = core.Net("consume")
    net.DequeueBlobs("q", ["x", "y"], timeout_secs=float(JOIN_S))
    workspace.CreateNet(net)
    for k in range(n):
        workspace.RunNet(net.Name())
        _check_record(k)
    producer.join(JOIN_S)
    assert not producer.is_alive() and not errors


def test_dequeue_times_out_and_changes_nothing():
    _queue()
    workspace.FeedBlob("x", np.ones(2, np.float32))
    before = snapshot()
    with pytest.raises(EnforceError, match="timed out in 0.05 secs"):
        _run("DequeueBlobs", ["q"], ["x", "y"], timeout_secs=0.05)
    assert_unchanged(before)


def test_close_wakes_a_blocked_reader_and_a_blocked_writer():
    _queue(capacity=1)
    results = {}

    def read():
        try:
            _run("DequeueBlobs", ["q"], ["x", "y"])
        except Caffe2LiteError as e:
            results["read"] = str(e)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.1)
    assert reader.is_alive()  # waiting on the empty queue
    _run("CloseBlobsQueue", ["q"], [])
    reader.join(JOIN_S)
    assert "closed and empty" in results["read"]

    _queue(name="q2", capacity=1)
    _enqueue(1, "q2")

    def write():
        a, b = _record(2)
        workspace.FeedBlob("c", a)
        workspace.FeedBlob("d", b)
        _run("SafeEnqueueBlobs", ["q2", "c", "d"], ["c", "d", "wstatus"])

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.1)
    assert writer.is_alive()  # waiting on the full queue
    _run("CloseBlobsQueue", ["q2"], [])
    writer.join(JOIN_S)
    assert workspace.FetchBlob("wstatus").item() is True  # not enqueued
    _run("SafeDequeueBlobs", ["q2"], ["x", "y", "status"])  # still readable: not empty
    assert workspace.FetchBlob("status").item() is False
    _check_record(1)
    _run("SafeDequeueBlobs", ["q2"], ["x", "y", "status"])
    assert workspace.FetchBlob("status").item() is True  # closed and empty
    _check_record(1)  # the data blobs keep their values
    with pytest.raises(EnforceError, match="closed: nothing was enqueued"):
        _enqueue(3, "q2")


def test_safe_dequeue_many_concatenates_records():
    _queue(capacity=4)
    for k in range(3):
        _enqueue(k)
    _run("SafeDequeueBlobs", ["q"], ["x", "y", "status"], num_records=2)
    np.testing.assert_array_equal(workspace.FetchBlob("x"),
                                  np.concatenate([_record(0)[0], _record(1)[0]]))
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.array([0, 0, 1, -1]))
    _run("CloseBlobsQueue", ["q"], [])
    _run("SafeDequeueBlobs", ["q"], ["x", "y", "status"], num_records=5)  # only 1 left
    assert workspace.FetchBlob("status").item() is False
    np.testing.assert_array_equal(workspace.FetchBlob("x"), _record(2)[0])


def test_failed_concatenation_loses_no_record():
    _queue(capacity=4, num_blobs=1)
    for value in (np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)):
        workspace.FeedBlob("a", value)
        _run("EnqueueBlobs", ["q", "a"], ["a"])
    before = snapshot()
    with pytest.raises(EnforceError, match="same inner dimensions"):
        _run("SafeDequeueBlobs", ["q"], ["x", "status"], num_records=2)
    assert_unchanged(before)
    _run("DequeueBlobs", ["q"], ["x"])
    assert workspace.FetchBlob("x").shape == (2, 3)  # still first in line


def test_a_plan_reads_until_the_queue_is_closed():
    _queue(capacity=8, num_blobs=1)
    for k in range(5):
        workspace.FeedBlob("a", np.array([float(k)], np.float32))
        _run("EnqueueBlobs", ["q", "a"], ["a"])
    _run("CloseBlobsQueue", ["q"], [])
    workspace.FeedBlob("total", np.zeros(1, np.float32))
    body = core.Net("body")
    _, status = body.SafeDequeueBlobs("q", ["x", "status"])
    body.Add(["total", "x"], "total")
    plan = core.Plan("drain")
    plan.AddStep(core.execution_step("drain", body, should_stop_blob=status))
    workspace.RunPlan(plan)
    # should_stop_blob is read after the step's nets: the last run adds x again
    assert workspace.FetchBlob("total").item() == 0 + 1 + 2 + 3 + 4 + 4


def test_schemas_and_wrong_inputs():
    _queue()
    workspace.FeedBlob("a", np.ones(1, np.float32))
    with pytest.raises(SchemaError, match="in place"):
        _run("EnqueueBlobs", ["q", "a"], ["other"])
    with pytest.raises(EnforceError, match="records of 2 blobs"):
        _run("EnqueueBlobs", ["q", "a"], ["a"])
    with pytest.raises(EnforceError, match="must hold a BlobsQueue"):
        _run("DequeueBlobs", ["a"], ["x"])
    with pytest.raises(EnforceError, match="capacity must be >= 1"):
        _run("CreateBlobsQueue", [], ["q3"], capacity=0)
    _run("CreateBlobsQueue", [], ["q4"], enforce_unique_name=True)
    workspace.FeedBlob("q5_0_0", np.ones(1))
    with pytest.raises(EnforceError, match="Queue internal blob already exists: q5_0_0"):
        _run("CreateBlobsQueue", [], ["q5"], enforce_unique_name=True)
