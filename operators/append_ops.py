"""Append and AtomicAppend: grow dataset columns by whole rows (caffe2/operators/dataset_ops.cc).

``Append(A, B) -> A``: B's rows after A's (all but the first dimension and
the dtype must agree); an empty A (no rows) simply becomes B.  AtomicAppend
does the same for several columns at once under a mutex (CreateMutex), every
column checked before any grows, so concurrent writers never interleave rows
and a bad batch appends nothing.
"""

import numpy as np

from caffe2lite.operators.atomic_iter import check_mutex
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel, register_schema


def _appended(ctx, a, b, i_a, i_b):
    """np.concatenate((a, b)) after Caffe2's checks; b itself when a has no rows."""
    if not hasattr(b, "ndim") or b.ndim < 1:
        ctx.fail(f"{ctx.input_label(i_b)} must have at least one dimension")
    if a is None or (a.size == 0 and (a.ndim == 0 or a.shape[0] == 0)):
        return b.copy()
    if a.ndim != b.ndim or a.dtype != b.dtype or a.shape[1:] != b.shape[1:]:
        ctx.fail(f"cannot append {ctx.input_label(i_b)} ({b.dtype}{list(b.shape)}) to "
                 f"{ctx.input_label(i_a)} ({a.dtype}{list(a.shape)}): all but the first "
                 f"dimension and the type must agree")
    return ctx.xp.concatenate((a, b))


register_schema(OpSchema(
    "Append", num_inputs=2, num_outputs=1, enforce_inplace={(0, 0)},
    inputs=[("A", "(*Tensor*): base input tensor of shape $(N, d_1, d_2, ..., d_n)$"),
            ("B", "(*Tensor*): second input tensor of shape $(M, d_1, d_2, ..., d_n)$ to be "
                  "appended to the base")],
    outputs=[("A", "(*Tensor*): output tensor of shape $(N+M, d_1, d_2, ..., d_n)$")],
    doc="Append input `B` to the end of input `A` (in place): np.concatenate((A, B)).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Append", devices=("CPU", "CUDA"))
def append(ctx, a, b):
    return (_appended(ctx, a, b, 0, 1),)


register_schema(OpSchema(
    "AtomicAppend", num_inputs=(3, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == 2 * n_out + 1,
    allow_inplace=lambda i, j: i == j + 1,
    inputs=[("mutex", "a mutex (CreateMutex)"), ("fields", "the dataset's columns, then "
                                                           "the columns to append")],
    outputs=[("fields", "the grown columns (in place)")],
    doc="Under the mutex, Append the second half of the data inputs to the first half, "
        "every column checked before any is written.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("AtomicAppend", devices=("CPU", "CUDA"))
def atomic_append(ctx, mutex, *columns):
    n = len(ctx.op_def.output)
    with check_mutex(ctx, mutex, 0):
        return tuple(_appended(ctx, columns[i], columns[n + i], 1 + i, 1 + n + i)
                     for i in range(n))
