"""SparseToDenseMask and its gradient: a map<id, value> laid out on the ids of a mask
(Caffe2's sparse_to_dense_mask_op.h).

output[r, j] = values[i] where indices[i] == mask[j] and i lies in row r (rows given
by the optional int32 ``lengths``; without it one row and no batch dim), otherwise
default_value.  A later entry of a row overwrites an earlier one with the same id.
Ids not in the mask are dropped; negative ids are skipped and counted, and the op
fails once it has skipped ``max_skipped_indices`` of them over its lifetime (Caffe2
kept the count in the operator).  The optional second output is the bool presence
mask; Caffe2 wrote it only with ``return_presence_mask`` and otherwise left the blob it
names unwritten, here it holds the mask whenever it is named (a net naming it runs
either way, and no reader of an unwritten blob could rely on its content).  The gradient
routes dOutput[r, j] to the entry that won cell (r, j); every
other entry gets 0 (no gradient for default_value, as in Caffe2).
"""

import weakref

import numpy as np

from caffe2lite.operators._segments import INDEX_DTYPES
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema)

MAX_SKIPPED = 5  # Caffe2's kMaxSkippedSparseIndices


def sparse_to_dense_mask_gradient_maker(op_def, g_output):
    """SparseToDenseMaskGradient(indices, dOutput[, lengths]) -> dValues."""
    inputs = [op_def.input[0], g_output[0]] + list(op_def.input[3:4])
    d_values = grad_name(op_def.input[1])
    grad = make_operator("SparseToDenseMaskGradient", inputs, [d_values])
    return [grad], [None, d_values] + [None] * (len(op_def.input) - 2)


def _shapes(ctx, indices, values, default, lengths=None):
    if default is None or (len(ctx.op_def.input) == 4 and lengths is None):
        return (None,) * len(ctx.op_def.output)
    batch = (lengths.shape[0],) if len(ctx.op_def.input) == 4 else ()
    cells = batch + (len(ctx.args["mask"]),)
    out = [TensorSpec(cells + default.shape, default.dtype)]
    if len(ctx.op_def.output) > 1:
        out.append(TensorSpec(cells, np.bool_))
    return tuple(out)


_MASK = Arg("mask", "ints", [], "the ids laid out along the dense dimension (required)",
            required=True)

register_schema(OpSchema(
    "SparseToDenseMask", num_inputs=(3, 4), num_outputs=(1, 2), infer_shapes=_shapes,
    inputs=[("indices", "int32/int64 vector of ids"),
            ("values", "tensor whose first dim matches indices"),
            ("default_value", "values' dtype and shape without the first dim"),
            ("lengths", "optional int32 vector: ids per row (adds a batch dim)")],
    outputs=[("output", "[len(lengths),] len(mask), *default_value.shape"),
             ("presence_mask", "optional bool [len(lengths),] len(mask)")],
    args=[_MASK, Arg("return_presence_mask", "bool", False,
                     "Caffe2's switch for the presence mask; here a named second "
                     "output always gets it"),
          Arg("max_skipped_indices", "int", MAX_SKIPPED,
              "how many negative ids the op may skip over its lifetime")],
    doc="output[r, j] = the value of id mask[j] in row r, else default_value.",
    gradient=sparse_to_dense_mask_gradient_maker))

register_schema(OpSchema(
    "SparseToDenseMaskGradient", num_inputs=(2, 3), num_outputs=1,
    inputs=[("indices", "the forward op's indices"), ("dOutput", "gradient of output"),
            ("lengths", "optional: the forward op's lengths")],
    outputs=[("dValues", "gradient of values: dOutput of the cell each entry won, else 0")],
    args=[_MASK],
    doc="The gradient of SparseToDenseMask with respect to values."))


@once_per_op
def _mask(ctx):
    """(sorted mask ids, their columns) for a vectorised id -> column lookup."""
    mask = np.asarray(ctx.args["mask"], np.int64)
    if not mask.size:
        ctx.fail("argument 'mask' can't be empty")
    if int(mask.min()) < 0:
        ctx.fail(f"argument 'mask': only non-negative ids are allowed, got {int(mask.min())}")
    order = np.argsort(mask, kind="stable")
    ids = mask[order]
    if ids.size > 1 and bool((ids[1:] == ids[:-1]).any()):
        ctx.fail(f"argument 'mask': duplicated id {int(ids[1:][ids[1:] == ids[:-1]][0])}")
    return ids, order


