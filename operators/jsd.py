"""BernoulliJSD and its gradient (caffe2/operators/jsd_op.cc).

The Jensen-Shannon divergence between Bernoulli distributions given by their
probabilities, elementwise over X (predictions) and T (targets), both read flat:

    L = H((X + T) / 2) - (H(X) + H(T)) / 2,   H(p) = -p log p - (1 - p) log(1 - p)

with H(p) = 0 where p or 1 - p is below 1e-20.  The gradient op takes (dL, X, T)
and gives dX = dL * (logit(X) - logit((X + T) / 2)) / 2, logit(p) = log(p / (1 - p))
with p clamped to [1e-20, 1 - 1e-20] in float32 (where the upper bound is 1, so
logit(1) is inf, as in Caffe2); T gets no gradient.  dX takes X's shape (Caffe2's
was flat, like L, which broke adding it to other gradients of a multi-dim X).
"""

import numpy as np

from caffe2lite.runtime import (OpSchema, TensorSpec, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)

F32 = np.float32
LOG_THRESHOLD = F32(1e-20)


def _jsd_gradient(op_def, g_output):
    x, t = op_def.input
    return ([make_operator("BernoulliJSDGradient", [dense_output_grad(op_def, g_output), x, t],
                           [grad_name(x)])], [grad_name(x), None])


def _flat(ctx, x, t):
    return (TensorSpec((int(np.prod(x.shape)),), np.float32),) if x is not None else (None,)


register_schema(OpSchema(
    "BernoulliJSD", num_inputs=2, num_outputs=1, infer_shapes=_flat,
    inputs=[("X", "array of probabilities for prediction"),
            ("T", "array of probabilities for target")],
    outputs=[("L", "array of JSD losses (flat, one per element of X)")],
    doc="Computes the Jensen-Shannon divergence (JSD) between two Bernoulli distributions "
        "where each is parametrized by a single probability.",
    gradient=_jsd_gradient))

register_schema(OpSchema(
    "BernoulliJSDGradient", num_inputs=3, num_outputs=1,
    inputs=[("dL", "gradient of L"), ("X", "the predictions"), ("T", "the targets")],
    outputs=[("dX", "gradient of X, shaped like X")],
    doc="Gradient of BernoulliJSD with respect to X."))


def _check(ctx, first, *arrays):
    n = None
    for i, a in enumerate(arrays, first):
        if getattr(a, "dtype", None) != np.float32:
            ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor, got "
                     f"{getattr(a, 'dtype', type(a).__name__)}")
        if n is not None and a.size != n:
            ctx.fail(f"{ctx.input_label(i)} has {a.size} elements, expected {n} like "
                     f"{ctx.input_label(first)}")
        n = a.size


def _entropy(xp, p):
    q = 1 - p
    with np.errstate(all="ignore"):
        h = -p * xp.log(p) - q * xp.log(q)
    return xp.where((p < LOG_THRESHOLD) | (q < LOG_THRESHOLD), F32(0), h)


def _logit(xp, p):
    x = xp.minimum(xp.maximum(p, LOG_THRESHOLD), F32(1) - LOG_THRESHOLD)
    with np.errstate(all="ignore"):
        return -xp.log(1 / x - 1)


@register_kernel("BernoulliJSD", devices=("CPU", "CUDA"))
def bernoulli_jsd(ctx, x, t):
    xp = ctx.xp
    _check(ctx, 0, x, t)
    p, q = x.reshape(-1), t.reshape(-1)
    avg = (p + q) / 2
    return ((_entropy(xp, avg) - (_entropy(xp, p) + _entropy(xp, q)) / 2).astype(F32),)


@register_kernel("BernoulliJSDGradient", devices=("CPU", "CUDA"))
def bernoulli_jsd_gradient(ctx, dl, x, t):
    xp = ctx.xp
    _check(ctx, 0, dl, x, t)
    p, q = x.reshape(-1), t.reshape(-1)
    with np.errstate(all="ignore"):
        g = (_logit(xp, p) - _logit(xp, (p + q) / 2)) / 2
        return ((dl.reshape(-1) * g).astype(F32).reshape(x.shape),)
