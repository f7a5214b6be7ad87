"""Caffe2's ``record_queue``: a blobs queue between producer threads and readers.

``RecordQueue(fields)`` creates a BlobsQueue holding one blob per field of the record
schema ``fields`` (a schema Struct, or a list of field names).  ``build(reader,
process)`` returns ``(queue_reader, producer_step, exit_step, schema)``: the producer
step runs ``num_threads`` concurrent substeps, each reading a batch from ``reader``,
passing it through ``process(net, fields)`` when given, and enqueueing it
(SafeEnqueueBlobs), until ``reader`` runs dry; ``queue_reader`` is a dataio Reader
whose ``read`` dequeues a batch (SafeDequeueBlobs, whose status says the queue is
closed and empty); ``exit_step`` closes the queue.  Run the producer and consumer steps
concurrently in one plan, then the exit step.
"""

from __future__ import annotations

from caffe2lite import core, workspace
from caffe2lite.dataio import Reader, Writer
from caffe2lite.schema import Field, Struct, from_column_list


class _QueueReader(Reader):
    """Dequeues one batch of the schema's fields per read."""

    def __init__(self, blobs_queue, schema, name=None):
        super().__init__(schema)
        self.blobs_queue = blobs_queue
        self.name = name

    def read(self, read_net):
        with core.NameScope(read_net.NextName(self.name)):
            status = read_net.NextName()
            fields = read_net.SafeDequeueBlobs(
                self.blobs_queue, self._schema.field_names() + [status])
            return fields[-1], fields[:-1]


class _QueueWriter(Writer):
    """Enqueues one batch of the schema's fields per write (checked for consistency
    first); returns the enqueue status blob."""

    def __init__(self, blobs_queue, schema):
        self.blobs_queue = blobs_queue
        self.schema = schema

    def write(self, writer_net, fields):
        if isinstance(fields, Field):
            fields = fields.field_blobs()
        writer_net.CheckDatasetConsistency(fields, [], fields=self.schema.field_names())
        status = writer_net.NextName()
        writer_net.SafeEnqueueBlobs([self.blobs_queue] + fields, fields + [status])
        return status


class RecordQueue:
    """A queue of records fed from a reader by ``num_threads`` producers (see the
    module doc).  The queue itself is created at once, in the current workspace."""

    def __init__(self, fields, name=None, capacity=1, enforce_unique_name=False,
                 num_threads=1):
        assert isinstance(fields, (list, Struct)), \
            "fields must be either a Struct or a list of raw field names."
        if isinstance(fields, list):
            fields = from_column_list(fields)
        self.schema = fields
        self.name = name or "queue"
        self.num_threads = num_threads
        init_net = core.Net(self.name + "/init_net")
        self.blobs_queue = init_net.CreateBlobsQueue(
            [], 1, capacity=capacity, num_blobs=len(self.schema.field_names()),
            enforce_unique_name=enforce_unique_name)
        workspace.RunNetOnce(init_net)

        self.writer = _QueueWriter(self.blobs_queue, self.schema)
        self.reader = _QueueReader(self.blobs_queue, self.schema, self.name + "_reader")
        exit_net = core.Net(self.name + "/exit_net")
        exit_net.CloseBlobsQueue(self.blobs_queue, 0)
        self.exit_step = core.execution_step(f"{exit_net}_close_step", exit_net)

    def build(self, reader, process=None):
        """``(queue_reader, producer_step, exit_step, schema)`` for feeding the queue
        from ``reader`` (each batch through ``process(net, fields) -> fields`` first)."""
        producers = []
        for i in range(self.num_threads):
            read_net = core.Net(f"reader_{i}")
            should_stop, fields = reader.read_record(read_net)
            write_net = core.Net(f"queue_writer{i}")
            blobs = (process(write_net, fields) if process else fields).field_blobs()
            self.writer.write(write_net, blobs)
            producers.append(core.execution_step(
                f"producer_{i}",
                [core.execution_step(f"reader_{i}", read_net),
                 core.execution_step(f"queue_writer{i}", write_net)],
                should_stop_blob=should_stop))
        producer_step = core.execution_step("producers", producers, concurrent_substeps=True)
        return self.reader, producer_step, self.exit_step, self.schema
