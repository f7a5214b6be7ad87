"""SigmoidCrossEntropyWithLogits: per-row mean binary cross-entropy of sigmoid(logits).

For logits x and targets t of one shape, out = -mean over the last axis of
``t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))``, shape x.shape[:-1].
Computed as Caffe2 did, without ever taking exp of a positive number:
``x * (t - (x >= 0)) - log(1 + exp(x - 2 * x * (x >= 0)))``.
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
    (0 in the op, 1 in its gradient), so that errors name the right input."""
    if ctx.args["log_D_trick"] and ctx.args["unjoined_lr_loss"]:
        ctx.fail("log_D_trick and unjoined_lr_loss cannot both be set")
    ctx.check_same_shape(first, logits, first + 1, targets)
    ctx.check_float(first, logits)
    ctx.check_float(first + 1, targets)
    return logits.shape[-1] if logits.ndim else 1


@register_kernel("SigmoidCrossEntropyWithLogits", devices=("CPU", "CUDA"))
def sigmoid_cross_entropy_with_logits(ctx, x, t):
    inner = _check(ctx, x, t, first=0)
    xp = ctx.xp
    pos = (x >= 0).astype(x.dtype)
    log_term = xp.log1p(xp.exp(x - 2 * x * pos))       # log(1 + exp(-|x|))
    if ctx.args["unjoined_lr_loss"]:
        terms = x * t + (t - 1) * x * pos - (1 - t) * log_term
    elif ctx.args["log_D_trick"]:
        terms = (2 * t - 1) * (x - (x * pos + log_term))  # (2t - 1) * log(sigmoid(x))
    else:
        terms = x * (t - pos) - log_term
    out = -(terms.sum(axis=-1) if x.ndim else terms) / inner
    return (out.astype(x.dtype, copy=False),)


@register_kernel("SigmoidCrossEntropyWithLogitsGradient", devices=("CPU", "CUDA"))
def sigmoid_cross_entropy_with_logits_gradient(ctx, dY, x, t):
    inner = _check(ctx, x, t, first=1)
    if dY.size * inner != x.size:
        ctx.fail_input(0, f"{tuple(dY.shape)} must have one element per row of logits "
                          f"{tuple(x.shape)}")
    xp = ctx.xp
    e = xp.exp(-xp.abs(x))
    sig = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))    # sigmoid(x), overflow-free
    if ctx.args["unjoined_lr_loss"]:
        d = t - (1 - t) * sig
    elif ctx.args["log_D_trick"]:
        d = (2 * t - 1) * (1 - sig)                      # (2t - 1) / (1 + exp(x))
    else:
        d = t - sig
    scale = -dY.reshape(x.shape[:-1] + (1,) if x.ndim else ()) / inner
    return ((d * scale).astype(x.dtype, copy=False),)
