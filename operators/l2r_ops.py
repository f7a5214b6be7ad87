"""Learning-to-rank losses over sessions: PairWiseLoss and LambdaRankNdcg (Caffe2's
rank_loss_op.cc and listwise_l2r_op.cc), with their gradients.

Items come in sessions given by ``lengths`` (one session of everything when
absent, PairWiseLoss only).  Each session is laid out as a row of a padded
(sessions x longest session) grid, so every pair of items is one element of a
(sessions x L x L) tensor: no Python loop over sessions or pairs.

* PairWiseLoss(X, label, [lengths]): per session, the mean over the pairs of
  items with different labels of log(1 + exp(s (X_j - X_i))), s = +1 when item i
  is labelled above item j, -1 below -- 0 for a session without such pairs.
  PairWiseLossGradient(X, label, dY, [lengths]) -> dX.
* LambdaRankNdcg(y, r, lengths) -> (loss per session, dy): gains g = 2^r
  (r with use_ndcg_as_loss and not use_exp_gain), discounts 1 / log2(rank + 2)
  of the items ranked by r (ideal) and by y; with use_ndcg_as_loss the loss is
  (IDCG - DCG) / w, otherwise sum over pairs i != j of |(g_i - g_j)(d_i - d_j)|
  * log(1 + exp(-(y_hi - y_lo))) / w, w = max(IDCG, 1e-5) under
  use_idcg_normalization, else 1.  dy is always the lambda gradient of that
  pairwise loss.  A session whose labels are all 0 gets loss 0 and dy 0.
  LambdaRankNdcgGradient(y, lengths, dy, dloss) -> dy * dloss of each session.
"""

import numpy as np

from caffe2lite.operators._segments import check_lengths, position_in_segment
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema, same_as)


def _grid(xp, values, lengths, fill):
    """values (sum(lengths),) as a (sessions, longest) grid padded with ``fill``, and the
    (segment, position) of every item."""
    segment, position = position_in_segment(xp, lengths)
    width = int(lengths.max()) if lengths.size else 0
    grid = xp.full((lengths.shape[0], width), fill, dtype=values.dtype)
    grid[segment, position] = values
    return grid, segment, position


def _log1p_exp(xp, z):
    """log(1 + exp(z)), stable for large |z|."""
    return xp.logaddexp(0, z)


def _sigmoid(xp, z):
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


# -- PairWiseLoss --------------------------------------------------------------------------
def _pairwise_inputs(ctx, x, label, lengths):
    check_float(ctx, 0, x)
    check_float(ctx, 1, label, 0, x)
    n = x.shape[0] if x.ndim else 0
    if x.size != n:
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} must hold one score per row")
    if not (label.ndim == 1 or (label.ndim == 2 and label.shape[1] == 1)) \
            or label.shape[0] != n:
        ctx.fail(f"{ctx.input_label(1)} {tuple(label.shape)} must be ({n},) or ({n}, 1)")
    if lengths is None:
        lengths = ctx.xp.asarray([x.size], dtype=np.int32)
    else:
        check_lengths(ctx, lengths, 2, x.size, "one per score")
    return x.reshape(-1), label.reshape(-1), lengths


def _pairs(xp, x, label, lengths):
    """(sign s_ij, x_j - x_i, mask of the counted pairs j < i with different labels)."""
    xs, _, _ = _grid(xp, x, lengths, 0)
    ls, _, _ = _grid(xp, label, lengths, 0)
    width = xs.shape[1]
    idx = xp.arange(width)
    valid = idx[None, :] < lengths[:, None]
    lower = idx[None, :, None] > idx[None, None, :]           # j < i
    # labels closer than the dtype's epsilon count as equal, as in Caffe2
    differ = xp.abs(ls[:, :, None] - ls[:, None, :]) >= np.finfo(x.dtype).eps
    mask = lower & differ & valid[:, :, None] & valid[:, None, :]
    sign = xp.where(ls[:, :, None] > ls[:, None, :], 1.0, -1.0).astype(x.dtype)
    return sign, xs[:, None, :] - xs[:, :, None], mask


register_schema(OpSchema(
    "PairWiseLoss", num_inputs=(2, 3), num_outputs=1,
    infer_shapes=lambda ctx, x, label, *lengths: (
        TensorSpec((lengths[0].shape[0] if lengths and lengths[0] else 1,), x.dtype)
        if x is not None else None,),
    inputs=[("X", "scores, one per row: (N,), (N, 1), ..."),
            ("label", "float relevance labels, (N,) or (N, 1)"),
            ("lengths", "optional int32 session lengths summing to N")],
    outputs=[("Y", "(sessions,): the mean pairwise logistic loss of each session")],
    doc="Pairwise ranking loss: per session, the mean over pairs with different labels of "
        "log(1 + exp(s * (X_j - X_i))), s = +1 where item i is labelled above item j.",
    gradient=lambda op_def, g_output: (
        [make_operator("PairWiseLossGradient",
                       [op_def.input[0], op_def.input[1], dense_output_grad(op_def, g_output),
                        *op_def.input[2:]], [grad_name(op_def.input[0])])],
        [grad_name(op_def.input[0])] + [None] * (len(op_def.input) - 1))))

