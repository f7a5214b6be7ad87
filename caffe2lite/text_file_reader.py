"""Caffe2's ``caffe2.python.text_file_reader``: a dataio Reader over a tab-separated file.

The init net gets a CreateTextFileReader, each read a TextFileReaderRead of
``batch_size`` rows and an IsEmpty on the first field as the stop signal (the reader
returns empty fields once every pass is read).  Only a Struct of Scalars of str or
float32 fields, as in Caffe2.
"""

from caffe2lite import core
from caffe2lite.dataio import Reader
from caffe2lite.schema import Scalar, Struct, data_type_for_dtype


class TextFileReader(Reader):
    """Wrapper around operators for reading from text files."""

    def __init__(self, init_net, filename, schema, num_passes=1, batch_size=1):
        """init_net: run once at startup; schema: a Struct of str / float32 Scalars;
        num_passes: passes over the data; batch_size: rows per read."""
        assert isinstance(schema, Struct), "Schema must be a schema.Struct"
        for _name, child in schema.get_children():
            assert isinstance(child, Scalar), \
                "Only scalar fields are supported in TextFileReader."
        field_types = [data_type_for_dtype(dtype) for dtype in schema.field_types()]
        Reader.__init__(self, schema)
        self._reader = init_net.CreateTextFileReader(
            [], filename=filename, num_passes=num_passes, field_types=field_types)
        self._batch_size = batch_size

    def read(self, net):
        """Ops reading a batch of rows: (should_stop, field blobs)."""
        blobs = net.TextFileReaderRead(
            [self._reader], len(self.schema().field_names()), batch_size=self._batch_size)
        if isinstance(blobs, core.BlobReference):
            blobs = [blobs]
        is_empty = net.IsEmpty([blobs[0]],
                               core.ScopedBlobReference(net.NextName("should_stop")))
        return (is_empty, blobs)
