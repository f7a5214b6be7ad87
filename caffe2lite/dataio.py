"""Caffe2's ``dataio``: the Reader and Writer interfaces that datasets and queues implement.

A Reader adds to a net the ops that read the next batch (``read(net) ->
(should_stop, fields)``), and may support ``reset(net)``; ``read_record``
wraps the fields in the reader's schema, ``execution_step`` builds a step
that loops until ``should_stop``.  A Writer adds the ops that append a batch
(``write(net, fields)``) and ``commit(net)`` at the end.  caffe2lite.dataset
is the in-memory implementation.  (Caffe2's CounterReader and
ReaderWithLimit are not here: their counter ops are another module's.)
"""

from __future__ import annotations

from caffe2lite import core
from caffe2lite.schema import Field, from_blob_list


class Reader:
    """Reads batches of a dataset or stream through ops added to a net."""

    def __init__(self, schema=None):
        if schema is not None:
            assert isinstance(schema, Field)
        self._schema = schema

    def schema(self):
        assert self._schema is not None, "Schema not provided for this reader."
        return self._schema

    def _set_schema(self, schema):
        self._schema = schema

    def setup_ex(self, init_net, finish_net):
        """Add what runs once before reading (init_net) and after (finish_net)."""

    def read_ex(self, local_init_net, local_finish_net):
        read_net = core.Net("reader_body")
        return ([read_net],) + self.read(read_net)

    def read_record_ex(self, local_init_net, local_finish_net):
        nets, should_stop, fields = self.read_ex(local_init_net, local_finish_net)
        if self._schema:
            fields = from_blob_list(self._schema, fields)
        return nets, should_stop, fields

    def read(self, read_net):
        """Add to read_net the ops reading one batch; return (should_stop, fields):
        a bool blob that becomes true at the end of the data, and the batch's blobs.
        The ops must be safe to run on several threads at once."""
        raise NotImplementedError("Readers must implement `read`.")

    def reset(self, net):
        """Add to net the ops that start the reading over."""
        raise NotImplementedError("This reader cannot be resetted.")

    def read_record(self, read_net):
        should_stop, fields = self.read(read_net)
        if self._schema:
            fields = from_blob_list(self._schema, fields)
        return should_stop, fields

    def execution_step(self, reader_net_name=None, external_should_stop=None):
        """(a step running a new reader net until the data ends, the batch's fields)."""
        reader_net = core.Net(reader_net_name or "reader")
        should_stop, fields = self.read_record(reader_net)
        if external_should_stop is not None:
            should_stop = reader_net.Or([external_should_stop, should_stop])
        read_step = core.execution_step(f"{reader_net_name}_step", reader_net,
                                        should_stop_blob=should_stop)
        return read_step, fields


class Writer:
    """Appends batches to a dataset or stream through ops added to a net."""

    _schema = None

    def schema(self):
        return self._schema

    def write(self, writer_net, fields):
        """Add to writer_net the ops that write one batch (blobs ``fields``); they must be
        safe to run on several threads at once."""
        raise NotImplementedError("Writers must implement write.")

    def write_record(self, writer_net, fields):
        if isinstance(fields, Field):
            self._schema = fields
            fields = fields.field_blobs()
        self.write(writer_net, fields)

    def setup_ex(self, init_net, finish_net):
        self.commit(finish_net)

    def write_ex(self, fields, local_init_net, local_finish_net, stop_blob):
        write_net = core.Net("write_net")
        self.write(write_net, fields)
        return [write_net]

    def write_record_ex(self, fields, local_init_net, local_finish_net, stop_blob=None):
        if isinstance(fields, Field):
            self._schema = fields
            fields = fields.field_blobs()
        if stop_blob is None:
            stop_blob = local_init_net.NextName("dequeue_status")
        return self.write_ex(fields, local_init_net, local_finish_net, stop_blob), stop_blob

    def commit(self, finish_net):
        """Add to finish_net the ops that mark the end of the data (may be none)."""


class ReaderBuilder:
    """Makes readers, e.g. one per parallel reading task."""

    def schema(self):
        raise NotImplementedError()

    def setup(self, **kwargs):
        raise NotImplementedError()

    def new_reader(self, **kwargs):
        raise NotImplementedError()


class PipedReaderBuilder(ReaderBuilder):
    """A ReaderBuilder whose readers pass through ``piper(reader=..., **kwargs)``."""

    def __init__(self, builder, piper):
        self._builder = builder
        self._piper = piper

    def schema(self):
        return self._builder.schema()

    def setup(self, **kwargs):
        return self._builder.setup(**kwargs)

    def new_reader(self, **kwargs):
        output = self._piper(reader=self._builder.new_reader(**kwargs), **kwargs)
        return output if isinstance(output, Reader) else output.reader()


class Pipe:
    """A channel with readers and writers (a queue); counts them."""

    def __init__(self, schema=None, obj_key=None):
        self._num_writers = 0
        self._num_readers = 0
        self._schema = schema
        self._obj_key = obj_key

    def schema(self):
        return self._schema

    def setup(self, global_init_net):
        pass

    def reader(self):
        raise NotImplementedError()

    def writer(self):
        raise NotImplementedError()

    def num_readers(self):
        return self._num_readers

    def num_writers(self):
        return self._num_writers

    def _new_writer(self, writer_schema, writer_init_net):
        if writer_schema is not None and self._schema is None:
            self._schema = writer_schema
        self._num_writers += 1

    def _new_reader(self, reader_init_net):
        self._num_readers += 1
