"""Blobs queues: CreateBlobsQueue, (Safe)EnqueueBlobs, (Safe)DequeueBlobs, CloseBlobsQueue.

Caffe2's caffe2/queue/{blobs_queue,queue_ops}: a bounded FIFO of records,
each record ``num_blobs`` blobs, shared by the threads that run the ops (data
input threads enqueue, the training net dequeues).  Writers wait while the
queue is full, readers while it is empty (up to ``timeout_secs`` when set);
``CloseBlobsQueue`` wakes them all: writes then fail, reads fail once the
queue is empty.  EnqueueBlobs / DequeueBlobs fail the op in those cases;
the Safe variants instead set a last bool output, ``status`` (True: nothing
was enqueued / dequeued), which a plan's execution step can stop on.

Caffe2 swapped the blobs into the queue, so the enqueued blobs were left
holding stale queue slots; here the queue keeps the arrays themselves and
the enqueued blobs keep their values (no copy: caffe2lite kernels never
write into their inputs' arrays, so the queued record cannot change).
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema


class BlobsQueue:
    """A bounded, closable FIFO of records (tuples of ``num_blobs`` blob values)."""

    def __init__(self, name: str, capacity: int, num_blobs: int, field_names=()):
        self.name = name
        self.capacity = capacity
        self.num_blobs = num_blobs
        self.field_names = list(field_names)
        self._records: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closing = False

    def __repr__(self):
        return (f"BlobsQueue({self.name!r}, capacity={self.capacity}, "
                f"num_blobs={self.num_blobs}, size={len(self._records)}, "
                f"closed={self._closing})")

    def blocking_write(self, record) -> bool:
        """Append ``record`` once there is room; False (nothing written) if closed first."""
        with self._cond:
            self._cond.wait_for(lambda: self._closing or len(self._records) < self.capacity)
            if len(self._records) >= self.capacity or self._closing:
                return False
            self._records.append(tuple(record))
            self._cond.notify_all()
            return True

    def blocking_read(self, timeout_secs: float = 0.0):
        """The oldest record, waiting for one (at most ``timeout_secs`` when > 0);
        None when the queue is closed and empty, or the wait timed out."""
        with self._cond:
            ready = lambda: self._closing or bool(self._records)  # noqa: E731
            if timeout_secs > 0:
                self._cond.wait_for(ready, timeout=timeout_secs)
            else:
                self._cond.wait_for(ready)
            if not self._records:
                return None
            record = self._records.popleft()
            self._cond.notify_all()
            return record

    def put_back(self, records) -> None:
        """Return records read but not used to the front of the queue, in order."""
        with self._cond:
            self._records.extendleft(reversed(records))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closing


def _queue(ctx, value) -> BlobsQueue:
    if not isinstance(value, BlobsQueue):
        ctx.fail(f"{ctx.input_label(0)} must hold a BlobsQueue (made by CreateBlobsQueue), "
                 f"got {type(value).__name__}")
    return value


def _check_width(ctx, queue, n_data, extra=""):
    if n_data != queue.num_blobs:
        ctx.fail(f"the queue '{queue.name}' holds records of {queue.num_blobs} blobs, the op "
                 f"names {n_data} data blobs{extra}")


def _status(failed: bool):
    return np.array(failed)  # Caffe2: a bool tensor resized to no dims


register_schema(OpSchema(
    "CreateBlobsQueue", num_inputs=0, num_outputs=1,
    outputs=[("queue", "the new, empty queue")],
    args=[Arg("capacity", "int", 1, "records the queue holds before writers wait"),
          Arg("num_blobs", "int", 1, "blobs per record"),
          Arg("enforce_unique_name", "bool", False, "fail if a blob named like one of "
              "Caffe2's queue slots ('<queue>_<i>_<j>') exists"),
          Arg("field_names", "strings", [], "names of the record's blobs (num_blobs of "
              "them), for statistics")],
    doc="queue = an empty BlobsQueue of `capacity` records of `num_blobs` blobs.",
    gradient=NO_GRADIENT, needs_workspace=True, opaque_outputs=True))


@register_kernel("CreateBlobsQueue", devices=("CPU", "CUDA"))
def create_blobs_queue(ctx):
    args, name = ctx.args, ctx.op_def.output[0]
    capacity, num_blobs, fields = args["capacity"], args["num_blobs"], args["field_names"]
    ctx.enforce(capacity >= 1, f"capacity must be >= 1, got {capacity}")
    ctx.enforce(num_blobs >= 1, f"num_blobs must be >= 1, got {num_blobs}")
    ctx.enforce(not fields or len(fields) == num_blobs,
                f"Wrong number of fieldNames provided: {len(fields)} for {num_blobs} blobs")
    if args["enforce_unique_name"]:
        for i in range(capacity):
            for j in range(num_blobs):
                ctx.enforce(not ctx.workspace.has_blob(f"{name}_{i}_{j}"),
                            f"Queue internal blob already exists: {name}_{i}_{j}")
    return (BlobsQueue(name, capacity, num_blobs, fields),)


register_schema(OpSchema(
    "EnqueueBlobs", num_inputs=(2, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out + 1,
    enforce_inplace=lambda i, j: i == j + 1,
    inputs=[("queue", "the BlobsQueue"), ("blobs", "the record's blobs")],
    outputs=[("blobs", "the same blobs (in place)")],
    doc="Append (blobs...) to the queue, waiting while it is full; fails if the queue is "
        "closed.",
    gradient=NO_GRADIENT))


@register_kernel("EnqueueBlobs", devices=("CPU", "CUDA"))
def enqueue_blobs(ctx, queue, *blobs):
    queue = _queue(ctx, queue)
    _check_width(ctx, queue, len(blobs))
    if not queue.blocking_write(blobs):
        ctx.fail(f"the queue '{queue.name}' is closed: nothing was enqueued")
    return blobs


register_schema(OpSchema(
    "DequeueBlobs", num_inputs=1, num_outputs=(1, None),
    inputs=[("queue", "The shared pointer for the BlobsQueue")],
    outputs=[("blob", "The blob to store the dequeued data")],
    args=[Arg("timeout_secs", "float", 0.0, "Timeout in secs, default: no timeout")],
    doc="Dequeue the blobs from queue: the oldest record, waiting for one; fails when the "
        "queue is closed and empty, or after timeout_secs (when > 0).",
    gradient=NO_GRADIENT))


@register_kernel("DequeueBlobs", devices=("CPU", "CUDA"))
def dequeue_blobs(ctx, queue):
    queue = _queue(ctx, queue)
    _check_width(ctx, queue, len(ctx.op_def.output))
    timeout = ctx.args["timeout_secs"]
    start = time.monotonic()
    record = queue.blocking_read(timeout)
    if record is None:
        if queue.closed:
            ctx.fail(f"the queue '{queue.name}' is closed and empty: nothing to dequeue")
        ctx.fail(f"DequeueBlobs timed out in {timeout:g} secs (waited "
                 f"{time.monotonic() - start:.2f} s on queue '{queue.name}')")
    return record


register_schema(OpSchema(
    "CloseBlobsQueue", num_inputs=1, num_outputs=0,
    inputs=[("queue", "the BlobsQueue")],
    doc="Close the queue: waiting writers fail, readers fail once it is empty.",
    gradient=NO_GRADIENT))


@register_kernel("CloseBlobsQueue", devices=("CPU", "CUDA"))
def close_blobs_queue(ctx, queue):
    _queue(ctx, queue).close()
    return ()


register_schema(OpSchema(
    "SafeEnqueueBlobs", num_inputs=(2, None), num_outputs=(2, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out,
    enforce_inplace=lambda i, j: i == j + 1,
    inputs=[("queue", "The shared pointer for the BlobsQueue"), ("blobs", "the record")],
    outputs=[("blobs", "the same blobs (in place)"), ("status", "bool: True when the queue "
                                                                "was closed (not enqueued)")],
    doc="Enqueue the blobs into queue. When the queue is closed and full, the output status "
        "will be set to true which can be used as exit criteria for execution step. The 1st "
        "input is the queue and the last output is the status. The rest are data blobs.",
    gradient=NO_GRADIENT))


@register_kernel("SafeEnqueueBlobs", devices=("CPU", "CUDA"))
def safe_enqueue_blobs(ctx, queue, *blobs):
    queue = _queue(ctx, queue)
    _check_width(ctx, queue, len(blobs))
    return blobs + (_status(not queue.blocking_write(blobs)),)


register_schema(OpSchema(
    "SafeDequeueBlobs", num_inputs=1, num_outputs=(2, None),
    inputs=[("queue", "The shared pointer for the BlobsQueue")],
    outputs=[("blob", "The blob to store the dequeued data"),
             ("status", "Is set to 0/1 depending on the success of dequeue")],
    args=[Arg("num_records", "int", 1, "(default 1) If > 1, multiple records will be "
              "dequeued and tensors for each column will be concatenated. This requires all "
              "tensors in the records to be at least 1D, and to have the same inner "
              "dimensions.")],
    doc="Dequeue the blobs from queue. When the queue is closed and empty, the output "
        "status will be set to true (the data blobs keep their values), which can be used as "
        "exit criteria for execution step. The 1st input is the queue and the last output "
        "is the status. The rest are data blobs.",
    gradient=NO_GRADIENT, needs_workspace=True, opaque_outputs=True))


def _concat_records(ctx, records):
    columns = []
    for col in range(len(records[0])):
        parts = [np.asarray(r[col]) if not ctx.device.is_device_array(r[col]) else r[col]
                 for r in records]
        first = parts[0]
        for k, part in enumerate(parts):
            if part.ndim == 0 or part.shape[1:] != first.shape[1:] or part.dtype != first.dtype:
                ctx.fail(f"record {k} of column {col}: cannot concatenate a "
                         f"{part.dtype}{list(part.shape)} tensor to "
                         f"{first.dtype}{list(first.shape)} ones (records must be at least 1-D "
                         f"with the same inner dimensions and type)")
        columns.append(ctx.xp.concatenate(parts) if first.dtype != object
                       else np.concatenate(parts))
    return columns


@register_kernel("SafeDequeueBlobs", devices=("CPU", "CUDA"))
def safe_dequeue_blobs(ctx, queue):
    queue = _queue(ctx, queue)
    outputs = list(ctx.op_def.output)
    _check_width(ctx, queue, len(outputs) - 1, " (plus the status output)")
    num_records = ctx.args["num_records"]
    ctx.enforce(num_records > 0, f"num_records must be > 0, got {num_records}")
    records = []
    for _ in range(num_records):
        record = queue.blocking_read()
        if record is None:
            break
        records.append(record)
    if not records:  # closed and empty: the data blobs stay as they were
        current = ctx.workspace.blob_dict
        return tuple(current.get(name) for name in outputs[:-1]) + (_status(True),)
    try:
        data = list(records[0]) if len(records) == 1 else _concat_records(ctx, records)
    except Exception:
        queue.put_back(records)  # a failed op loses nothing: the records stay queued
        raise
    return tuple(data) + (_status(False),)
