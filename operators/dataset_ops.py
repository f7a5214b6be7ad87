"""Caffe2's dataset ops: reading nested datasets stored as flat columns through a cursor.

CreateTreeCursor, ResetCursor, GetCursorOffset, ReadNextBatch, ComputeOffset,
SortAndShuffle, ReadRandomBatch, CheckDatasetConsistency, TrimDataset,
PackRecords and UnPackRecords (caffe2/operators/dataset_ops.cc).  Columns and
domains are explained in operators/_tree_cursor.py; every read takes whole
top-level records, with every nested list under them.  A cursor holds the
offsets and a lock, so readers on several threads never read a record twice.
PackRecords' output is a 1-D object tensor, one entry per record holding
that record's columns (Caffe2's SharedTensorVectorPtr), for UnPackRecords.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators import _std_shuffle
from caffe2lite.operators._tree_cursor import (TreeCursor, TreeIterator, advance, check_columns,
                                               check_cursor, limits_of, ranges_to_indices,
                                               row_offsets)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, once_per_op,
                                register_kernel, register_schema)

_FIELDS = Arg("fields", "strings", [], "the dataset's column names, as schema.field_names() "
              "gives them (a domain's 'lengths' column before the columns in it)")
_DATA_INPUT = ("dataset_field_0", "the first column of the dataset (one input per field)")


def _iterator(ctx, fields=None) -> TreeIterator:
    return TreeIterator(ctx.args["fields"] if fields is None else fields, ctx.fail)


@once_per_op
def _op_iterator(ctx):
    return _iterator(ctx)


def _schema(op_type, doc, num_inputs=(1, None), num_outputs=(1, None), args=(), inputs=(),
            outputs=(), **kw):
    register_schema(OpSchema(op_type, num_inputs=num_inputs, num_outputs=num_outputs,
                             args=list(args), inputs=inputs, outputs=outputs, doc=doc,
                             gradient=SHOULD_NOT_DO_GRADIENT, **kw))


# -- cursors -------------------------------------------------------------------------
_schema("CreateTreeCursor", "A cursor over a dataset of the given fields, at its start.",
        num_inputs=0, num_outputs=1, args=[_FIELDS],
        outputs=[("cursor", "A blob pointing to an instance of a new TreeCursor.")],
        opaque_outputs=True)


@register_kernel("CreateTreeCursor", devices=("CPU",))
def create_tree_cursor(ctx):
    return (TreeCursor(_iterator(ctx)),)


_schema("ResetCursor", "Resets the offsets for the given TreeCursor. This operation is "
        "thread safe.", num_inputs=1, num_outputs=0,
        inputs=[("cursor", "A blob containing a pointer to the cursor.")])


@register_kernel("ResetCursor", devices=("CPU",))
def reset_cursor(ctx, cursor):
    cursor = check_cursor(ctx, cursor)
    with cursor.lock:
        cursor.offsets = []
    return ()


_schema("GetCursorOffset", "Get the current offset in the cursor (int32, one per domain; "
        "empty before the first read).", num_inputs=1, num_outputs=1,
        inputs=[("cursor", "A blob containing a pointer to the cursor.")],
        outputs=[("offsets", "Tensor containing the offsets for the cursor.")])


@register_kernel("GetCursorOffset", devices=("CPU",))
def get_cursor_offset(ctx, cursor):
    return (np.array(check_cursor(ctx, cursor).offsets, dtype=np.int32),)


def _slice_columns(it, columns, offsets, sizes):
    return tuple(column[offsets[d]:offsets[d] + sizes[d]].copy()
                 for d, column in zip(it.domain, columns))


_schema("ReadNextBatch", "Read the next batch of examples out of the given cursor and data "
        "blobs: batch_size top-level records (fewer at the end, then empty columns), each "
        "column sliced to the rows of those records. ReadNextBatch is thread safe.",
        args=[Arg("batch_size", "int", 1, "Number of top-level entries to read."),
              Arg("enforce_batch_size", "bool", False, "return empty columns instead of a "
                  "last, incomplete batch")],
        inputs=[("cursor", "A blob containing a pointer to the cursor."), _DATA_INPUT],
        outputs=[("field_0", "Tensor containing the next batch for field 0.")],
        num_inputs_outputs=lambda n_in, n_out: n_in == n_out + 1)


@register_kernel("ReadNextBatch", devices=("CPU",))
def read_next_batch(ctx, cursor, *columns):
    cursor = check_cursor(ctx, cursor)
    it = cursor.it
    check_columns(ctx, it, columns, 1)
    batch_size = ctx.args["batch_size"]
    ctx.enforce(batch_size >= 0, f"batch_size must be >= 0, got {batch_size}")
    limits = limits_of(it, columns)
    with cursor.lock:
        offsets = cursor.offsets or [0] * it.num_domains
        sizes, new_offsets = advance(ctx, it, columns, limits, offsets, batch_size)
        cursor.offsets = new_offsets
    if ctx.args["enforce_batch_size"] and sizes[0] < batch_size:
        sizes = [0] * len(sizes)  # the end of the data: empty columns
    return _slice_columns(it, columns, offsets, sizes)


_schema("ComputeOffset", "offsets[r, d] = where top-level record r starts in domain d, "
        "for r = 0..N (int64, N + 1 rows); the cursor is left at the start.",
        num_outputs=1,
        inputs=[("cursor", "A blob containing a pointer to the cursor."), _DATA_INPUT],
        outputs=[("field_0", "Tensor containing offset info for this chunk.")])


@register_kernel("ComputeOffset", devices=("CPU",))
def compute_offset(ctx, cursor, *columns):
    cursor = check_cursor(ctx, cursor)
    it = cursor.it
    check_columns(ctx, it, columns, 1)
    table = row_offsets(ctx, it, columns, limits_of(it, columns))
    with cursor.lock:
        cursor.offsets = [0] * it.num_domains
    return (table,)


_schema("SortAndShuffle", "indices of the top-level records: sorted by the root-level field "
        "sort_by_field_idx (-1: not sorted), shuffled within chunks of batch_size * "
        "shuffle_size, then whole batches shuffled; the shuffles are libstdc++'s "
        "std::shuffle with a default-constructed engine, as in Caffe2 (a fixed order).",
        num_outputs=1,
        args=[Arg("sort_by_field_idx", "int", 1, "field to sort by (-1: no sorting)"),
              Arg("batch_size", "int", 1, "records per batch"),
              Arg("shuffle_size", "int", 1, "batches per shuffled chunk")],
        inputs=[("cursor", "A blob containing a pointer to the cursor."), _DATA_INPUT],
        outputs=[("indices", "Tensor containing sorted indices.")])


@register_kernel("SortAndShuffle", devices=("CPU",))
def sort_and_shuffle(ctx, cursor, *columns):
    it = check_cursor(ctx, cursor).it
    check_columns(ctx, it, columns, 1)
    sort_by, batch, shuffle_size = (ctx.args["sort_by_field_idx"], ctx.args["batch_size"],
                                    ctx.args["shuffle_size"])
    ctx.enforce(-1 <= sort_by < len(it.fields),
                f"sort_by_field_idx must be -1 or a field index < {len(it.fields)}, got "
                f"{sort_by}")
    ctx.enforce(batch > 0 and shuffle_size > 0,
                f"batch_size and shuffle_size must be > 0, got {batch} and {shuffle_size}")
    size = int(columns[max(sort_by, 0)].shape[0])
    if batch * shuffle_size > size:
        shuffle_size = size // batch
    order = np.arange(size)
    if sort_by != -1:
        ctx.enforce(it.domain[sort_by] == 0, f"must sort by a field at the root level; "
                    f"'{it.fields[sort_by]}' is nested")
        keys = columns[sort_by]
        ctx.enforce(keys.ndim == 1 and keys.dtype.kind in "iu",
                    f"the sort field '{it.fields[sort_by]}' must be a 1-D integer column")
        order = np.argsort(keys, kind="stable")
    order = order.tolist()
    chunk = batch * shuffle_size
    if chunk > 1:
        offset = 0
        while offset + chunk < size:
            part = order[offset:offset + chunk]
            _std_shuffle.shuffle(part)
            order[offset:offset + chunk] = part
            offset += chunk
    num_batch = size // batch
    batch_ids = list(range(num_batch))
    _std_shuffle.shuffle(batch_ids)
    head = np.asarray(order[:num_batch * batch], np.int64).reshape(num_batch, batch)
    out = np.concatenate([head[batch_ids].reshape(-1),
                          np.asarray(order[num_batch * batch:], np.int64)])
    return (out.astype(np.int64),)


_schema("ReadRandomBatch", "Read the next batch_size records in the order of idx (with the "
        "offsets matrix of ComputeOffset); loop_over starts idx over at its end. "
        "ReadRandomBatch is thread safe.",
        args=[Arg("batch_size", "int", 1, "Number of top-level entries to read."),
              Arg("enforce_batch_size", "bool", False, "skip a last, incomplete batch"),
              Arg("loop_over", "bool", False, "(bool) Repeat the dataset indefinitely")],
        inputs=[("cursor", "A blob containing a pointer to the cursor."),
                ("idx", "idx with a shuffled order."),
                ("offsetsmat", "offset matrix containing length offset info."),
                ("dataset_field_0", "First dataset field")],
        outputs=[("field_0", "Tensor containing the next batch for field 0.")],
        num_inputs_outputs=lambda n_in, n_out: n_in == n_out + 3)


@register_kernel("ReadRandomBatch", devices=("CPU",))
def read_random_batch(ctx, cursor, idx, offsets, *columns):
    cursor = check_cursor(ctx, cursor)
    it = cursor.it
    check_columns(ctx, it, columns, 3)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        ctx.fail(f"{ctx.input_label(1)} must be a 1-D integer tensor of record indices")
    if offsets.ndim != 2 or offsets.dtype.kind not in "iu" or \
            offsets.shape[1] != it.num_domains:
        ctx.fail(f"{ctx.input_label(2)} must be ComputeOffset's (N + 1, {it.num_domains}) "
                 f"int64 matrix, got {offsets.dtype}{list(offsets.shape)}")
    batch_size, n = ctx.args["batch_size"], int(idx.shape[0])
    ctx.enforce(batch_size >= 0, f"batch_size must be >= 0, got {batch_size}")
    with cursor.lock:  # the whole read: the cursor moves only when the batch is read
        position = cursor.offsets[0] if cursor.offsets else 0
        if ctx.args["enforce_batch_size"] and position + batch_size > n:
            position = n
        if ctx.args["loop_over"] and position >= n:
            position = 0
        chosen = np.asarray(idx[position:position + batch_size], np.int64)
        if chosen.size and (chosen.min() < 0 or chosen.max() + 1 >= offsets.shape[0]):
            ctx.fail(f"Out of bound when trying to get elem from offsetsmat: record "
                     f"indices must lie in [0, {offsets.shape[0] - 1})")
        starts, ends = offsets[chosen], offsets[chosen + 1]
        out = []
        for domain, column in zip(it.domain, columns):
            rows = ranges_to_indices(starts[:, domain], ends[:, domain] - starts[:, domain])
            if rows.size and (rows.min() < 0 or rows.max() >= column.shape[0]):
                ctx.fail(f"offsets point outside field '{it.fields[len(out)]}' "
                         f"({column.shape[0]} rows)")
            out.append(column[rows])
        cursor.offsets = [position + batch_size]
    return tuple(out)


# -- whole datasets --------------------------------------------------------------------
_schema("CheckDatasetConsistency", "Checks that the given data fields represents a "
        "consistent dataset under the schema specified by the `fields` argument: columns of "
        "one domain have the same number of rows, and each domain's lengths add up to the "
        "rows of the domain they open. Operator fails if the fields are not consistent.",
        num_outputs=0, args=[_FIELDS], inputs=[("field_0", "Data for field 0.")])


@register_kernel("CheckDatasetConsistency", devices=("CPU",))
def check_dataset_consistency(ctx, *columns):
    it = _op_iterator(ctx)
    check_columns(ctx, it, columns, 0)
    limits = [None] * it.num_domains
    for i, (domain, column) in enumerate(zip(it.domain, columns)):
        rows = int(column.shape[0])
        if limits[domain] is not None and limits[domain] != rows:
            ctx.fail(f"Inconsistent sizes for fields belonging to same domain. Field: {i} "
                     f"({it.fields[i]}); Length field index: {domain}; Previous size: "
                     f"{limits[domain]}; New size: {rows}")
        limits[domain] = rows
    limits = [np.iinfo(np.int64).max if x is None else x for x in limits]
    table = row_offsets(ctx, it, columns, limits)
    for j in range(it.num_domains):
        if limits[j] != np.iinfo(np.int64).max and table[-1, j] != limits[j]:
            ctx.fail(f"domain {j} has {limits[j]} rows but its lengths field "
                     f"'{it.fields[it.length_fields[j - 1]]}' adds up to {table[-1, j]}")
    return ()


_schema("TrimDataset", "Trim the given dataset inplace, given the dataset blobs and the field "
        "specs. Trimming happens such that the dataset will contain the largest possible "
        "number of records that is a multiple of the 'multiple_of' argument.",
        enforce_inplace=lambda i, j: i == j,
        args=[_FIELDS, Arg("multiple_of", "int", 1, "the number of records becomes a "
                           "multiple of this")])


@register_kernel("TrimDataset", devices=("CPU",))
def trim_dataset(ctx, *columns):
    it = _op_iterator(ctx)
    check_columns(ctx, it, columns, 0)
    multiple_of = ctx.args["multiple_of"]
    ctx.enforce(multiple_of >= 1, f"multiple_of must be >= 1, got {multiple_of}")
    limits = limits_of(it, columns)
    table = row_offsets(ctx, it, columns, limits)
    keep = table[(limits[0] // multiple_of) * multiple_of]
    return tuple(column[:keep[d]] for d, column in zip(it.domain, columns))


_schema("PackRecords", "Given a dataset under a schema specified by the `fields` argument "
        "will pack all the input tensors into one, where each tensor element represents a "
        "row of data (batch of size 1). UnPackRecords reverses it.",
        num_outputs=1,
        args=[_FIELDS, Arg("pack_to_single_shared_ptr", "bool", False, "(Caffe2's memory "
                           "layout switch; the records are the same either way)")],
        outputs=[("tensor", "One dimensional tensor having a complex type of "
                            "SharedTensorVectorPtr.")],
        opaque_outputs=True)


@register_kernel("PackRecords", devices=("CPU",))
def pack_records(ctx, *columns):
    it = _op_iterator(ctx)
    check_columns(ctx, it, columns, 0)
    limits = limits_of(it, columns)
    table = row_offsets(ctx, it, columns, limits)
    # one split per column at the records' boundaries: views, then a copy per record
    pieces = [np.split(column[:table[-1, d]], table[1:-1, d]) if limits[0] else []
              for d, column in zip(it.domain, columns)]
    packed = np.empty(limits[0], dtype=object)
    packed[:] = [tuple(p.copy() for p in record) for record in zip(*pieces)] or []
    return (packed,)


_schema("UnPackRecords", "Given a packed dataset (packed by the PackRecordsOp) and the `fields` "
        "argument describing the datasets schema returns the original dataset format. "
        "Optional prototype tensors (inputs 1...) give the outputs' shapes and types when "
        "the packed tensor is empty.",
        args=[_FIELDS], inputs=[("packed_tensor", "The tensor to be unpacked")])


@register_kernel("UnPackRecords", devices=("CPU",))
def unpack_records(ctx, packed, *prototypes):
    fields, n_out = ctx.args["fields"], len(ctx.op_def.output)
    if not (isinstance(packed, np.ndarray) and packed.dtype == object and packed.ndim == 1
            and all(isinstance(r, tuple) for r in packed)):
        ctx.fail(f"{ctx.input_label(0)} must be a tensor made by PackRecords")
    if packed.size == 0 and not prototypes:
        ctx.fail("Unpacking empty record without shape will leave output blobs in undefined "
                 "state.")
    model = list(prototypes) if prototypes else list(packed[0])
    if len(model) != len(fields) or len(model) != n_out:
        ctx.fail(f"{len(model)} tensors per record, {len(fields)} fields and {n_out} outputs "
                 f"must agree")
    out = []
    for j, first in enumerate(model):
        column = [record[j] for record in packed]
        for k, part in enumerate(column):
            if part.ndim != first.ndim or part.dtype != first.dtype or \
                    part.shape[1:] != first.shape[1:]:
                ctx.fail(f"record {k}, field {j} ('{fields[j]}'): {part.dtype}"
                         f"{list(part.shape)} does not match {first.dtype}{list(first.shape)}")
        out.append(np.concatenate(column) if column else first[:0].copy())
    return tuple(out)
