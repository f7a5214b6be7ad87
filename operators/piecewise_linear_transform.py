"""PiecewiseLinearTransform: each column through its own piecewise linear function
(Caffe2's piecewise_linear_transform_op.h).

Column j of the (N, M) predictions uses group j of the parameters: ``pieces + 1``
sorted bounds, ``pieces`` slopes and intercepts (arguments, or inputs 1-3; all three
or none as arguments).  A value x <= bounds[0] maps to slopes[0] * bounds[0] +
intercepts[0], x >= bounds[-1] to the last piece at bounds[-1], otherwise piece
k - 1 with k the first bound >= x: slopes[k-1] * x + intercepts[k-1].

With ``binary`` one group transforms the positive column of an (N, 2) or (N, 1)
input (or a 1-D input); for (N, 2) the first column becomes 1 - the second.
"""

import numpy as np

from caffe2lite.operators._segments import segmented_search
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, once_per_op,
                                register_kernel, register_schema, same_as)

register_schema(OpSchema(
    "PiecewiseLinearTransform", num_inputs=(1, 4), num_outputs=1, infer_shapes=same_as(0),
    inputs=[("predictions", "float (N, M), or (N, 2) / (N, 1) / (N,) with binary"),
            ("bounds", "optional float: M groups of pieces + 1 sorted bounds"),
            ("slopes", "optional float: M groups of pieces slopes"),
            ("intercepts", "optional float: M groups of pieces intercepts")],
    outputs=[("transforms", "the transformed predictions, same shape")],
    args=[Arg("bounds", "floats", [], "M x (pieces + 1) bounds, sorted per group"),
          Arg("slopes", "floats", [], "M x pieces slopes"),
          Arg("intercepts", "floats", [], "M x pieces intercepts"),
          Arg("binary", "bool", False, "binary predictions: one group, for the positive "
                                       "column"),
          Arg("pieces", "int", None, "(ignored: Caffe2 derived it from the parameters)")],
    doc="Applies group j's piecewise linear function to column j (values outside the "
        "bounds are capped to them).",
    gradient=SHOULD_NOT_DO_GRADIENT))


_ARG_LABELS = [f"argument '{k}'" for k in ("bounds", "slopes", "intercepts")]


def _groups(ctx, n_bounds, n_slopes, n_intercepts, labels):
    """(groups, pieces per group), Caffe2's InferNumFunctionsPerGroup checks; ``labels``
    name where bounds, slopes and intercepts came from (arguments or inputs 1-3)."""
    groups = n_bounds - n_slopes
    if n_slopes != n_intercepts or groups <= 0 or n_slopes % groups \
            or n_slopes // groups <= 0 or (ctx.args["binary"] and groups != 1):
        ctx.fail(f"{labels[0]} ({n_bounds}), {labels[1]} ({n_slopes}) and {labels[2]} "
                 f"({n_intercepts}) "
                 f"must form groups of pieces + 1 bounds and pieces slopes and intercepts"
                 f"{' (one group when binary)' if ctx.args['binary'] else ''}")
    return groups, n_slopes // groups


def _check_sorted(ctx, bounds, groups, what):
    rows = bounds.reshape(groups, -1)
    if rows.shape[1] > 1 and not bool((rows[:, 1:] >= rows[:, :-1]).all()):
        ctx.fail(f"{what} must be sorted for each group")


@once_per_op
def _params_from_args(ctx):
    """(bounds, slopes, intercepts) from the arguments, or None when none is set."""
    given = [np.asarray(ctx.args[k], np.float32) for k in ("bounds", "slopes", "intercepts")]
    count = sum(p.size > 0 for p in given)
    if count not in (0, 3):
        ctx.fail("arguments bounds, slopes, intercepts must be all set or all not set")
    if count == 0:
        return None
    groups, _ = _groups(ctx, *(p.size for p in given), _ARG_LABELS)
    _check_sorted(ctx, given[0], groups, "argument 'bounds'")
    return tuple(given)


def transform_columns(xp, x, bounds, slopes, intercepts, pieces):
    """Column j of the (N, G) ``x`` through group j's function (bounds of pieces + 1)."""
    n, groups = x.shape
    first = bounds[0::pieces + 1][None, :]
    last = bounds[pieces::pieces + 1][None, :]
    column = xp.tile(xp.arange(groups), n)
    k = segmented_search(xp, bounds, xp.full(groups, pieces + 1, np.int64), x.reshape(-1),
                         column).reshape(n, groups)
    piece = k - (xp.arange(groups) * (pieces + 1))[None, :] - 1   # within the group
    piece = xp.clip(piece, 0, pieces - 1) + (xp.arange(groups) * pieces)[None, :]
    inside = slopes[piece] * x + intercepts[piece]
    low = slopes[0::pieces][None, :] * first + intercepts[0::pieces][None, :]
    high = slopes[pieces - 1::pieces][None, :] * last + intercepts[pieces - 1::pieces][None, :]
    return xp.where(x <= first, low, xp.where(x >= last, high, inside)).astype(x.dtype)


@register_kernel("PiecewiseLinearTransform", devices=("CPU", "CUDA"))
def piecewise_linear_transform(ctx, x, *param_inputs):
    xp = ctx.xp
    from_args = _params_from_args(ctx)
    if (from_args is None) != (len(param_inputs) == 3) or len(param_inputs) not in (0, 3):
        ctx.fail("give bounds, slopes and intercepts either as arguments (1 input) or as "
                 f"inputs 1-3 (4 inputs); got {1 + len(param_inputs)} inputs")
    if x.dtype != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be float, got {x.dtype}")
    if from_args is not None:
        bounds, slopes, intercepts = (xp.asarray(p) for p in from_args)
    else:
        for i, p in enumerate(param_inputs, 1):
            if p.dtype != np.float32:
                ctx.fail(f"{ctx.input_label(i)} must be float, got {p.dtype}")
        bounds, slopes, intercepts = (p.reshape(-1) for p in param_inputs)
    labels = _ARG_LABELS if from_args is not None else [ctx.input_label(i) for i in (1, 2, 3)]
    groups, pieces = _groups(ctx, bounds.size, slopes.size, intercepts.size, labels)
    if from_args is None:
        _check_sorted(ctx, bounds, groups, ctx.input_label(1))
    if ctx.args["binary"]:
        if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] not in (1, 2)):
            ctx.fail(f"with binary, {ctx.input_label(0)} must be Nx2 or Nx1 (or a vector), "
                     f"got shape {tuple(x.shape)}")
        positive = x.reshape(x.shape[0], -1)[:, -1:]
        y = transform_columns(xp, positive, bounds, slopes, intercepts, pieces)
        if x.ndim == 2 and x.shape[1] == 2:
            y = xp.concatenate([1.0 - y, y], axis=1)
        return (y.reshape(x.shape),)
    if x.ndim != 2 or x.shape[1] != groups:
        ctx.fail(f"{ctx.input_label(0)} must be (N, {groups}) for {groups} groups of "
                 f"parameters, got shape {tuple(x.shape)}")
    return (transform_columns(xp, x, bounds, slopes, intercepts, pieces),)