register_schema(OpSchema(
    "PairWiseLossGradient", num_inputs=(3, 4), num_outputs=1, infer_shapes=same_as(0),
    inputs=[("X", "PairWiseLoss' scores"), ("label", "its labels"),
            ("dY", "gradient of Y, one per session"), ("lengths", "its session lengths")],
    outputs=[("dX", "gradient of X")],
    doc="Gradient of PairWiseLoss with respect to the scores."))


@register_kernel("PairWiseLoss", devices=("CPU", "CUDA"))
def pair_wise_loss(ctx, x, label, *lengths):
    xp = ctx.xp
    flat, lab, lengths = _pairwise_inputs(ctx, x, label, lengths[0] if lengths else None)
    sign, diff, mask = _pairs(xp, flat, lab, lengths)
    losses = xp.where(mask, _log1p_exp(xp, sign * diff), 0).sum(axis=(1, 2))
    count = mask.sum(axis=(1, 2))
    return ((losses / xp.maximum(count, 1)).astype(x.dtype),)


@register_kernel("PairWiseLossGradient", devices=("CPU", "CUDA"))
def pair_wise_loss_gradient(ctx, x, label, dy, *lengths):
    xp = ctx.xp
    flat, lab, lengths = _pairwise_inputs(ctx, x, label, lengths[0] if lengths else None)
    check_float(ctx, 2, dy, 0, x)
    if dy.size != lengths.shape[0]:
        ctx.fail(f"{ctx.input_label(2)} has {dy.size} values, one per session expected "
                 f"({lengths.shape[0]})")
    sign, diff, mask = _pairs(xp, flat, lab, lengths)
    count = xp.maximum(mask.sum(axis=(1, 2)), 1)
    # z = s (x_j - x_i): dL/dx_j = s sigmoid(z), dL/dx_i = -s sigmoid(z)
    w = xp.where(mask, sign * _sigmoid(xp, sign * diff), 0) \
        * (dy.reshape(-1) / count)[:, None, None]
    grid = w.sum(axis=1) - w.sum(axis=2)
    _, segment, position = _grid(xp, flat, lengths, 0)
    return (grid[segment, position].reshape(x.shape).astype(x.dtype),)


# -- LambdaRankNdcg ------------------------------------------------------------------------
LAMBDA_ARGS = [
    Arg("use_ndcg_as_loss", "bool", False, "report (IDCG - DCG) / w instead of the pairwise "
                                           "lambda loss"),
    Arg("use_idcg_normalization", "bool", True, "divide by w = max(IDCG, 1e-5)"),
    Arg("use_exp_gain", "bool", True, "gain 2^r; without it (and with use_ndcg_as_loss) "
                                      "the gain is r"),
]


def _discounts(xp, grid, valid):
    """1 / log2(rank + 2), rank 0 the largest value of each row; padding ranks last."""
    keys = xp.where(valid, -grid, xp.inf)
    order = xp.argsort(keys, axis=1, kind="stable")
    rank = xp.empty_like(order)
    rows = xp.arange(grid.shape[0])[:, None]
    rank[rows, order] = xp.arange(grid.shape[1])[None, :]
    return 1 / xp.log2(rank.astype(grid.dtype) + 2)


register_schema(OpSchema(
    "LambdaRankNdcg", num_inputs=3, num_outputs=2, args=LAMBDA_ARGS,
    infer_shapes=lambda ctx, y, r, lengths: (
        TensorSpec((lengths.shape[0],), y.dtype) if lengths is not None and y is not None
        else None, y),
    inputs=[("Y", "predicted scores, float (N,)"), ("R", "relevance labels, float (N,)"),
            ("session_lengths", "int32 lengths of the sessions, summing to N")],
    outputs=[("loss", "(sessions,): the loss of each session"),
             ("dY", "(N,): the lambda gradient of each score")],
    doc="LambdaRank with NDCG weights over the sessions given by session_lengths. Gains "
        "g = 2^R (R itself with use_ndcg_as_loss and not use_exp_gain), discounts "
        "d = 1 / log2(rank + 2) of the items ranked by Y (and by R for the ideal IDCG); "
        "w = max(IDCG, 1e-5) with use_idcg_normalization, else 1. loss = (IDCG - DCG) / w "
        "with use_ndcg_as_loss, else the sum over pairs i != j of |(g_i - g_j)(d_i - d_j)| "
        "* log(1 + exp(-(Y_hi - Y_lo))) / w; dY is that pairwise loss's lambda gradient. "
        "A session whose labels are all 0 gets loss 0 and dY 0.",
    gradient=lambda op_def, g_output: (
        [make_operator("LambdaRankNdcgGradient",
                       [op_def.input[0], op_def.input[2], op_def.output[1],
                        dense_output_grad(op_def, g_output)], [grad_name(op_def.input[0])])],
        [grad_name(op_def.input[0]), None, None])))

