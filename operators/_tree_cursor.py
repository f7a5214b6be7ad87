"""The tree behind Caffe2's dataset ops: which column measures which domain, and cursors.

A dataset is a list of columns named as in caffe2lite.schema ("a",
"b:lengths", "b:values:lengths", ...).  Every column named "<p>:lengths"
opens a domain "<p>"; every column lies in the domain of the longest such
prefix of its name (or the root), and a domain's lengths column lies in its
parent domain, with one entry per parent row (caffe2/operators/dataset_ops.cc,
TreeIterator).  Offsets are kept per domain: offset 0 counts top-level
records, offset j rows of the domain opened by lengths column j - 1.

``row_offsets`` computes, for every top-level record r, the offset of every
domain where record r starts -- an (N + 1, domains) matrix built with cumsum
and fancy indexing, not row by row -- which ReadNextBatch, ComputeOffset,
PackRecords and TrimDataset all read their slices from.
"""

from __future__ import annotations

import threading

import numpy as np

SEPARATOR = ":"
LENGTHS = "lengths"


class TreeIterator:
    """The domains of a dataset's columns (Caffe2's TreeIterator)."""

    def __init__(self, fields, fail):
        self.fields = list(fields)
        parts = [name.split(SEPARATOR) for name in self.fields]
        self.length_fields = [i for i, p in enumerate(parts) if p[-1] == LENGTHS]
        # domain of each column: 0 = root, j + 1 = opened by length_fields[j]
        self.domain = []
        for i, field_parts in enumerate(parts):
            best_level, best = 1, -1
            for j, length_id in enumerate(self.length_fields):
                prefix = parts[length_id][:-1]
                if length_id == i or field_parts[:len(prefix)] != prefix:
                    continue
                if len(parts[length_id]) > best_level:
                    best_level, best = len(parts[length_id]), j
            self.domain.append(best + 1)
        for i, domain in enumerate(self.domain):
            if domain and self.length_fields[domain - 1] >= i:
                length_id = self.length_fields[domain - 1]
                fail(f"Field {i} ({self.fields[i]}) depends on a field defined afterwards: "
                     f"{length_id} ({self.fields[length_id]}).")

    @property
    def num_domains(self) -> int:
        return len(self.length_fields) + 1

    def parent_domain(self, domain: int) -> int:
        """The domain whose rows a domain's lengths column runs along."""
        return self.domain[self.length_fields[domain - 1]]


class TreeCursor:
    """What a CreateTreeCursor blob holds: the fields and the current offsets."""

    def __init__(self, iterator: TreeIterator):
        self.it = iterator
        self.offsets: list[int] = []  # empty: at the start
        self.lock = threading.Lock()

    def __repr__(self):
        return f"TreeCursor(fields={self.it.fields}, offsets={self.offsets})"


def check_cursor(ctx, value, i=0) -> TreeCursor:
    if not isinstance(value, TreeCursor):
        ctx.fail(f"{ctx.input_label(i)} must hold a TreeCursor (made by CreateTreeCursor), "
                 f"got {type(value).__name__}")
    return value


def check_columns(ctx, it: TreeIterator, columns, first_input: int) -> None:
    """Every column an array of at least one dimension; lengths columns integers."""
    if len(columns) != len(it.fields):
        ctx.fail(f"expected {len(it.fields)} data inputs (one per field {it.fields}), got "
                 f"{len(columns)}")
    for k, column in enumerate(columns):
        if not hasattr(column, "ndim") or column.ndim == 0:
            ctx.fail(f"{ctx.input_label(first_input + k)} (field '{it.fields[k]}') must be a "
                     f"tensor of at least one dimension")
    for length_id in it.length_fields:
        column = columns[length_id]
        if column.dtype.kind not in "iu" or column.ndim != 1:
            ctx.fail(f"{ctx.input_label(first_input + length_id)} (lengths field "
                     f"'{it.fields[length_id]}') must be a 1-D integer tensor, got "
                     f"{column.dtype}{list(column.shape)}")
        if column.size and int(column.min()) < 0:
            ctx.fail(f"{ctx.input_label(first_input + length_id)} (lengths field "
                     f"'{it.fields[length_id]}') holds a negative length")


def limits_of(it: TreeIterator, columns) -> list[int]:
    """Rows of each domain: the fewest rows among its columns (Caffe2's size limits)."""
    limits = [None] * it.num_domains
    for domain, column in zip(it.domain, columns):
        rows = int(column.shape[0])
        limits[domain] = rows if limits[domain] is None else min(limits[domain], rows)
    return [np.iinfo(np.int64).max if x is None else x for x in limits]


def row_offsets(ctx, it: TreeIterator, columns, limits) -> np.ndarray:
    """(N + 1, domains) int64: where each top-level record starts in every domain."""
    n = limits[0]
    table = np.zeros((n + 1, it.num_domains), np.int64)
    table[:, 0] = np.arange(n + 1)
    for j in range(1, it.num_domains):
        lengths = np.asarray(columns[it.length_fields[j - 1]], dtype=np.int64)
        parent = table[:, it.parent_domain(j)]
        usable = int(parent[-1])
        if usable > lengths.shape[0]:
            ctx.fail(f"lengths field '{it.fields[it.length_fields[j - 1]]}' has "
                     f"{lengths.shape[0]} entries, its domain needs {usable}")
        starts = np.concatenate(([0], np.cumsum(lengths[:usable])))
        table[:, j] = starts[parent]
        if table[-1, j] > limits[j]:
            ctx.fail(f"Inconsistent field length: tried to advance past the end of field "
                     f"{j} ('{it.fields[it.length_fields[j - 1]]}' asks for {table[-1, j]} "
                     f"rows, the domain has {limits[j]})")
    return table


def advance(ctx, it, columns, limits, offsets, num) -> tuple[list[int], list[int]]:
    """(sizes, new offsets) after reading ``num`` top-level records from ``offsets``."""
    if limits[0] < offsets[0]:
        ctx.fail("Tried to advance past end of cursor.")
    sizes = [min(limits[0] - offsets[0], num)] + [0] * (it.num_domains - 1)
    for j in range(1, it.num_domains):
        parent = it.parent_domain(j)
        lengths = columns[it.length_fields[j - 1]]
        start, count = offsets[parent], sizes[parent]
        if start + count > lengths.shape[0]:
            ctx.fail(f"lengths field '{it.fields[it.length_fields[j - 1]]}' has "
                     f"{lengths.shape[0]} entries, reading needs {start + count}")
        sizes[j] = int(np.sum(lengths[start:start + count], dtype=np.int64))
        if offsets[j] + sizes[j] > limits[j]:
            ctx.fail(f"Inconsistent field length: tried to advance past the end of field {j}")
    return sizes, [o + s for o, s in zip(offsets, sizes)]


def ranges_to_indices(starts, lengths) -> np.ndarray:
    """The concatenated ranges [start_k, start_k + lengths_k), int64, without a loop."""
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift
