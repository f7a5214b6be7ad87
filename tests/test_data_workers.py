"""caffe2lite.data_workers: fetcher threads feeding a net through blobs queues.

As Caffe2's data_workers_test: fetchers return chunks of any size whose
samples carry their own check (label == every data column), the net's
DequeueBlobs ops must see batches of exactly batch_size intact samples, and
stopping returns True (every thread ended) even while the enqueuer waits on
a full queue.  Worker ids come from the process-wide sequence.
"""

from __future__ import annotations

import time

import numpy as np

from caffe2lite import core, data_workers, parallel_workers, workspace

DEADLINE_S = 20


def _fetcher(fetcher_id, batch_size):
    """1..16 samples; sample j of fetcher f is (v, v, v) with label v = j + f."""
    n = int(np.random.default_rng().integers(16)) + 1
    values = np.arange(n, dtype=np.float64) + fetcher_id
    return [np.repeat(values[:, None], 3, axis=1), values.copy()]


def test_batches_are_exactly_batch_size_and_intact():
    net = core.Net("dw_train")
    old_seq = data_workers.global_coordinator._fetcher_id_seq
    coordinator = data_workers.init_data_input_workers(
        net, ["data", "label"], _fetcher, 8, 2, input_source_name="dw_unittest", timeout=10)
    assert data_workers.global_coordinator._fetcher_id_seq == old_seq + 2
    assert [op.type for op in net.Proto().op] == ["DequeueBlobs", "DequeueBlobs"]
    coordinator.start()
    try:
        workspace.CreateNet(net)
        for _ in range(20):
            workspace.RunNet(net.Name())
            data, labels = workspace.FetchBlob("data"), workspace.FetchBlob("label")
            assert data.shape == (8, 3) and labels.shape == (8,)
            np.testing.assert_array_equal(data, np.repeat(labels[:, None], 3, axis=1))
    finally:
        coordinator.stop_coordinator("dw_unittest")
    assert coordinator._coordinators == []


def test_batch_columns_and_stop_while_the_enqueuer_waits():
    def fetch_rnn(fetcher_id, batch_size):
        t, n = 5, batch_size
        return [np.zeros((t, n, 4)), np.ones((t, n), np.int32), np.arange(n)]

    net = core.Net("dw_rnn")
    coordinator = data_workers.init_data_input_workers(
        net, ["data1", "label1", "seq_lengths1"], fetch_rnn, 6, 2,
        input_source_name="dw_rnn", batch_columns=[1, 1, 0], timeout=10)
    coordinator.start()
    try:
        start = time.time()
        while coordinator._coordinators[0]._state._inputs < 30:
            assert time.time() - start < DEADLINE_S, "the fetchers produced nothing"
            time.sleep(0.01)
        workspace.CreateNet(net)
        workspace.RunNet(net.Name())
        assert workspace.FetchBlob("data1").shape == (5, 6, 4)
        assert workspace.FetchBlob("seq_lengths1").shape == (6,)
        time.sleep(0.2)  # nobody dequeues now: the enqueuer waits on a full queue
    finally:
        assert coordinator.stop()  # closing the queues releases it; every thread ends


def test_parallel_workers_run_until_stopped_and_report_errors():
    calls = []

    def work(worker_id):
        calls.append(worker_id)
        if len(calls) == 5:
            raise ValueError("boom")  # stops this coordinator
        time.sleep(0.001)

    coordinator = parallel_workers.init_workers(work, num_worker_threads=1,
                                                worker_name="pw_unittest")
    coordinator.start()
    start = time.time()
    while coordinator._coordinators and coordinator._coordinators[0].is_active():
        assert time.time() - start < DEADLINE_S
        time.sleep(0.01)
    assert len(calls) == 5  # the failure stopped the loop
    coordinator.stop_coordinator("pw_unittest")
