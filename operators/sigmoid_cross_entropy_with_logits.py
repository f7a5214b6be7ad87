"""SigmoidCrossEntropyWithLogits (and its Weighted variant): per-row mean binary
cross-entropy of sigmoid(logits).

For logits x and targets t of one shape, out = -mean over the last axis of
``t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))``, shape x.shape[:-1].
Computed as Caffe2 did, without ever taking exp of a positive number:
``x * (t - (x >= 0)) - log(1 + exp(x - 2 * x * (x >= 0)))``.
WeightedSigmoidCrossEntropyWithLogits(logits, targets, weights) multiplies each
element's loss (and gradient) by its weight before the mean; it takes no
log_D_trick / unjoined_lr_loss.
"""

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema, same_as)

ARGS = [
    Arg("log_D_trick", "bool", False, "use the log-D trick (Goodfellow et al. 2014) to avoid "
                                      "vanishing gradients early on"),
    Arg("unjoined_lr_loss", "bool", False, "loss for unjoined data, where some negatives may "
                                           "later turn out positive"),
]


def gradient_maker(op_def, g_output):
    """SigmoidCrossEntropyWithLogitsGradient(dY, logits, targets) -> dlogits; targets get none."""
    logits, targets = op_def.input
    grad_op = make_operator("SigmoidCrossEntropyWithLogitsGradient",
                            [dense_output_grad(op_def, g_output), logits, targets],
                            [grad_name(logits)])
    return [grad_op], [grad_name(logits), None]


register_schema(OpSchema(
    "SigmoidCrossEntropyWithLogits", num_inputs=2, num_outputs=1, args=ARGS,
    infer_shapes=lambda ctx, x, t: (None if x is None else TensorSpec(x.shape[:-1], x.dtype),),
    inputs=[("logits", "float tensor, (batch_size, num_classes) typically"),
            ("targets", "float tensor of logits' shape")],
    outputs=[("xentropy", "mean loss over the last axis: shape logits.shape[:-1]")],
    doc="Sigmoid cross-entropy of logits against targets, averaged over the last axis.",
    gradient=gradient_maker))

register_schema(OpSchema(
    "SigmoidCrossEntropyWithLogitsGradient", num_inputs=3, num_outputs=1, args=ARGS,
    infer_shapes=same_as(1),
    inputs=[("dY", "gradient of xentropy"), ("logits", "logits"), ("targets", "targets")],
    outputs=[("dlogits", "gradient of logits")],
    doc="Gradient of SigmoidCrossEntropyWithLogits with respect to logits."))


def _check(ctx, logits, targets, first: int):
    """Inner size after the checks; ``first`` is the position of logits among the inputs
    (0 in the ops, 1 in their gradients), so that errors name the right input."""
    if ctx.args.get("log_D_trick") and ctx.args.get("unjoined_lr_loss"):
        ctx.fail("log_D_trick and unjoined_lr_loss cannot both be set")
    ctx.check_same_shape(first, logits, first + 1, targets)
    ctx.check_float(first, logits)
    ctx.check_float(first + 1, targets)
    return logits.shape[-1] if logits.ndim else 1


def _terms(ctx, x, t):
    """The elementwise log-likelihood terms (the loss is -their mean per row)."""
    xp = ctx.xp
    pos = (x >= 0).astype(x.dtype)
    log_term = xp.log1p(xp.exp(x - 2 * x * pos))       # log(1 + exp(-|x|))
    if ctx.args.get("unjoined_lr_loss"):
        return x * t + (t - 1) * x * pos - (1 - t) * log_term
    if ctx.args.get("log_D_trick"):
        return (2 * t - 1) * (x - (x * pos + log_term))  # (2t - 1) * log(sigmoid(x))
    return x * (t - pos) - log_term


def _derivative(ctx, x, t):
    """d(terms)/dx elementwise."""
    xp = ctx.xp
    e = xp.exp(-xp.abs(x))
    denominator = 1 + e
    sig = xp.where(x >= 0, 1 / denominator, e / denominator)  # sigmoid(x), overflow-free
    if ctx.args.get("unjoined_lr_loss"):
        return t - (1 - t) * sig
    if ctx.args.get("log_D_trick"):
        return (2 * t - 1) * (1 - sig)                   # (2t - 1) / (1 + exp(x))
    return t - sig


