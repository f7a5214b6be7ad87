"""CreateTextFileReader and TextFileReaderRead: batches of rows from a tab-separated file.

After caffe2/operators/text_file_reader.cc: rows end at a newline, fields are split at
tabs, each field is a STRING (bytes, as caffe2lite holds strings) or FLOAT column, and
the file is read ``num_passes`` times over, a batch running on across a pass's end.  A
read returns up to ``batch_size`` rows, one 1-D tensor per field; at the end, empty ones
(``caffe2lite.text_file_reader.TextFileReader`` stops on that).

A batch is split and converted at once (a row's tab count checked for every row with
one NumPy call, a float column parsed by NumPy), and a read that fails -- a row with
the wrong number of fields, a float that does not parse -- puts its rows back, so the
next read sees them again and no blob changes.  Reads of one reader are serialised by
its lock, as Caffe2's.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema, safety
from caffe2lite.runtime.serialization import DataType

STRING, FLOAT = DataType.Value("STRING"), DataType.Value("FLOAT")
FIELD_TYPES = {STRING: "STRING", FLOAT: "FLOAT"}


class TextFileReaderInstance:
    """An open file, the passes left, the rows read so far and rows put back."""

    def __init__(self, path: str, num_passes: int, field_types: list):
        self.path, self.num_passes, self.field_types = path, num_passes, list(field_types)
        self.lock = threading.Lock()
        self.rows_read = 0
        self._passes_done = 0
        self._pending: list = []
        self._file = open(path, encoding="utf-8", newline="\n")

    def take(self, n: int) -> list:
        """Up to n lines, without their newlines, running on into the next pass."""
        lines, self._pending = self._pending[:n], self._pending[n:]
        while len(lines) < n and self._file is not None:
            more = list(itertools.islice(self._file, n - len(lines)))
            lines += more
            if len(lines) < n:  # the end of this pass
                self._passes_done += 1
                if self._passes_done >= self.num_passes:
                    self._file.close()
                    self._file = None
                else:
                    self._file.seek(0)
        return [line[:-1] if line.endswith("\n") else line for line in lines]

    def put_back(self, lines: list) -> None:
        self._pending = list(lines) + self._pending

    def __del__(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()


register_schema(OpSchema(
    "CreateTextFileReader", num_inputs=0, num_outputs=1,
    args=[Arg("filename", "string", "", "path of the tab-separated file"),
          Arg("num_passes", "int", 1, "how many times the file is read through"),
          Arg("field_types", "ints", [], "the DataType of each field: STRING or FLOAT")],
    outputs=[("handler", "the reader (an opaque blob)")],
    doc="Create a text file reader. Fields are delimited by <TAB>, rows by newlines.",
    gradient=NO_GRADIENT, needs_workspace=True, opaque_outputs=True))

register_schema(OpSchema(
    "TextFileReaderRead", num_inputs=1, num_outputs=(1, None),
    args=[Arg("batch_size", "int", 1, "the most rows one read returns")],
    inputs=[("handler", "a reader made by CreateTextFileReader")],
    outputs=[("fields", "one 1-D tensor per field, a value per row read; empty at the end")],
    doc="Read a batch of rows from the given text file reader instance. Expects the number "
        "of fields to be equal to the number of outputs. When end of file is reached, "
        "returns empty tensors.",
    gradient=NO_GRADIENT))


@register_kernel("CreateTextFileReader", devices=("CPU",))
def create_text_file_reader(ctx):
    args = ctx.args
    types = list(args["field_types"])
    ctx.enforce(len(types) > 0, "field_types arg must be non-empty")
    unsupported = [t for t in types if t not in FIELD_TYPES]
    if unsupported:
        ctx.fail(f"argument 'field_types' may hold STRING ({STRING}) and FLOAT ({FLOAT}) "
                 f"only, got {unsupported}")
    ctx.enforce(args["num_passes"] >= 1, f"num_passes must be >= 1, got {args['num_passes']}")
    path = args["filename"]
    ctx.enforce(bool(path), "argument 'filename' is required")
    if ctx.limits.confine:
        path = safety.inside_root(ctx.workspace.root_folder, path, ctx.where,
                                  f"argument 'filename' = {path!r}")
    try:
        return (TextFileReaderInstance(path, args["num_passes"], types),)
    except OSError as e:
        ctx.fail(f"cannot open argument 'filename' = {args['filename']!r}: {e.strerror}")


def _columns(ctx, reader, lines):
    """The fields of these rows, one array per field, or EnforceError naming the row."""
    n_fields = len(reader.field_types)
    rows = np.array(lines, dtype=str)
    if rows.size:
        tabs = np.char.count(rows, "\t")
        bad = np.flatnonzero(tabs != n_fields - 1)
        if bad.size:
            row = reader.rows_read + int(bad[0]) + 1
            ctx.fail(f"Invalid number of columns at row {row}: {int(tabs[bad[0]]) + 1} "
                     f"fields, expected {n_fields}")
    fields = np.array("\t".join(lines).split("\t") if lines else [], dtype=str)
    columns = []
    for j, kind in enumerate(reader.field_types):
        column = fields[j::n_fields]
        if kind == STRING:
            columns.append(np.char.encode(column, "utf-8").astype(object))
            continue
        try:
            columns.append(column.astype(np.float32))
        except ValueError as e:
            ctx.fail(f"field {j} (FLOAT) of a row in rows {reader.rows_read + 1}-"
                     f"{reader.rows_read + len(lines)}: {e}")
    return columns


@register_kernel("TextFileReaderRead", devices=("CPU",))
def text_file_reader_read(ctx, reader):
    if not isinstance(reader, TextFileReaderInstance):
        ctx.fail_input(0, f"must hold a reader made by CreateTextFileReader, got "
                          f"{type(reader).__name__}")
    n_out = len(ctx.op_def.output)
    if n_out != len(reader.field_types):
        ctx.fail(f"Invalid number of outputs. Expected {len(reader.field_types)} got {n_out}")
    batch = ctx.args["batch_size"]
    ctx.enforce(batch >= 0, f"batch_size must be >= 0, got {batch}")
    with reader.lock:
        lines = reader.take(batch)
        try:
            columns = _columns(ctx, reader, lines)
        except Exception:
            reader.put_back(lines)
            raise
        reader.rows_read += len(lines)
    return tuple(columns)
