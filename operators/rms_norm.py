"""RMSNorm and RMSNormGradient (caffe2/operators/rms_norm_op.*; arXiv 1910.07467).

X is read as (M, N) -- M the product of the dims before ``axis`` (default 1), N the
rest; gamma and beta have N elements:

    rrms[m] = 1 / sqrt(mean(X[m] ** 2) + eps),   Y[m] = rrms[m] * X[m] * gamma + beta

Outputs Y (X's shape) and rrms (X's dims before axis).  The gradient op takes
(dY, X, gamma, rrms) and gives dX, dgamma, dbeta:

    dX[m] = rrms[m] * dY[m] * gamma - (sum(dY[m] * X[m] * gamma) / N) * rrms[m] ** 3 * X[m]
    dgamma = sum_m dY[m] * X[m] * rrms[m],   dbeta = sum_m dY[m]

float32 or float64.  The argument is ``eps`` (default 0), as Caffe2's kernel read it;
its schema documented ``epsilon``, which is accepted and ignored.
"""

import math

import numpy as np

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

ARGS = [Arg("axis", "int", 1, "(int) default to 1; Describes axis of the inputs. Defaults to "
                              "one because the 0th axis most likely describes the batch size"),
        Arg("eps", "float", 0.0, "added to the mean square before the square root"),
        Arg("epsilon", "float", 0.001, "documented by Caffe2's schema but never read (its "
                                       "kernel reads eps); ignored")]


def _gradient(op_def, g_output):
    x, gamma, beta = op_def.input
    inputs = [dense_output_grad(op_def, g_output), x, gamma, op_def.output[1]]
    outputs = [grad_name(x), grad_name(gamma), grad_name(beta)]
    return [make_operator("RMSNormGradient", inputs, outputs)], outputs


def _shapes(ctx, x, gamma=None, beta=None):
    if x is None:
        return (None, None)
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    return (TensorSpec(x.shape, x.dtype), TensorSpec(x.shape[:axis], x.dtype))


register_schema(OpSchema(
    "RMSNorm", num_inputs=3, num_outputs=2, args=ARGS, infer_shapes=_shapes,
    inputs=[("input", "Input tensor which layer normalization will be applied to"),
            ("gamma", "scale tensor for elementwise_affine, the shape should be the same as "
                      "the dimensions of X begin from axis"),
            ("beta", "bias tensor for elementwise_affine, the shape should be the same as "
                     "the dimensions of X begin from axis")],
    outputs=[("output", "Normalized values"),
             ("rrms", "Reciprocal of root mean square for each feature vector")],
    doc="Root-mean-square normalization: Y = X / sqrt(mean(X^2 over the dims from axis) + "
        "eps) * gamma + beta.",
    gradient=_gradient))

register_schema(OpSchema(
    "RMSNormGradient", num_inputs=4, num_outputs=3, args=ARGS,
    infer_shapes=lambda ctx, dy, x, gamma, rrms: (x, gamma, gamma),
    inputs=[("dY", "gradient of Y"), ("X", "the forward input"), ("gamma", "the scale"),
            ("rrms", "the forward's rrms output")],
    outputs=[("dX", "gradient of X"), ("dgamma", "gradient of gamma"),
             ("dbeta", "gradient of beta")],
    doc="Gradient of RMSNorm."))


def _rows(ctx, x, gamma, x_i, gamma_i):
    """(M, N) of X read from axis on, after checking X and gamma."""
    check_float(ctx, x_i, x)
    check_float(ctx, gamma_i, gamma, x_i, x)
    if x.ndim < 2:
        ctx.fail(f"{ctx.input_label(x_i)}: RMSNorm requires input dim >= 2, got shape "
                 f"{tuple(x.shape)}")
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    m, n = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    if gamma.size != n:
        ctx.fail(f"{ctx.input_label(gamma_i)} has {gamma.size} elements, expected {n} (the "
                 f"size of {ctx.input_label(x_i)} from axis {axis})")
    return axis, m, n


@register_kernel("RMSNorm", devices=("CPU", "CUDA"))
def rms_norm(ctx, x, gamma, beta):
    xp = ctx.xp
    axis, m, n = _rows(ctx, x, gamma, 0, 1)
    check_float(ctx, 2, beta, 0, x)
    if beta.size != n:
        ctx.fail(f"{ctx.input_label(2)} has {beta.size} elements, expected {n}")
    rows = x.reshape(m, n)
    eps = x.dtype.type(ctx.args["eps"])
    with np.errstate(all="ignore"):  # no columns: 0 / 0, NaN, as Eigen's mean gave
        rrms = 1 / xp.sqrt((rows * rows).sum(axis=1) / x.dtype.type(n) + eps)
    y = rrms[:, None] * rows * gamma.reshape(n) + beta.reshape(n)
    return (y.reshape(x.shape).astype(x.dtype, copy=False),
            rrms.reshape(x.shape[:axis]).astype(x.dtype, copy=False))


@register_kernel("RMSNormGradient", devices=("CPU", "CUDA"))
def rms_norm_gradient(ctx, dy, x, gamma, rrms):
    axis, m, n = _rows(ctx, x, gamma, 1, 2)
    check_float(ctx, 0, dy, 1, x)
    ctx.check_same_shape(0, dy, 1, x)
    check_float(ctx, 3, rrms, 1, x)
    if rrms.size != m:
        ctx.fail(f"{ctx.input_label(3)} has {rrms.size} elements, expected {m} (one per row "
                 f"of {ctx.input_label(1)} before axis {axis})")
    rows, grad, g = x.reshape(m, n), dy.reshape(m, n), gamma.reshape(n)
    r = rrms.reshape(m)
    ds = (grad * rows * g).sum(axis=1)
    dx = r[:, None] * grad * g - ((ds / n) * r ** 3)[:, None] * rows
    dgamma = (grad * rows * r[:, None]).sum(axis=0)
    dbeta = grad.sum(axis=0)
    return (dx.reshape(x.shape).astype(x.dtype, copy=False),
            dgamma.reshape(gamma.shape).astype(x.dtype, copy=False),
            dbeta.reshape(gamma.shape).astype(x.dtype, copy=False))