register_schema(OpSchema(
    "LambdaRankNdcgGradient", num_inputs=4, num_outputs=1, infer_shapes=same_as(0),
    inputs=[("Y", "LambdaRankNdcg's scores"), ("session_lengths", "its session lengths"),
            ("dY", "its dY output"), ("dloss", "gradient of its loss, one per session")],
    outputs=[("dY_back", "dY * dloss of each item's session")],
    doc="Gradient of LambdaRankNdcg: its lambda gradient scaled by each session's dloss."))


def _sessions(ctx, y, lengths, lengths_index):
    check_float(ctx, 0, y)
    if y.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} {tuple(y.shape)} must be a vector")
    check_lengths(ctx, lengths, lengths_index, y.shape[0], "one per score")


@register_kernel("LambdaRankNdcg", devices=("CPU", "CUDA"))
def lambda_rank_ndcg(ctx, y, r, lengths):
    xp, a = ctx.xp, ctx.args
    _sessions(ctx, y, lengths, 2)
    check_float(ctx, 1, r, 0, y)
    if r.shape != y.shape:
        ctx.fail(f"{ctx.input_label(1)} {tuple(r.shape)} must have Y's shape {tuple(y.shape)}")
    # float64 inside: the NDCG loss is a difference of two sums (IDCG - DCG) that
    # cancel, and float32 sums lost the last digits Caffe2's tests compare
    ys, segment, position = _grid(xp, y.astype(np.float64), lengths, 0)
    rs, _, _ = _grid(xp, r.astype(np.float64), lengths, 0)
    valid = xp.arange(ys.shape[1])[None, :] < lengths[:, None]
    gain = rs if a["use_ndcg_as_loss"] and not a["use_exp_gain"] else xp.exp2(rs)
    gain = xp.where(valid, gain, 0)
    idcg = (gain * _discounts(xp, rs, valid)).sum(axis=1)
    weight = xp.maximum(idcg, 1e-5) if a["use_idcg_normalization"] else xp.ones_like(idcg)
    d = xp.where(valid, _discounts(xp, ys, valid), 0)
    pair_ok = valid[:, :, None] & valid[:, None, :] & ~xp.eye(ys.shape[1], dtype=bool)[None]
    lam = xp.where(pair_ok, xp.abs((gain[:, :, None] - gain[:, None, :])
                                   * (d[:, :, None] - d[:, None, :])), 0)
    above = rs[:, :, None] > rs[:, None, :]
    diff = ys[:, :, None] - ys[:, None, :]                   # y_i - y_j
    rank_dy = xp.where(above, 0.0, 1.0) - _sigmoid(xp, -diff)
    active = xp.abs(rs).sum(axis=1) >= 1e-6                 # an all-zero session is skipped
    scale = xp.where(active, 1 / weight, 0)[:, None]
    dy_grid = (lam * rank_dy).sum(axis=2) * scale
    if a["use_ndcg_as_loss"]:
        loss = (idcg - (gain * d).sum(axis=1)) / weight
    else:
        rank_loss = _log1p_exp(xp, -xp.where(above, diff, -diff))
        loss = (lam * rank_loss).sum(axis=(1, 2)) / weight
    loss = xp.where(active, loss, 0)
    return loss.astype(y.dtype), dy_grid[segment, position].astype(y.dtype)


@register_kernel("LambdaRankNdcgGradient", devices=("CPU", "CUDA"))
def lambda_rank_ndcg_gradient(ctx, y, lengths, dy, dloss):
    _sessions(ctx, y, lengths, 1)
    check_float(ctx, 2, dy, 0, y)
    check_float(ctx, 3, dloss, 0, y)
    if dy.shape != y.shape:
        ctx.fail(f"{ctx.input_label(2)} {tuple(dy.shape)} must have Y's shape {tuple(y.shape)}")
    if dloss.size != lengths.shape[0]:
        ctx.fail(f"{ctx.input_label(3)} has {dloss.size} values, one per session expected "
                 f"({lengths.shape[0]})")
    segment, _ = position_in_segment(ctx.xp, lengths)
    return ((dy * dloss.reshape(-1)[segment]).astype(y.dtype),)
