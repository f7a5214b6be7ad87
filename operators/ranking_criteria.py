"""CosineEmbeddingCriterion and MarginRankingCriterion, elementwise hinge losses on labels +-1.

* CosineEmbeddingCriterion(S, Y): loss = 1 - S where Y == 1, max(0, S - margin)
  elsewhere (``margin`` default 0).  Gradient (S, Y, dloss) -> dS = -dloss where
  Y == 1, dloss * (S >= margin) elsewhere.
* MarginRankingCriterion(X1, X2, Y): loss = max(0, -Y (X1 - X2) + margin)
  (``margin`` default 1): Y == 1 asks X1 to rank above X2.  Gradient (X1, X2, Y,
  dloss) -> dX1 = -Y dloss, dX2 = Y dloss where the hinge is active (>= 0).

Scores are float, labels int32 (Caffe2 read them as int); shapes must have one
size, the loss takes the first input's shape.
"""

import numpy as np

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema, same_as


def _labels(ctx, y, i, like, like_i):
    if y.dtype not in (np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(i)} has {y.dtype}; the labels (1 or -1) must be int32")
    if y.size != like.size:
        ctx.fail(f"{ctx.input_label(i)} has {y.size} labels, {ctx.input_label(like_i)} "
                 f"{like.size} values")
    return y.reshape(like.shape).astype(like.dtype)


def _grad(ctx, g, i, like, like_i):
    check_float(ctx, i, g, like_i, like)
    if g.size != like.size:
        ctx.fail(f"{ctx.input_label(i)} has {g.size} values, expected {like.size}")
    return g.reshape(like.shape)


MARGIN_0 = [Arg("margin", "float", 0.0, "the margin below which a Y = -1 pair costs nothing")]
MARGIN_1 = [Arg("margin", "float", 1.0, "the margin the ranking must clear")]

register_schema(OpSchema(
    "CosineEmbeddingCriterion", num_inputs=2, num_outputs=1, args=MARGIN_0,
    infer_shapes=same_as(0),
    inputs=[("S", "cosine similarities, float"), ("Y", "int32 labels, 1 or -1, one per S")],
    outputs=[("loss", "1 - S where Y == 1, max(0, S - margin) elsewhere; S's shape")],
    doc="Hinge loss on cosine similarities: 1 - S for similar pairs (Y == 1), "
        "max(0, S - margin) for dissimilar ones.",
    gradient=single_gradient_def("CosineEmbeddingCriterionGradient", ["I0", "I1", "GO0"],
                                 ["GI0"])))

register_schema(OpSchema(
    "CosineEmbeddingCriterionGradient", num_inputs=3, num_outputs=1, args=MARGIN_0,
    infer_shapes=same_as(0),
    inputs=[("S", "similarities"), ("Y", "labels"), ("dloss", "gradient of the loss")],
    outputs=[("dS", "-dloss where Y == 1, dloss * (S >= margin) elsewhere")],
    doc="Gradient of CosineEmbeddingCriterion."))


@register_kernel("CosineEmbeddingCriterion", devices=("CPU", "CUDA"))
def cosine_embedding_criterion(ctx, s, y):
    check_float(ctx, 0, s)
    y = _labels(ctx, y, 1, s, 0)
    margin = ctx.args["margin"]
    return (ctx.xp.where(y == 1, 1 - s, ctx.xp.maximum(s - margin, 0)).astype(s.dtype),)


@register_kernel("CosineEmbeddingCriterionGradient", devices=("CPU", "CUDA"))
def cosine_embedding_criterion_gradient(ctx, s, y, g):
    check_float(ctx, 0, s)
    y, g = _labels(ctx, y, 1, s, 0), _grad(ctx, g, 2, s, 0)
    slope = ctx.xp.where(y == 1, -1, (s >= ctx.args["margin"]).astype(s.dtype))
    return ((g * slope).astype(s.dtype),)


register_schema(OpSchema(
    "MarginRankingCriterion", num_inputs=3, num_outputs=1, args=MARGIN_1,
    infer_shapes=same_as(0),
    inputs=[("X1", "left scores, float"), ("X2", "right scores, X1's size"),
            ("Y", "int32 labels: 1 (X1 above X2) or -1")],
    outputs=[("loss", "max(0, -Y (X1 - X2) + margin), X1's shape")],
    doc="Pairwise ranking hinge loss: max(0, -Y * (X1 - X2) + margin) elementwise.",
    gradient=single_gradient_def("MarginRankingCriterionGradient", ["I0", "I1", "I2", "GO0"],
                                 ["GI0", "GI1"])))

register_schema(OpSchema(
    "MarginRankingCriterionGradient", num_inputs=4, num_outputs=2, args=MARGIN_1,
    infer_shapes=same_as(0, 1),
    inputs=[("X1", "left scores"), ("X2", "right scores"), ("Y", "labels"),
            ("dloss", "gradient of the loss")],
    outputs=[("dX1", "-Y dloss where the hinge is active"), ("dX2", "Y dloss there")],
    doc="Gradient of MarginRankingCriterion."))


def _ranking_inputs(ctx, x1, x2, y):
    check_float(ctx, 0, x1)
    check_float(ctx, 1, x2, 0, x1)
    if x2.size != x1.size:
        ctx.fail(f"{ctx.input_label(1)} has {x2.size} values, {ctx.input_label(0)} {x1.size}")
    y = _labels(ctx, y, 2, x1, 0)
    return x2.reshape(x1.shape), y, -y * (x1 - x2.reshape(x1.shape)) + ctx.args["margin"]


@register_kernel("MarginRankingCriterion", devices=("CPU", "CUDA"))
def margin_ranking_criterion(ctx, x1, x2, y):
    _, _, dist = _ranking_inputs(ctx, x1, x2, y)
    return (ctx.xp.maximum(dist, 0).astype(x1.dtype),)


@register_kernel("MarginRankingCriterionGradient", devices=("CPU", "CUDA"))
def margin_ranking_criterion_gradient(ctx, x1, x2, y, g):
    x2v, y, dist = _ranking_inputs(ctx, x1, x2, y)
    g = _grad(ctx, g, 3, x1, 0)
    dx1 = ctx.xp.where(dist < 0, 0, -y * g).astype(x1.dtype)
    return dx1, (-dx1).reshape(x2.shape)
