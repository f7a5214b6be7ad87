"""SoftmaxWithLoss and SoftmaxWithLossGradient: softmax then averaged cross-entropy, as Caffe2's.

The logits X are coerced to (N, D) at ``axis`` (see operators/softmax.py).
Outputs: P, the softmax (X's shape), and a scalar loss.

* Class labels (``label_prob=0``): ``labels`` holds N integers in [0, D)
  (shape (N,) or with trailing 1s); ``loss = scale * sum_i(w_i * -log P[i, l_i]) / sum_i(w_i)``
  with -log P taken from the log-softmax (no underflow).
* Label distributions (``label_prob=1``): ``labels`` is (N, D) floats >= 0
  whose rows sum to 1 (within 1e-5);
  ``loss = scale * sum_i(w_i * sum_j(-log(max(P_ij, 1e-20)) * t_ij)) / sum_i(w_i)``.

The optional third input ``weight_tensor`` holds N sample weights (default
all 1); a total weight of 0 gives a loss of 0.  The gradient op takes
(X, labels, [weights], P, dloss), as Caffe2's GetSoftmaxWithLossGradient built
it: ``dX = (P - onehot(labels) or t) * w[:, None] * scale / sum(w) * dloss``
(not rescaled when sum(w) <= 0).  Only order NCHW is supported, as in Caffe2.
The legacy ``spatial=1`` mode (a softmax per pixel, -1 labels ignored) is
described in operators/_softmax_loss_spatial.py; SpatialSoftmaxWithLoss, the op
that took it over in Caffe2, runs the same code, and so does its gradient
SpatialSoftmaxWithLossGradient(X, labels, [weights], P, dloss).
"""

from math import prod

from caffe2lite.operators._softmax_loss_spatial import spatial_loss, spatial_loss_gradient
from caffe2lite.operators._storage_order import ORDER_ARG
from caffe2lite.operators.softmax import AXIS_ARG, coerced_rows, log_softmax_rows, softmax_rows
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

LOG_THRESHOLD = 1e-20  # the floor of a probability before its log (label_prob mode)

ARGS = [
    Arg("label_prob", "bool", False, "labels are probability distributions (N, D) rather than "
                                     "class indices"),
    AXIS_ARG,
    Arg("scale", "float", 1.0, "factor on the averaged loss (must be >= 0)"),
    ORDER_ARG,
    Arg("spatial", "bool", False, "legacy: a softmax per pixel of (N, D, H, W) logits, labels "
                                  "(N, H, W) with -1 ignored (see _softmax_loss_spatial.py)"),
]


def softmax_with_loss_gradient_maker(op_def, g_output):
    """<type>Gradient(X, labels, [weights], P, dloss) -> dX."""
    x, labels = op_def.input[:2]
    inputs = [x, labels, *op_def.input[2:3], op_def.output[0],
              dense_output_grad(op_def, g_output, 1)]
    grad_op = make_operator(op_def.type + "Gradient", inputs, [grad_name(x)])
    return [grad_op], [grad_name(x)] + [None] * (len(op_def.input) - 1)


def _infer(ctx, X, *_):
    if X is None:
        return (None, None)
    return (X, TensorSpec((), X.dtype))


register_schema(OpSchema(
    "SoftmaxWithLoss", num_inputs=(2, 3), num_outputs=2, args=ARGS, infer_shapes=_infer,
    inputs=[("logits", "float tensor, coerced to (N, D) at axis"),
            ("labels", "N int32/int64 class indices, or (N, D) float distributions with "
                       "label_prob"),
            ("weight_tensor", "optional: N float sample weights")],
    outputs=[("softmax", "softmax of the logits, their shape"),
             ("loss", "scalar: scale * weighted mean cross-entropy")],
    doc="Softmax of the logits and their cross-entropy against the labels, averaged over "
        "the (weighted) samples and multiplied by scale.",
    gradient=softmax_with_loss_gradient_maker))

register_schema(OpSchema(
    "SoftmaxWithLossGradient", num_inputs=(4, 5), num_outputs=1,
    args=ARGS + [Arg("only_loss", "bool", False, "accepted for Caffe2 nets (a CUDA memory "
                                                 "saving there); the result is the same")],
    infer_shapes=lambda ctx, X, *_: (X,),
    inputs=[("logits", "logits of SoftmaxWithLoss"), ("labels", "its labels"),
            ("weight_tensor", "optional: its sample weights (5 inputs)"),
            ("softmax", "its softmax output"), ("dloss", "gradient of the loss (a scalar)")],
    optional_inputs=(2,),
    outputs=[("dlogits", "gradient of the logits")],
    doc="Gradient of SoftmaxWithLoss with respect to the logits."))