def _cells(ctx, indices, lengths_i, lengths):
    """(rows, cell of each entry in the flattened (rows, len(mask)) grid, or -1)."""
    if indices.ndim != 1 or np.dtype(indices.dtype) not in INDEX_DTYPES:
        ctx.fail(f"{ctx.input_label(0)} must be an int32/int64 vector, got {indices.dtype} of "
                 f"shape {tuple(indices.shape)}")
    ids, columns = _mask(ctx)
    if lengths is None:
        rows, row_of = 1, np.zeros(indices.size, np.int64)
    else:
        lengths = check_lengths(ctx, lengths_i, lengths)
        if int(lengths.sum(dtype=np.int64)) != indices.size:
            ctx.fail(f"{ctx.input_label(lengths_i)} sums to {int(lengths.sum())}, but "
                     f"{ctx.input_label(0)} has {indices.size} ids")
        rows, row_of = lengths.size, np.repeat(np.arange(lengths.size), lengths)
    host = np.asarray(indices, np.int64)
    slot = np.minimum(np.searchsorted(ids, host), ids.size - 1)
    column = np.where(ids[slot] == host, columns[slot], -1)
    return rows, np.where(column >= 0, row_of * ids.size + column, -1)


def _winners(cells):
    """Positions of the entries that fill each cell (the last entry naming it) and their
    cells."""
    valid = np.flatnonzero(cells >= 0)
    # unique over the reversed list: the first hit of a cell there is its last entry
    last_cells, first_in_reversed = np.unique(cells[valid][::-1], return_index=True)
    return valid[::-1][first_in_reversed], last_cells


_skipped = weakref.WeakKeyDictionary()  # negative ids each created op skipped so far


@register_kernel("SparseToDenseMask", devices=("CPU",))
def sparse_to_dense_mask(ctx, indices, values, default, lengths=None):
    rows, cells = _cells(ctx, indices, 3, lengths)
    if values.ndim < 1 or values.shape[0] != indices.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} {tuple(values.shape)} must have one row per id of "
                 f"{ctx.input_label(0)} {tuple(indices.shape)}")
    if default.dtype != values.dtype or default.shape != values.shape[1:]:
        ctx.fail(f"{ctx.input_label(2)} ({default.dtype} {tuple(default.shape)}) must have "
                 f"{ctx.input_label(1)}'s dtype and row shape ({values.dtype} "
                 f"{tuple(values.shape[1:])})")
    skipped = _skipped.get(ctx, 0) + int((np.asarray(indices) < 0).sum())
    if skipped >= ctx.args["max_skipped_indices"] and skipped > _skipped.get(ctx, 0):
        ctx.fail(f"Too many sparse indices skipped: {skipped} negative ids so far, the limit "
                 f"is {ctx.args['max_skipped_indices']} (max_skipped_indices)")
    width = len(ctx.args["mask"])
    check_allocation(ctx, (rows, width) + default.shape, default.itemsize, "argument 'mask'")
    out = np.empty((rows * width,) + default.shape, default.dtype)
    out[...] = default
    present = np.zeros(rows * width, np.bool_)
    source, target = _winners(cells)
    out[target] = values[source]
    present[target] = True
    _skipped[ctx] = skipped
    cell_shape = (rows, width) if lengths is not None else (width,)
    result = [out.reshape(cell_shape + default.shape)]
    if len(ctx.op_def.output) > 1:
        result.append(present.reshape(cell_shape))
    return tuple(result)


@register_kernel("SparseToDenseMaskGradient", devices=("CPU",))
def sparse_to_dense_mask_gradient(ctx, indices, d_output, lengths=None):
    rows, cells = _cells(ctx, indices, 2, lengths)
    width = len(ctx.args["mask"])
    lead = (rows, width) if lengths is not None else (width,)
    if d_output.shape[:len(lead)] != lead:
        ctx.fail(f"{ctx.input_label(1)} {tuple(d_output.shape)} must start with {lead}")
    block = d_output.shape[len(lead):]
    grad = np.zeros((indices.size,) + block, d_output.dtype)
    source, target = _winners(cells)
    grad[source] = d_output.reshape((rows * width,) + block)[target]
    return (grad,)
