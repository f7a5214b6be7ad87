"""Checks and in-place plumbing shared by the sparse (row-indexed) optimizers.

Caffe2's sparse optimizers (SparseAdam, SparseFtrl, SparseAdadelta, ...) take
a parameter table, state tables with one entry per parameter element (or one
per row), an index vector and gradient rows shaped ``indices.shape +
param.shape[1:]``; they update the rows in place, one index at a time, so a
row named twice is updated twice.  ``checked_tables`` validates all of it
before anything is written and hands back writable 2-D views; the kernels
then apply their row update round by round (``occurrence_rounds``: one
vectorised step per repetition of the most repeated row, in index order).

The module name starts with "_" so the operator loader does not import it as
an operator module.
"""

from __future__ import annotations

from dataclasses import dataclass

from caffe2lite.operators._train_common import (check_float32, check_index_vector, check_rows,
                                                check_scalar, owned)


@dataclass
class SparseTables:
    """Validated arrays of one sparse update: ``outputs`` are the arrays to return
    (param and states, updated in place), ``views`` their row views ((rows, block)
    or (rows,) for a per-row state), ``idx`` the flat indices, ``grad`` (n, block)."""
    outputs: list
    views: list
    idx: object
    grad: object
    block: int


def checked_tables(ctx, tables, indices_i, grad_i, indices, grad, per_row=()):
    """Check a sparse update's inputs; ``tables`` is [(input index, array)] with the
    parameter first; those whose index is in ``per_row`` hold one value per row."""
    (param_i, param), states = tables[0], tables[1:]
    check_float32(ctx, param_i, param)
    rows, block = check_rows(ctx, param_i, param)
    for i, state in states:
        check_float32(ctx, i, state)
        want = rows if i in per_row else param.size
        if state.size != want:
            what = "one value per row of" if i in per_row else "as many elements as"
            ctx.fail(f"{ctx.input_label(i)} has {state.size} elements, expected {want}: "
                     f"{what} {ctx.input_label(param_i)}")
    check_float32(ctx, grad_i, grad)
    idx = check_index_vector(ctx, indices_i, indices, rows, param_i)
    if not (grad.shape[indices.ndim:] == param.shape[1:] and grad.size == idx.size * block):
        ctx.fail(f"{ctx.input_label(grad_i)} has shape {tuple(grad.shape)}, expected "
                 f"indices.shape + param.shape[1:] = "
                 f"{tuple(indices.shape) + tuple(param.shape[1:])}")
    outputs = [owned(t) for _, t in tables]
    views = [out.reshape(rows) if i in per_row else out.reshape(rows, block)
             for (i, _), out in zip(tables, outputs)]
    return SparseTables(outputs, views, idx, grad.reshape(idx.size, block), block)


def checked_scalar_rate(ctx, i, lr, dtype):
    """The one-element learning rate of input i, in the tables' dtype."""
    return check_scalar(ctx, i, lr, "learning rate").astype(dtype)


def check_same_size(ctx, first_i, first, others):
    """Every (index, array) in ``others`` has as many elements as input ``first_i``."""
    for i, value in others:
        if value.size != first.size:
            ctx.fail(f"{ctx.input_label(i)} has {value.size} elements, expected {first.size} "
                     f"like {ctx.input_label(first_i)}")
