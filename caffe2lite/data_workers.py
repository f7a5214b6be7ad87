"""Caffe2's ``data_workers``: Python threads that feed a net's input blobs through queues.

    coordinator = data_workers.init_data_input_workers(
        net, ["data", "label"], fetch_fun, batch_size=32, input_source_name="train")
    coordinator.start()
    ...                      # run the net: each run dequeues one batch per input
    coordinator.stop()

``fetch_fun(worker_id, batch_size)`` returns one NumPy array per input blob,
all with the same number of samples along their batch axis (``batch_columns``,
default 0) -- any number, ``batch_size`` is a hint.  ``num_worker_threads``
fetcher threads put these chunks on a Python queue (``max_buffered_batches``
deep); an enqueuer thread cuts them into batches of exactly ``batch_size``
(unless ``dont_rebatch``: chunks pass as they are) and enqueues each input
into its own Caffe2 blobs queue (CreateBlobsQueue, capacity 4) with
SafeEnqueueBlobs; ``init_data_input_workers`` adds to ``net`` one
``DequeueBlobs`` per input (failing after ``timeout`` seconds without data).
``input_source_name`` keeps sources apart (train / test feeding blobs of the
same names).  ``init_fun(data_coordinator, global_coordinator)`` runs once
before the threads start.  The call returns the process's
``global_coordinator`` (start, stop, stop_coordinator).
"""

from __future__ import annotations

import logging
import queue as Queue  # noqa: N812 (Caffe2's spelling)
import threading
import time
from itertools import chain

import numpy as np

from caffe2lite import core, scope, workspace
from caffe2lite.parallel_workers import (GlobalWorkerCoordinator, Metrics, State, Worker,
                                         WorkerCoordinator, run_worker)
from caffe2lite.proto import caffe2_pb2

log = logging.getLogger("data_workers")
LOG_INT_SECS = 60
C2_QUEUE_CAPACITY = 4  # batches waiting in each Caffe2 queue
WAIT_S = 0.5  # how often a waiting thread looks whether its coordinator stopped


def get_worker_ids(num_workers):
    return list(range(0, num_workers))


def init_data_input_workers(net, input_blob_names, fetch_fun, batch_size,
                            num_worker_threads=2, input_source_name="train",
                            max_buffered_batches=800, init_fun=None, external_loggers=None,
                            dont_rebatch=False, batch_columns=None, timeout=600):
    device_option = scope.CurrentDeviceScope()
    if device_option is None:
        device_option = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CPU)
    metrics = Metrics(external_loggers)
    batch_feeder = BatchFeeder(
        net, input_blob_names, batch_size, device_option, scope.CurrentNameScope(),
        input_source_name, global_coordinator.get_queue(input_source_name,
                                                        max_buffered_batches),
        metrics, dont_rebatch, batch_columns, timeout=timeout)
    worker_ids = [global_coordinator.get_new_worker_id() for _ in range(num_worker_threads)]
    coordinator = WorkerCoordinator(input_source_name, worker_ids, init_fun, batch_feeder)
    workers = [
        threading.Thread(
            target=run_worker, name=f"data_workers fetcher id {worker_id}",
            args=[coordinator, DataWorker(coordinator, worker_id, fetch_fun, metrics,
                                          batch_size, batch_feeder)])
        for worker_id in worker_ids]
    workers.append(threading.Thread(
        target=enqueuer, name=f"Enqueuer {input_source_name} {scope.CurrentNameScope()}",
        args=[coordinator, batch_feeder]))
    coordinator._workers = workers
    global_coordinator.add(coordinator)
    return global_coordinator