def _check_args(ctx, X):
    if ctx.args["order"] != "NCHW":
        ctx.fail(f"argument 'order' must be 'NCHW' (the only order supported), got "
                 f"{ctx.args['order']!r}")
    scale = ctx.args["scale"]
    if not scale >= 0:
        ctx.fail(f"argument 'scale' must be >= 0, got {scale}")
    if X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {X.dtype}")


def _check(ctx, X, labels, weights):
    """(N, D, labels as an index vector or (N, D) matrix, weights or None), all checked."""
    _check_args(ctx, X)
    axis = ctx.args["axis"]
    N, D = coerced_rows(ctx, X, axis)
    axis += X.ndim if axis < 0 else 0
    if ctx.args["label_prob"]:
        if labels.dtype != X.dtype or labels.ndim < 2 or labels.size != N * D or \
                coerced_rows(ctx, labels, axis, ctx.input_label(1))[0] != N:
            ctx.fail(f"{ctx.input_label(1)} is {labels.dtype}{tuple(labels.shape)}; with "
                     f"label_prob it must be {X.dtype} distributions of rank >= 2 shaped "
                     f"(N, D) = ({N}, {D}) at axis {axis}")
        labels = labels.reshape(N, D)
        if N and D:
            if bool((labels < 0).any()):
                ctx.fail(f"{ctx.input_label(1)}: label probabilities must be >= 0")
            if bool((ctx.xp.abs(labels.sum(axis=1, dtype=labels.dtype) - 1) >= 1e-5).any()):
                ctx.fail(f"{ctx.input_label(1)}: each row of label probabilities must sum to "
                         f"1 (+/- 1e-5)")
    else:
        if labels.dtype.kind not in "iu":
            ctx.fail(f"{ctx.input_label(1)} must hold int32 or int64 class indices, got "
                     f"{labels.dtype}")
        lead = labels.shape[:axis] if labels.ndim >= axis else None
        if labels.size != N or lead is None or (labels.ndim > axis and labels.size != prod(lead)):
            ctx.fail(f"{ctx.input_label(1)} has shape {tuple(labels.shape)}; expected N = {N} "
                     f"labels (shape logits.shape[:{axis}], optionally followed by 1s)")
        labels = labels.reshape(N)
        if N and bool(((labels < 0) | (labels >= D)).any()):
            ctx.fail(f"{ctx.input_label(1)}: labels must be in [0, {D}), got values from "
                     f"{int(labels.min())} to {int(labels.max())}")
    if weights is not None:
        if weights.dtype.kind != "f" or weights.size != N:
            ctx.fail(f"{ctx.input_label(2)} is {weights.dtype}{tuple(weights.shape)}; expected "
                     f"N = {N} float sample weights")
        weights = weights.reshape(N).astype(X.dtype, copy=False)
    return N, D, labels, weights


@register_kernel("SoftmaxWithLoss", devices=("CPU", "CUDA"))
def softmax_with_loss(ctx, X, labels, weights=None):
    if ctx.args["spatial"]:
        _check_args(ctx, X)
        return spatial_loss(ctx, X, labels, weights)
    N, D, labels, weights = _check(ctx, X, labels, weights)
    xp, dtype = ctx.xp, X.dtype
    if X.size == 0:
        return X.copy(), xp.zeros((), dtype=dtype)
    x = X.reshape(N, D)
    w = xp.ones(N, dtype=dtype) if weights is None else weights
    if ctx.args["label_prob"]:
        P = softmax_rows(xp, x)
        per_sample = (-xp.log(xp.maximum(P, dtype.type(LOG_THRESHOLD))) * labels).sum(axis=1)
    else:
        log_p = log_softmax_rows(xp, x)
        per_sample = -log_p[xp.arange(N), labels]
        P = xp.exp(log_p)
    weight_sum = w.sum(dtype=dtype)
    loss_sum = (per_sample * w).sum(dtype=dtype)
    scale = dtype.type(ctx.args["scale"])
    loss = loss_sum * scale / weight_sum if bool(weight_sum != 0) else xp.zeros((), dtype)
    return P.reshape(X.shape), xp.asarray(loss, dtype=dtype).reshape(())


