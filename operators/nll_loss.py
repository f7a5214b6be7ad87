"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (ONNX's; Caffe2 had neither).

For INPUT of shape (N, C, d1, ...) holding log-probabilities and TARGET (N, d1,
...) holding class indices, each element's loss is ``-INPUT[n, TARGET[n, d], d]``
times ``WEIGHT[TARGET[n, d]]`` (1 without WEIGHT), and 0 where TARGET equals
``ignore_index``.  ``reduction``: none (the per-element losses), sum, or mean
(the sum over the sum of the weights that applied).  SoftmaxCrossEntropyLoss
takes scores, applies log-softmax over axis 1 first, and can also return those
log-probabilities.  (Caffe2's SoftmaxWithLoss and LabelCrossEntropy are
different contracts: 2-D only, no ignore_index, probabilities out.)
"""

import numpy as np

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, register_kernel,
                                register_schema)

REDUCTIONS = ("none", "sum", "mean")
LOSS_ARGS = [Arg("reduction", "string", "mean", "none, sum or mean (weighted)"),
             Arg("ignore_index", "int", None, "a target value whose elements count for "
                                              "nothing (no loss, no weight)")]


def _check(ctx, x, target, weight):
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.ndim < 2:
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor (N, C, ...), got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if getattr(target, "dtype", None) is None or target.dtype.kind not in "iu" or \
            tuple(target.shape) != expected:
        ctx.fail(f"{ctx.input_label(1)} must hold int class indices of shape {expected}, got "
                 f"{getattr(target, 'dtype', type(target).__name__)} "
                 f"{tuple(getattr(target, 'shape', ()))}")
    if weight is not None and (getattr(weight, "dtype", None) != x.dtype or
                               tuple(weight.shape) != (x.shape[1],)):
        ctx.fail(f"{ctx.input_label(2)} must be {x.dtype} ({x.shape[1]},), got "
                 f"{getattr(weight, 'dtype', '?')} {tuple(getattr(weight, 'shape', ()))}")
    if ctx.args["reduction"] not in REDUCTIONS:
        ctx.fail(f"argument 'reduction' must be none, sum or mean, got "
                 f"'{ctx.args['reduction']}'")


def negative_log_likelihood(ctx, log_prob, target, weight):
    """The reduced loss of log-probabilities (checked inputs)."""
    xp = ctx.xp
    ignored = (target == ctx.args["ignore_index"]) if ctx.args["ignore_index"] is not None \
        else xp.zeros(target.shape, bool)
    classes = log_prob.shape[1]
    live = target[~ignored]
    if live.size and (int(live.min()) < 0 or int(live.max()) >= classes):
        ctx.fail(f"{ctx.input_label(1)} holds class indices outside [0, {classes - 1}] "
                 f"(other than ignore_index)")
    safe = xp.where(ignored, 0, target).astype("int64")
    picked = xp.take_along_axis(log_prob, xp.expand_dims(safe, 1), axis=1)[:, 0]
    factor = (weight[safe] if weight is not None else xp.ones(safe.shape, log_prob.dtype))
    factor = xp.where(ignored, xp.zeros((), log_prob.dtype), factor).astype(log_prob.dtype)
    loss = -picked * factor
    reduction = ctx.args["reduction"]
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.asarray(loss.sum(), log_prob.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, as ONNX
        return xp.asarray(loss.sum() / factor.sum(), log_prob.dtype)


register_schema(OpSchema(
    "NegativeLogLikelihoodLoss", num_inputs=(2, 3), num_outputs=1,
    inputs=[("input", "log-probabilities (N, C, d1, ...)"),
            ("target", "int class indices (N, d1, ...)"), ("weight", "optional: (C,) weights")],
    outputs=[("loss", "per element (reduction none) or a scalar")],
    args=list(LOSS_ARGS),
    doc="loss = -input[n, target[n, d], d] * weight[target[n, d]], reduced as asked.",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@register_kernel("NegativeLogLikelihoodLoss", devices=("CPU", "CUDA"))
def nll_loss(ctx, x, target, weight=None):
    _check(ctx, x, target, weight)
    return (negative_log_likelihood(ctx, x, target, weight),)


register_schema(OpSchema(
    "SoftmaxCrossEntropyLoss", num_inputs=(2, 3), num_outputs=(1, 2),
    inputs=[("scores", "float (N, C, d1, ...)"), ("labels", "int class indices (N, d1, ...)"),
            ("weights", "optional: (C,) weights")],
    outputs=[("loss", "per element (reduction none) or a scalar"),
             ("log_prob", "optional: log-softmax of scores over axis 1")],
    args=list(LOSS_ARGS),
    doc="NegativeLogLikelihoodLoss of log_softmax(scores, axis=1).",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@register_kernel("SoftmaxCrossEntropyLoss", devices=("CPU", "CUDA"))
def softmax_cross_entropy_loss(ctx, scores, labels, weights=None):
    _check(ctx, scores, labels, weights)
    xp = ctx.xp
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_prob = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    loss = negative_log_likelihood(ctx, log_prob, labels, weights)
    return (loss, log_prob) if len(ctx.op_def.output) > 1 else (loss,)