class BatchFeeder(State):
    """Batches fetched chunks and enqueues them into one Caffe2 queue per input blob."""

    def __init__(self, net, input_blob_names, batch_size, device_option, namescope,
                 input_source_name, queue, metrics, dont_rebatch, batch_columns, timeout=600):
        self._counter = 0
        self._input_blob_names = input_blob_names
        self._batch_size = batch_size
        self._internal_queue = queue
        self._queues = []
        self._device_option = device_option
        self._namescope = namescope
        self._timeout = timeout
        self._input_source_name = input_source_name
        self._c2_queue_capacity = C2_QUEUE_CAPACITY
        self._create_caffe2_queues(net)
        self._create_caffe2_ops(net)
        self._inputs = 0
        self._prev_seconds = 0
        self._last_warning = time.time()
        self._dont_rebatch = dont_rebatch
        self._init_scratch()
        self._metrics = metrics
        self._batch_columns = batch_columns or [0 for _ in input_blob_names]

    def start(self):
        self._inputs = 0
        self._prev_seconds = time.time()

    def stop(self):
        try:
            for q in self._queues:
                workspace.RunOperatorOnce(core.CreateOperator("CloseBlobsQueue", [q], []))
        finally:
            self._log_inputs_per_interval(0, force=True)

    def cleanup(self):
        for blob in chain(self._scratch_blob.values(), self._scratch_status.values()):
            workspace.ResetBlob(str(blob))

    def _get(self, data_input_coordinator):
        start_time = last_warning = time.time()
        while data_input_coordinator.is_active():
            try:
                return self._internal_queue.get(block=True, timeout=WAIT_S)
            except Queue.Empty:
                if time.time() - last_warning > 10.0:
                    log.warning("** Data input is slow: (still) no data in %.0f secs.",
                                time.time() - start_time)
                    last_warning = time.time()
        return None

    def _validate_chunk(self, chunk):
        if chunk is None:
            log.warning("Fetcher function returned None")
            return False
        assert len(chunk) == len(self._input_blob_names), "Expecting data blob for each input"
        for d in chunk:
            assert isinstance(d, np.ndarray), "Fetcher function must return a numpy array"
        if not self._dont_rebatch:
            first = chunk[0].shape[self._batch_columns[0]]
            for j, d in enumerate(chunk[1:], start=1):
                assert d.shape[self._batch_columns[j]] == first, (
                    "Each returned input must have equal number of samples")
        if len(chunk) == 0:
            log.warning("Worker provided zero length input")
            return False
        return True

    def put(self, chunk, data_input_coordinator):
        """Queue a fetched chunk (waiting while the Python queue is full)."""
        if not self._validate_chunk(chunk):
            return
        while data_input_coordinator.is_active():
            try:
                qsize = self._internal_queue.qsize()
                if qsize < 2 and time.time() - self._last_warning > LOG_INT_SECS:
                    log.warning("Warning, data loading lagging behind: queue size=%d, name=%s",
                                qsize, self._input_source_name)
                    self._last_warning = time.time()
                self._counter += 1
                self._internal_queue.put(chunk, block=True, timeout=WAIT_S)
                self._log_inputs_per_interval(chunk[0].shape[0])
                return
            except Queue.Full:
                log.debug("Queue full: stalling fetchers...")

    def _enqueue_batch_direct(self, data_input_coordinator):
        data = self._get(data_input_coordinator)
        if data is None:
            return
        if data_input_coordinator.is_active():
            for b, q, c in zip(self._input_blob_names, self._queues, data):
                self._enqueue(b, q, c)

    def _enqueue_batch(self, data_input_coordinator):
        """Collect chunks into one batch of batch_size samples (the rest goes back on
        the queue) and enqueue it; with dont_rebatch, one chunk as it is."""
        if self._dont_rebatch:
            self._enqueue_batch_direct(data_input_coordinator)
            return
        cur_batch = [np.array([]) for _ in self._input_blob_names]
        first_col = self._batch_columns[0]
        while (cur_batch[0].shape[0] == 0 or cur_batch[0].shape[first_col] < self._batch_size) \
                and data_input_coordinator.is_active():
            chunk = self._get(data_input_coordinator)
            if chunk is None:
                continue
            for j, chunk_elem in enumerate(chunk):
                if cur_batch[j].shape[0] == 0:
                    cur_batch[j] = chunk_elem.copy()
                else:
                    cur_batch[j] = np.append(cur_batch[j], chunk_elem,
                                             axis=self._batch_columns[j])
        start_time = time.time()
        try:
            if cur_batch[0].shape[0] > 0 and cur_batch[0].shape[first_col] > self._batch_size:
                split = [np.split(b, [self._batch_size], axis=self._batch_columns[j])
                         for j, b in enumerate(cur_batch)]
                cur_batch = [batch for batch, _ in split]
                try:
                    self._internal_queue.put([rest for _, rest in split], block=False)
                except Queue.Full:
                    pass
                assert cur_batch[0].shape[first_col] == self._batch_size
            if data_input_coordinator.is_active():
                for b, q, c in zip(self._input_blob_names, self._queues, cur_batch):
                    self._enqueue(b, q, c)
        finally:
            self._metrics.put_metric("enqueue_time", time.time() - start_time)

    def _init_scratch(self):
        self._scratch_blob = {}
        self._scratch_status = {}
        for blob_name in self._input_blob_names:
            scratch_name = f"{self._namescope}{blob_name}_scratch_{self._input_source_name}"
            self._scratch_blob[blob_name] = core.BlobReference(scratch_name)
            self._scratch_status[blob_name] = core.BlobReference(scratch_name + "_status")
        # made here, before any thread runs, so the enqueuer only ever overwrites them
        for b in chain(self._scratch_blob.values(), self._scratch_status.values()):
            workspace.FeedBlob(b, np.array([]).astype(np.float32),
                               device_option=self._device_option)

    def _enqueue(self, blob_name, queue, data_arr):
        """Enqueue one input's batch into its Caffe2 queue (waiting while it is full)."""
        workspace.FeedBlob(self._scratch_blob[blob_name], data_arr,
                           device_option=self._device_option)
        op = core.CreateOperator(
            "SafeEnqueueBlobs", [queue, self._scratch_blob[blob_name]],
            [self._scratch_blob[blob_name], self._scratch_status[blob_name]],
            device_option=self._device_option)
        workspace.RunOperatorOnce(op)

    def _create_caffe2_queues(self, net):
        for blob_name in self._input_blob_names:
            qname = f"{blob_name}_c2queue_{self._input_source_name}"
            workspace.RunOperatorOnce(core.CreateOperator(
                "CreateBlobsQueue", [], [qname], num_blobs=1,
                capacity=self._c2_queue_capacity))
            self._queues.append(core.ScopedBlobReference(qname))

    def _create_caffe2_ops(self, net):
        for q, blob_name in zip(self._queues, self._input_blob_names):
            net.DequeueBlobs(q, blob_name, timeout_secs=float(self._timeout))

    def _log_inputs_per_interval(self, inputs, force=False):
        self._inputs += inputs
        current_seconds = time.time()
        delta_seconds = current_seconds - self._prev_seconds
        if delta_seconds >= LOG_INT_SECS or force:
            inputs_per_sec = int(self._inputs / delta_seconds) if delta_seconds > 0 else 0
            qsize = self._internal_queue.qsize()
            log.info("%s/%s: %d inputs/sec", self._input_source_name, self._namescope,
                     inputs_per_sec)
            log.info("-- queue: %d batches", qsize)
            self._metrics.put_metric("inputs_per_sec", inputs_per_sec, False)
            self._metrics.put_metric("queue_size", qsize, False)
            self._metrics.put_metric("time_elapsed", delta_seconds, False)
            self._metrics.log_metrics()
            self._metrics.reset_metrics()
            self._inputs = 0
            self._prev_seconds = current_seconds


