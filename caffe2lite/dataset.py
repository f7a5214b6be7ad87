"""Caffe2's ``dataset``: an in-memory dataset of a record schema, one tensor per column.

``Dataset(schema_or_field_names, name)`` holds the columns as blobs;
``init_empty(net)`` makes them empty, ``writer()`` appends batches
(CheckDatasetConsistency + AtomicAppend under a mutex), ``reader()`` reads
batches of whole records in order through a TreeCursor (ReadNextBatch),
``random_reader()`` in the order of an index blob (ComputeOffset,
SortAndShuffle, ReadRandomBatch), ``trim(net, multiple_of)`` cuts it to a
multiple of records.  The readers' ``should_stop`` comes from ``IsEmpty`` on
the batch's first column, as in Caffe2.
"""

from __future__ import annotations

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.dataio import Reader, Writer
from caffe2lite.schema import InitEmptyRecord, Struct, from_blob_list, from_column_list


class _CursorReader(Reader):
    """What both dataset readers share: a TreeCursor made in the init net, and reset."""

    def __init__(self, dataset, name):
        Reader.__init__(self, dataset.content())
        self.dataset = dataset
        self.name = name or (dataset.name + "_cursor")
        self.cursor = None

    def setup_ex(self, init_net, exit_net):
        if self.cursor is None:
            self.cursor = init_net.CreateTreeCursor(
                [], init_net.NextScopedBlob(self.name), fields=self.dataset.fields)

    def reset(self, net):
        net.ResetCursor([self.cursor], [])


class _DatasetReader(_CursorReader):
    def __init__(self, dataset, name, batch_size=1, enforce_batch_size=False):
        """Use Dataset.reader()."""
        super().__init__(dataset, name)
        self.batch_size = batch_size
        self.enforce_batch_size = enforce_batch_size

    def read(self, read_net):
        assert self.cursor, "setup not called."
        content = self.dataset.content()
        with core.NameScope(read_net.NextName(self.name)):
            fields = read_net.ReadNextBatch(
                [self.cursor] + content.field_blobs(), content.field_names(),
                batch_size=self.batch_size, enforce_batch_size=self.enforce_batch_size)
            fields = core.output_to_list(fields)
            return read_net.IsEmpty([fields[0]]), fields


class _DatasetRandomReader(_CursorReader):
    def __init__(self, dataset, name, indices, batch_size=1, loop_over=False,
                 enforce_batch_size=False):
        """Use Dataset.random_reader()."""
        super().__init__(dataset, name)
        self.indices = indices
        self.batch_size = batch_size
        self.loop_over = loop_over
        self.enforce_batch_size = enforce_batch_size

    def computeoffset(self, net):
        self.reset(net)
        self.offsets = net.ComputeOffset(
            [self.cursor] + self.dataset.content().field_blobs(), "offsets")

    def sort_and_shuffle(self, net, sort_by_field=None, shuffle_size=1, batch_size=1):
        content = self.dataset.content()
        sort_by_field_idx = -1
        if sort_by_field:
            assert sort_by_field in content.field_names(), "Must be valid field."
            sort_by_field_idx = content.field_names().index(sort_by_field)
        self.reset(net)
        self.indices = net.SortAndShuffle(
            [self.cursor] + content.field_blobs(), "indices",
            sort_by_field_idx=sort_by_field_idx, shuffle_size=shuffle_size,
            batch_size=batch_size)

    def read(self, read_net):
        assert self.cursor, "setup_ex not called"
        assert self.indices, "sort_and_shuffle not called"
        assert self.offsets, "computeoffset not called"
        content = self.dataset.content()
        with core.NameScope(read_net.NextName(self.name)):
            fields = read_net.ReadRandomBatch(
                [self.cursor, self.indices, self.offsets] + content.field_blobs(),
                content.field_names(), batch_size=self.batch_size,
                enforce_batch_size=self.enforce_batch_size, loop_over=self.loop_over)
            fields = core.output_to_list(fields)
            return read_net.IsEmpty([fields[0]]), fields