def _gradient_inputs(ctx, X, rest):
    """(weights or None, P, dloss) of a gradient op's trailing inputs, checked."""
    weights, P, dloss = (None, *rest) if len(rest) == 2 else rest
    _check_args(ctx, X)
    if P.shape != X.shape or P.dtype != X.dtype:
        ctx.fail_input(len(ctx.op_def.input) - 2, f"is {P.dtype}{tuple(P.shape)}, expected "
                       f"the logits' {X.dtype}{tuple(X.shape)}")
    if dloss.size != 1 or dloss.dtype.kind != "f":
        ctx.fail_input(len(ctx.op_def.input) - 1, f"must be one float, got "
                       f"{dloss.dtype}{tuple(dloss.shape)}")
    return weights, P, dloss


@register_kernel("SoftmaxWithLossGradient", devices=("CPU", "CUDA"))
def softmax_with_loss_gradient(ctx, X, labels, *rest):
    weights, P, dloss = _gradient_inputs(ctx, X, rest)
    if ctx.args["spatial"]:
        return (spatial_loss_gradient(ctx, X, labels, weights, P, dloss),)
    N, D, labels, weights = _check(ctx, X, labels, weights)
    xp, dtype = ctx.xp, X.dtype
    if X.size == 0:
        return (X.copy(),)
    dX = P.reshape(N, D).copy()
    if ctx.args["label_prob"]:
        dX -= labels
    else:
        dX[xp.arange(N), labels] -= 1
    if weights is None:
        total_weight = dtype.type(N)
    else:
        dX *= weights[:, None]
        total_weight = weights.sum(dtype=dtype)
    if bool(total_weight > 0):
        dX *= dtype.type(ctx.args["scale"]) / total_weight * dloss.reshape(()).astype(dtype)
    return (dX.reshape(X.shape),)


# -- SpatialSoftmaxWithLoss: SoftmaxWithLoss's spatial mode as an op of its own ----------
SPATIAL_ARGS = [Arg("scale", "float", 1.0, "factor on the gradient (as Caffe2's, not on "
                                           "the loss)"), ORDER_ARG]

register_schema(OpSchema(
    "SpatialSoftmaxWithLoss", num_inputs=(2, 3), num_outputs=2, args=SPATIAL_ARGS,
    infer_shapes=_infer,
    inputs=[("logits", "float (N, D, H, W)"),
            ("labels", "int (N, H, W) class indices, -1 for pixels left out"),
            ("weight_tensor", "optional: (N, H, W) float pixel weights")],
    outputs=[("softmax", "softmax over D at every pixel, the logits' shape"),
             ("loss", "scalar: the weighted mean cross-entropy of the counted pixels")],
    doc="A softmax over the D channels of every pixel and the weighted mean cross-entropy "
        "of the pixels whose label is not -1 (0 when none count).",
    gradient=softmax_with_loss_gradient_maker))

register_schema(OpSchema(
    "SpatialSoftmaxWithLossGradient", num_inputs=(4, 5), num_outputs=1, args=SPATIAL_ARGS,
    infer_shapes=lambda ctx, X, *_: (X,),
    inputs=[("logits", "logits of SpatialSoftmaxWithLoss"), ("labels", "its labels"),
            ("weight_tensor", "optional: its pixel weights (5 inputs)"),
            ("softmax", "its softmax output"), ("dloss", "gradient of the loss (a scalar)")],
    optional_inputs=(2,),
    outputs=[("dlogits", "gradient of the logits")],
    doc="Gradient of SpatialSoftmaxWithLoss with respect to the logits."))


@register_kernel("SpatialSoftmaxWithLoss", devices=("CPU", "CUDA"))
def spatial_softmax_with_loss(ctx, X, labels, weights=None):
    _check_args(ctx, X)
    return spatial_loss(ctx, X, labels, weights)


@register_kernel("SpatialSoftmaxWithLossGradient", devices=("CPU", "CUDA"))
def spatial_softmax_with_loss_gradient(ctx, X, labels, *rest):
    weights, P, dloss = _gradient_inputs(ctx, X, rest)
    return (spatial_loss_gradient(ctx, X, labels, weights, P, dloss),)
