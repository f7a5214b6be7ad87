"""CreateBlobsQueueDB: a DBReader whose records come out of a BlobsQueue.

After caffe2/queue/blobs_queue_db.{h,cc}: producers enqueue serialized records
(SafeEnqueueBlobs) and TensorProtosDBInput -- or anything that takes a DBReader --
reads them as a db, each record dequeued once, the value (and the key, when
``key_blob_index`` >= 0) taken from the record's blobs: a bytes/str blob, or the
first element of a string tensor.  Where Caffe2's cursor logged a timeout or a
closed queue and went on with stale data, the read fails here with a DBError, and
the records a failed batch had already taken go back to the front of the queue.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators.queue_ops import BlobsQueue
from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema
from caffe2lite.runtime.db import DBReader
from caffe2lite.runtime.errors import DBError


def _string(value, what: str) -> bytes:
    """The bytes a record blob holds (Caffe2's GetStringFromBlob)."""
    if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "OSU":
        value = value.reshape(-1)[0]
    if isinstance(value, str):
        value = value.encode("latin-1" if max(map(ord, value), default=0) < 256 else "utf-8")
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value)
    raise DBError(f"{what} holds {type(value).__name__}"
                  f"{list(getattr(value, 'shape', ()))}: Unsupported Blob type (expected a "
                  f"string, or a non-empty string tensor)")


class BlobsQueueDBReader(DBReader):
    """A DBReader over a BlobsQueue: a read dequeues; no seeking, no wrapping round."""

    def __init__(self, queue: BlobsQueue, key_index: int, value_index: int,
                 timeout_secs: float):
        super().__init__(f"BlobsQueue '{queue.name}'", "blobs_queue")
        self.queue, self.key_index, self.value_index = queue, key_index, value_index
        self.timeout_secs = timeout_secs

    def __repr__(self):
        return f"BlobsQueueDBReader({self.queue!r})"

    def open(self) -> "BlobsQueueDBReader":
        return self

    def read_many(self, count: int) -> list[tuple[bytes, bytes]]:
        with self._lock:
            records = []
            try:
                for _ in range(count):
                    record = self.queue.blocking_read(self.timeout_secs)
                    if record is None:
                        raise DBError(f"{self.source}: timed out reading (timeout_secs="
                                      f"{self.timeout_secs}) or the queue is closed, after "
                                      f"{len(records)} of {count} records")
                    records.append(record)
                return [(self._field(r, self.key_index, "key") if self.key_index >= 0
                         else b"", self._field(r, self.value_index, "value"))
                        for r in records]
            except DBError:
                self.queue.put_back(records)
                raise

    def _field(self, record, index: int, what: str) -> bytes:
        if index >= len(record):
            raise DBError(f"{self.source}: {what}_blob_index {index} is past the record's "
                          f"{len(record)} blobs")
        return _string(record[index], f"{self.source}: the {what} blob {index}")


register_schema(OpSchema(
    "CreateBlobsQueueDB", num_inputs=1, num_outputs=1,
    args=[Arg("key_blob_index", "int", -1, "index of the record's blob that holds the key "
                                           "(-1: no key)"),
          Arg("value_blob_index", "int", 0, "index of the record's blob that holds the value"),
          Arg("timeout_secs", "float", 0.0, "how long a read waits for a record (0: no "
                                            "timeout)")],
    inputs=[("queue", "a BlobsQueue (CreateBlobsQueue) of serialized records")],
    outputs=[("reader", "a DBReader that dequeues a record per read")],
    doc="Create a DBReader from a BlobsQueue.",
    gradient=NO_GRADIENT, opaque_outputs=True))


@register_kernel("CreateBlobsQueueDB", devices=("CPU",))
def create_blobs_queue_db(ctx, queue):
    if not isinstance(queue, BlobsQueue):
        ctx.fail_input(0, f"must hold a BlobsQueue (made by CreateBlobsQueue), got "
                          f"{type(queue).__name__}")
    args = ctx.args
    value_index, key_index = args["value_blob_index"], args["key_blob_index"]
    ctx.enforce(0 <= value_index < queue.num_blobs,
                f"value_blob_index must be in [0, {queue.num_blobs}) (the queue's blobs per "
                f"record), got {value_index}")
    ctx.enforce(key_index < queue.num_blobs,
                f"key_blob_index must be -1 or in [0, {queue.num_blobs}), got {key_index}")
    ctx.enforce(args["timeout_secs"] >= 0,
                f"timeout_secs must be >= 0, got {args['timeout_secs']}")
    return (BlobsQueueDBReader(queue, key_index, value_index, args["timeout_secs"]),)
