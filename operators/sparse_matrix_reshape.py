"""SparseMatrixReshape (caffe2/experiments/operators/sparse_matrix_reshape_op.*).

A sparse matrix held as (column, row) index pairs -- int64 columns and int32 rows,
SparseSortedSegment's INDICES and SEGMENT_IDS -- reshaped row-major from
``old_shape`` to ``new_shape``: each entry's flat offset row * q + col becomes
(offset // s, offset % s) for the new row width s.  One dimension may be -1: the
first of old_shape (then new_shape's second must be given), or either of new_shape.
The shapes are checked as Caffe2's constructor checked them; the indices too (Caffe2
did not): a column outside [0, q), a negative row, a row past old_shape's, or a new
row beyond int32 is an error.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, once_per_op,
                                register_kernel, register_schema)


def _shapes(ctx, cols, rows):
    if cols is None or cols.ndim != 1:
        return (None, None)
    return TensorSpec(cols.shape, np.int64), TensorSpec(cols.shape, np.int32)


register_schema(OpSchema(
    "SparseMatrixReshape", num_inputs=2, num_outputs=2, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=_shapes,
    args=[Arg("old_shape", "ints", None, "Old shape (p, q); p may be -1", required=True),
          Arg("new_shape", "ints", None, "New shape (r, s); one of them may be -1",
              required=True)],
    inputs=[("old_col", "int64 original column indices"),
            ("old_row", "int32 original row indices")],
    outputs=[("new_col", "int64 new column indices"), ("new_row", "int32 new row indices")],
    doc="Compute the indices of the reshaped sparse matrix, from its column indices "
        "(int64) and row indices (int32). old_shape and new_shape give the shapes; "
        "valid: (p, q) -> (r, s), (p, q) -> (-1, s), (p, q) -> (r, -1), (-1, q) -> (-1, s).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@once_per_op
def _strides(ctx):
    """(old rows or None, old row width, new row width), checked as Caffe2 did."""
    old, new = list(ctx.args["old_shape"]), list(ctx.args["new_shape"])
    if len(old) != 2:
        ctx.fail(f"Argument `old_shape` must contain exactly two integers, got {old}")
    if len(new) != 2:
        ctx.fail(f"Argument `new_shape` must contain exactly two integers, got {new}")
    if old[1] <= 0:
        ctx.fail(f"The second dimension in argument `old_shape` must be positive, got {old}")
    if old[0] == -1:
        if new[1] <= 0:
            ctx.fail(f"The second dimension in `new_shape` must be positive when old_shape's "
                     f"first is -1, got {new}")
        return None, old[1], new[1]
    if old[0] <= 0:
        ctx.fail(f"The first dimension in `old_shape` must be positive (or -1), got {old}")
    size = old[0] * old[1]
    if new[0] == -1:
        if new[1] <= 0:
            ctx.fail(f"Only one dimension in argument `new_shape` can be -1, got {new}")
    elif new[0] <= 0 or not (new[1] == -1 or new[1] > 0):
        ctx.fail(f"Dimensions in argument `new_shape` must be positive or -1, got {new}")
    elif new[1] == -1:
        new[1] = size // new[0] if size % new[0] == 0 else 0
    if new[1] == 0 or size % new[1] or (new[0] != -1 and new[0] * new[1] != size):
        ctx.fail(f"Argument `new_shape` {list(ctx.args['new_shape'])} does not agree with "
                 f"`old_shape` {old}")
    return old[0], old[1], new[1]


@register_kernel("SparseMatrixReshape")
def sparse_matrix_reshape(ctx, cols, rows):
    old_rows, old_width, new_width = _strides(ctx)
    if cols.dtype != np.int64 or cols.ndim != 1:
        ctx.fail_input(0, f"Row index tensor must be 1-D int64, got {cols.dtype} of shape "
                          f"{tuple(cols.shape)}")
    if rows.dtype != np.int32 or rows.shape != cols.shape:
        ctx.fail_input(1, f"must be int32 of {ctx.input_label(0)}'s shape {tuple(cols.shape)} "
                          f"(Column and row tensors must have the same size), got "
                          f"{rows.dtype} of shape {tuple(rows.shape)}")
    bad_col = (cols < 0) | (cols >= old_width)
    if bad_col.any():
        ctx.fail_input(0, f"holds column {int(cols[np.argmax(bad_col)])}, outside "
                          f"[0, {old_width})")
    bad_row = (rows < 0) | (rows >= old_rows if old_rows is not None else False)
    if bad_row.any():
        ctx.fail_input(1, f"holds row {int(rows[np.argmax(bad_row)])}, outside "
                          f"[0, {old_rows if old_rows is not None else 'inf'})")
    offsets = rows.astype(np.int64) * old_width + cols
    new_rows = offsets // new_width
    if new_rows.size and int(new_rows.max()) > np.iinfo(np.int32).max:
        ctx.fail(f"a new row index {int(new_rows.max())} does not fit the int32 row output")
    return offsets % new_width, new_rows.astype(np.int32)