class _DatasetWriter(Writer):
    def __init__(self, content):
        """Use Dataset.writer()."""
        self._content = content
        self.mutex = None

    def setup_ex(self, init_net, exit_net):
        if self.mutex is None:
            self.mutex = init_net.CreateMutex([])

    def write(self, writer_net, fields):
        """Add to writer_net a consistency check of ``fields`` and their AtomicAppend to
        the dataset's columns."""
        assert self.mutex is not None, "setup not called."
        field_blobs = self._content.field_blobs()
        assert len(fields) == len(field_blobs), (
            f"Expected {len(field_blobs)} fields, got {len(fields)}.")
        writer_net.CheckDatasetConsistency(fields, [], fields=self._content.field_names())
        writer_net.AtomicAppend([self.mutex] + field_blobs + list(fields), field_blobs)

    def commit(self, finish_net):
        """Nothing to do for an in-memory dataset."""


def Const(net, value, dtype=None, name=None):  # noqa: N802 (Caffe2's name)
    """A new external input of ``net`` (named uniquely from ``name``), fed ``value`` now."""
    assert isinstance(net, core.Net), "net must be a core.Net instance."
    value = np.array(value, dtype=dtype)
    blob = net.AddExternalInput(net.NextName(prefix=name))
    workspace.FeedBlob(str(blob), value)
    return blob


def execution_step_with_progress(name, init_net, substeps, rows_read):
    report_net = core.Net("report_net")
    report_net.Print([rows_read], [])
    return core.execution_step(name, substeps, report_net=report_net,
                               concurrent_substeps=True, report_interval=5)


class Dataset:
    """An in-memory dataset of a fixed schema, stored as one tensor per column."""

    def __init__(self, fields, name=None):
        """``fields``: a schema.Struct or a list of column names (schema.py's format);
        ``name`` prefixes the blobs.  Initialize with init_empty or init_from_dataframe."""
        assert isinstance(fields, (list, Struct)), (
            "fields must be either a Struct or a list of raw field names.")
        if isinstance(fields, list):
            fields = from_column_list(fields)
        self.schema = fields
        self.fields = fields.field_names()
        self.field_types = fields.field_types()  # as in Caffe2: a list, not a method
        self.name = name or "dataset"
        self.field_blobs = fields.field_blobs() if fields.has_blobs() else None

    def trim(self, net, multiple_of):
        """Add to net a TrimDataset keeping a multiple of ``multiple_of`` records."""
        net.TrimDataset(self.field_blobs, self.field_blobs, fields=self.fields,
                        multiple_of=multiple_of)

    def init_empty(self, init_net):
        """Add to init_net the ops that make every column empty."""
        self.field_blobs = InitEmptyRecord(init_net, self.schema.clone_schema()).field_blobs()

    def init_from_dataframe(self, net, dataframe):
        """Feed each column of a pandas DataFrame now, as an external input of net."""
        assert len(self.fields) == len(dataframe.columns)
        self.field_blobs = [Const(net, dataframe.iloc[:, col].to_numpy().flatten(), name=field)
                            for col, field in enumerate(self.fields)]

    def get_blobs(self):
        assert self
        return self.field_blobs

    def content(self):
        """A record of the column blobs."""
        return from_blob_list(self.schema, self.field_blobs)

    def field_names(self):
        return self.fields

    def reader(self, init_net=None, cursor_name=None, batch_size=1, enforce_batch_size=False):
        """A reader of batch_size records at a time, in order (its cursor made in init_net).
        Not safe while the dataset is appended to."""
        assert self.field_blobs, "Dataset not initialized."
        reader = _DatasetReader(self, cursor_name, batch_size, enforce_batch_size)
        if init_net is not None:
            reader.setup_ex(init_net, None)
        return reader

    def random_reader(self, init_net=None, indices=None, cursor_name=None, batch_size=1,
                      loop_over=False, enforce_batch_size=False):
        """A reader in the order of the ``indices`` blob (or of sort_and_shuffle)."""
        assert self.field_blobs, "Dataset not initialized."
        reader = _DatasetRandomReader(self, cursor_name, indices, batch_size, loop_over,
                                      enforce_batch_size)
        if init_net is not None:
            reader.setup_ex(init_net, None)
        return reader

    def writer(self, init_net=None):
        """A writer appending batches (its mutex made in init_net)."""
        assert self.field_blobs, "Dataset not initialized."
        writer = _DatasetWriter(self.content())
        if init_net is not None:
            writer.setup_ex(init_net, None)
        return writer