class GlobalCoordinator(GlobalWorkerCoordinator):
    def __init__(self):
        super().__init__()
        self._queues = {}

    def get_queue(self, queue_name, max_buffered_batches):
        assert isinstance(max_buffered_batches, int)
        if queue_name not in self._queues:
            self._queues[queue_name] = Queue.Queue(maxsize=max_buffered_batches)
        return self._queues[queue_name]

    def reset_data_input(self, namescope, name, net, batch_size):
        log.info("Reset data input %s, batch size %d", name, batch_size)
        for c in self._coordinators:
            if c._worker_name == name and c._state._namescope == namescope:
                c._state._batch_size = batch_size
                c._state._create_caffe2_ops(net)


class DataWorker(Worker):
    def __init__(self, coordinator, worker_id, worker_fun, metrics, batch_size, batch_feeder):
        super().__init__(coordinator, worker_id, worker_fun=worker_fun, metrics=metrics)
        self._batch_size = batch_size
        self._batch_feeder = batch_feeder

    def run(self):
        input_data = self._worker_fun(self._worker_id, self._batch_size)
        self._batch_feeder.put(input_data, self._coordinator)

    def finish(self):
        self._metrics.put_metric("fetcher_time", time.time() - self._start_time)


global_coordinator = GlobalCoordinator()


def enqueuer(coordinator, batch_feeder):
    while coordinator.is_active():
        batch_feeder._enqueue_batch(coordinator)
