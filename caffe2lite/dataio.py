"""Caffe2's ``dataio``: the Reader and Writer interfaces that datasets and queues implement.

A Reader adds to a net the ops that read the next batch (``read(net) ->
(should_stop, fields)``), and may support ``reset(net)``; ``read_record``
wraps the fields in the reader's schema, ``execution_step`` builds a step
that loops until ``should_stop``.  A Writer adds the ops that append a batch
(``write(net, fields)``) and ``commit(net)`` at the end.  caffe2lite.dataset
is the in-memory implementation.

Readers wrapping readers: ``CounterReader`` (0, 1, 2, ... from a counter op),
``ReaderWithLimit(reader, num_iter)`` (stops after ``num_iter`` batches; ``CountUntil``),
``ReaderWithTimeLimit(reader, duration)`` (its Timer ops come with another part of the
port), ``ReaderWithDelay`` (sleeps between batches) and ``CompositeReader`` /
``CompositeReaderBuilder`` (several readers side by side, stopping with the first).
The limited readers' ``data_finished()`` blob says whether the data ran out (True) or
the limit stopped them.
"""

from __future__ import annotations

import time

import numpy as np

from caffe2lite import core
from caffe2lite.schema import Field, Struct, from_blob_list


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


class CounterReader(Reader):
    """Reader that produces increasing integers (0, 1, 2, ...), never stopping."""

    def __init__(self):
        Reader.__init__(self, schema=Struct(("iter", np.int64)))
        self.counter = None
        self.should_stop = None

    def setup_ex(self, global_init_net, global_finish_net):
        if self.counter is None:
            self.counter = global_init_net.CreateCounter([], init_count=0)
            self.should_stop = global_init_net.ConstantFill(
                [], shape=[], dtype=core.DataType.BOOL, value=False)

    def read_ex(self, local_init_net, local_finish_net):
        count_net = core.Net("limited_reader_counter")
        value = count_net.CountUp([self.counter], 1)
        return [count_net], self.should_stop, [value]


class ReaderWithLimitBase(Reader):
    """A reader that also stops on a condition of its own (``check_limiter_condition``)
    and keeps a bool ``data_finished`` blob: true once the wrapped reader ran out."""

    def __init__(self, reader):
        Reader.__init__(self, schema=reader._schema)
        self.reader = reader
        self.net = core.Net("reader_with_limit")
        self._data_finished = self.net.AddExternalInput(self.net.NextName("data_finished"))
        self.should_stop = None

    def setup_ex(self, global_init_net, global_finish_net):
        global_init_net.ConstantFill([], [self._data_finished], shape=[], value=False,
                                     dtype=core.DataType.BOOL)
        self.reader.setup_ex(global_init_net, global_finish_net)
        self.setup_limiter(global_init_net, global_finish_net)

    def read_ex(self, local_init_net, local_finish_net):
        """The limit's check, the wrapped reader's nets, then a net that stops when the
        wrapped reader does (written into the same stop blob: a plan checks it after
        every net) and records that in data_finished."""
        stop_condition_net = core.Net("limited_reader_condition")
        should_stop = self.check_limiter_condition(stop_condition_net)
        nets, local_data_finished, fields = self.reader.read_ex(local_init_net,
                                                                local_finish_net)
        self._set_schema(self.reader._schema)
        check_done_net = core.Net("limited_reader_post")
        check_done_net.Copy(local_data_finished, should_stop)
        check_done_net.Or([self._data_finished, local_data_finished], [self._data_finished])
        return [stop_condition_net] + nets + [check_done_net], should_stop, fields

    def setup_limiter(self, global_init_net, global_finish_net):
        """Add the limit's state to the task's init / finish nets."""
        raise NotImplementedError("Subclass must implement `setup_limiter`")

    def check_limiter_condition(self, stop_condition_net):
        """Add to stop_condition_net the ops computing whether to stop; return that blob."""
        raise NotImplementedError("Subclass must implement `check_limiter_condition")

    def data_finished(self):
        """The bool blob: whether the wrapped reader was exhausted (True) or the limit
        stopped the reading (False)."""
        return self._data_finished


class ReaderWithLimit(ReaderWithLimitBase):
    """Reader that stops after ``num_iter`` batches (``None``: only when the data ends,
    still keeping data_finished)."""

    def __init__(self, reader, num_iter=1):
        super().__init__(reader)
        self.counter = None
        self.num_iter = num_iter
        if self.num_iter is not None:
            self.counter = self.net.AddExternalInput(self.net.NextName("counter"))

    def setup_limiter(self, global_init_net, global_finish_net):
        if self.counter:
            global_init_net.CreateCounter([], [self.counter], init_count=int(self.num_iter))

    def check_limiter_condition(self, stop_condition_net):
        if self.counter:
            return stop_condition_net.CountDown([self.counter], 1)
        return stop_condition_net.ConstantFill([], 1, shape=[], value=False,
                                               dtype=core.DataType.BOOL)


def CountUntil(num_iter):  # noqa: N802 (Caffe2's name)
    return ReaderWithLimit(CounterReader(), num_iter)