def _row_mean_loss(x, terms, inner):
    return (-(terms.sum(axis=-1) if x.ndim else terms) / inner).astype(x.dtype, copy=False)


def _per_row_fail(ctx, dY, x):
    ctx.fail_input(0, f"{tuple(dY.shape)} must have one element per row of logits "
                      f"{tuple(x.shape)}")


def _scaled(x, d, dY, inner):
    if dY.size * inner != x.size:
        return None
    scale = -dY.reshape(x.shape[:-1] + (1,) if x.ndim else ()) / inner
    return (d * scale).astype(x.dtype, copy=False)


@register_kernel("SigmoidCrossEntropyWithLogits", devices=("CPU", "CUDA"))
def sigmoid_cross_entropy_with_logits(ctx, x, t):
    inner = _check(ctx, x, t, first=0)
    return (_row_mean_loss(x, _terms(ctx, x, t), inner),)


@register_kernel("SigmoidCrossEntropyWithLogitsGradient", devices=("CPU", "CUDA"))
def sigmoid_cross_entropy_with_logits_gradient(ctx, dY, x, t):
    inner = _check(ctx, x, t, first=1)
    dx = _scaled(x, _derivative(ctx, x, t), dY, inner)
    if dx is None:
        _per_row_fail(ctx, dY, x)
    return (dx,)


# -- WeightedSigmoidCrossEntropyWithLogits ---------------------------------------------
register_schema(OpSchema(
    "WeightedSigmoidCrossEntropyWithLogits", num_inputs=3, num_outputs=1,
    infer_shapes=lambda ctx, x, t, w: (None if x is None else TensorSpec(x.shape[:-1], x.dtype),),
    inputs=[("logits", "float tensor"), ("targets", "logits' shape"),
            ("weights", "logits' shape: each element's weight")],
    outputs=[("xentropy", "weighted mean loss over the last axis")],
    doc="Sigmoid cross-entropy of logits against targets, each element weighted, averaged "
        "over the last axis.",
    gradient=lambda op_def, g_output: (
        [make_operator("WeightedSigmoidCrossEntropyWithLogitsGradient",
                       [dense_output_grad(op_def, g_output), *op_def.input],
                       [grad_name(op_def.input[0])])], [grad_name(op_def.input[0]), None, None])))

register_schema(OpSchema(
    "WeightedSigmoidCrossEntropyWithLogitsGradient", num_inputs=4, num_outputs=1,
    infer_shapes=same_as(1),
    inputs=[("dY", "gradient of xentropy"), ("logits", "logits"), ("targets", "targets"),
            ("weights", "weights")],
    outputs=[("dlogits", "gradient of logits")],
    doc="Gradient of WeightedSigmoidCrossEntropyWithLogits with respect to logits."))


def _check_weights(ctx, x, w, index):
    if w.shape != x.shape or w.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(index)} {w.dtype}{tuple(w.shape)} must be a float tensor "
                 f"of logits' shape {tuple(x.shape)}")


@register_kernel("WeightedSigmoidCrossEntropyWithLogits", devices=("CPU", "CUDA"))
def weighted_sigmoid_cross_entropy_with_logits(ctx, x, t, w):
    inner = _check(ctx, x, t, first=0)
    _check_weights(ctx, x, w, 2)
    return (_row_mean_loss(x, _terms(ctx, x, t) * w, inner),)


@register_kernel("WeightedSigmoidCrossEntropyWithLogitsGradient", devices=("CPU", "CUDA"))
def weighted_sigmoid_cross_entropy_with_logits_gradient(ctx, dY, x, t, w):
    inner = _check(ctx, x, t, first=1)
    _check_weights(ctx, x, w, 3)
    dx = _scaled(x, _derivative(ctx, x, t) * w, dY, inner)
    if dx is None:
        _per_row_fail(ctx, dY, x)
    return (dx,)