class ReaderWithTimeLimit(ReaderWithLimitBase):
    """Reader that stops after ``duration`` seconds (None or <= 0: only when the data
    ends).  Uses Caffe2's TimerBegin / TimerGet / TimerEnd ops."""

    def __init__(self, reader, duration=0):
        super().__init__(reader)
        self.timer = None
        self.duration = duration
        self.duration_ns_blob = None

    def setup_limiter(self, global_init_net, global_finish_net):
        if self.duration is not None and self.duration > 0:
            duration_ns = int(self.duration * (10**9))
            self.timer = global_init_net.TimerBegin([], counter_name="epoch_timer")
            start_time = global_init_net.TimerGet(self.timer)
            self.duration_ns_blob = global_init_net.ConstantFill([start_time],
                                                                 value=duration_ns)
            global_finish_net.TimerEnd([self.timer], [])

    def check_limiter_condition(self, stop_condition_net):
        if self.duration:
            time_elapsed = stop_condition_net.TimerGet(self.timer)
            return stop_condition_net.GE([time_elapsed, self.duration_ns_blob],
                                         str(self.should_stop))
        return stop_condition_net.ConstantFill([], 1, shape=[], value=False,
                                               dtype=core.DataType.BOOL)


class ReaderWithDelay(Reader):
    """Reader that sleeps ``delay`` seconds (a Python op) before each batch (for tests)."""

    def __init__(self, reader, delay):
        Reader.__init__(self, schema=reader._schema)
        self.reader = reader
        self.delay = delay

    def setup_ex(self, global_init_net, global_finish_net):
        self.reader.setup_ex(global_init_net, global_finish_net)

    def read_ex(self, local_init_net, local_finish_net):
        read_net = core.Net("reader_body")

        def sleep_op(*args, **kwargs):
            time.sleep(self.delay)

        read_net.Python(sleep_op)([], [])
        return ([read_net],) + self.reader.read(read_net)


class CompositeReader(Reader):
    """Several readers read side by side; the record is a Struct of theirs by name, and
    it stops as soon as one of them does."""

    def __init__(self, names, readers):
        assert len(names) == len(readers)
        super().__init__(schema=Struct(*[(name, reader.schema())
                                         for name, reader in zip(names, readers)]))
        self._names = names
        self._readers = readers

    def setup_ex(self, init_net, finish_net):
        for reader in self._readers:
            reader.setup_ex(init_net, finish_net)

    def read_ex(self, local_init_net, local_finish_net):
        fields, stop_blobs, sub_nets = [], [], []
        for reader in self._readers:
            nets, should_stop, record = reader.read_record_ex(local_init_net,
                                                              local_finish_net)
            stop_blobs.append(should_stop)
            sub_nets.append(nets)
            fields.extend(record.field_blobs())
        read_nets = []
        local_should_stop = stop_blobs[-1]  # the last reader's, or-ed with the others
        # The earlier readers' stop nets read it before the last reader first writes it:
        # it starts false (Caffe2 left it unwritten, so its first Or had nothing to read).
        local_init_net.ConstantFill([], [local_should_stop], shape=[], value=False,
                                    dtype=core.DataType.BOOL)
        for name, nets, stop_blob in zip(self._names, sub_nets, stop_blobs):
            read_nets.extend(nets)
            if stop_blob == local_should_stop:
                continue  # Or([A, A], A) would not pass the schema check
            stop_net = core.Net(f"{name}_stop")
            stop_net.Or([local_should_stop, stop_blob], local_should_stop)
            read_nets.append(stop_net)
        return read_nets, local_should_stop, fields

    def reset(self, net):
        for reader in self._readers:
            reader.reset(net)


class CompositeReaderBuilder(ReaderBuilder):
    """ReaderBuilder of a CompositeReader over several ReaderBuilders."""

    def __init__(self, names, reader_builders):
        super().__init__()
        self._names = names
        self._reader_builders = reader_builders
        self._schema = Struct(*[(name, builder.schema())
                                for name, builder in zip(names, reader_builders)])

    def schema(self):
        return self._schema

    def setup(self, **kwargs):
        data_finished_blobs = {}
        # A limiter is stateful and used once; it goes to the last reader, so the batch
        # count moves on only when every reader has data.
        limiter = kwargs.pop("limiter", None)
        for i, builder in enumerate(self._reader_builders):
            if i == len(self._reader_builders) - 1 and limiter is not None:
                kwargs["limiter"] = limiter
            blobs = builder.setup(**kwargs)
            overlapping_keys = set(data_finished_blobs) & set(blobs)
            overlapping_values = set(data_finished_blobs.values()) & set(blobs.values())
            assert not overlapping_keys, f"Overlapping keys: {overlapping_keys}"
            assert not overlapping_values, f"Overlapping values: {overlapping_values}"
            data_finished_blobs.update(blobs)
        return data_finished_blobs

    def new_reader(self, **kwargs):
        readers = []
        for builder in self._reader_builders:
            reader = builder.new_reader(**kwargs)
            if isinstance(reader, Reader):
                pass
            elif hasattr(reader, "reader"):
                reader = reader.reader()
            else:
                raise ValueError(f"reader must be an instance of Reader or Pipe, got "
                                 f"{type(reader).__name__}")
            readers.append(reader)
        multi_reader = CompositeReader(self._names, readers)
        assert multi_reader.schema() == self._schema
        return multi_reader
