"""SpatialBN and SpatialBNGradient: per-channel batch normalisation, as in Caffe2.

For each channel c (axis 1 with ``order='NCHW'``, the last axis with 'NHWC';
X has rank >= 2): ``Y = (X - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + bias[c]``.

* Inference (``is_test=1``): inputs X, scale, bias, mean, var (the estimated
  moments); one output Y.
* Training (``is_test=0``): mean and var are the batch moments over every axis
  but the channel one (var is biased: divided by R, the values per channel).
  Five outputs: Y, running_mean and running_var (the same blobs as inputs 3 and 4, updated
  in place), saved_mean (the batch mean) and saved_inv_std
  (``1 / sqrt(var + epsilon)``), which SpatialBNGradient reads.  As in the
  last Caffe2 release, the running variance takes the *unbiased* batch
  variance: ``running_mean = running_mean * momentum + mean * (1 - momentum)``,
  ``running_var = running_var * momentum + var * R / (R - 1) * (1 - momentum)``
  (R = 1 gives Caffe2's infinite correction, hence NaN).  A running blob that
  does not hold C values starts from zeros (Caffe2's deprecated uninitialised
  path).  With ``num_batches > 1`` the moments come from inputs 5 and 6, the
  per-channel sums and sums of squares over ``num_batches`` batches:
  ``mean = sums / R``, ``var = sumsq / R - mean**2``, R = num_batches*N*H*W.

The arithmetic stays in X's float dtype (float16 batches are summed in
float32); scale, bias and the moments must share it.
"""

import numpy as np

from caffe2lite.operators._storage_order import ORDER_ARG, channel_axis, per_channel_shape
from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema,
                                rewrites)

ARGS = [
    Arg("is_test", "bool", False, "nonzero: inference with the given mean and var (one output)"),
    Arg("epsilon", "float", 1e-5, "added to the variance before the square root (must be > 0)"),
    Arg("momentum", "float", 0.9, "running = running * momentum + batch * (1 - momentum); "
                                  "in [0, 1]"),
    ORDER_ARG,
    Arg("num_batches", "int", 1, "> 1: moments over that many batches, from the sums and "
                                 "sumsq inputs (training)"),
]


def _arg(op_def, name, default):
    for arg in op_def.arg:
        if arg.name == name:
            return arg.i
    return default


def spatial_bn_gradient_maker(op_def, g_output):
    """SpatialBNGradient(X, scale, dY, saved_mean, saved_inv_std[, dscale, dbias]) ->
    (dX, dscale, dbias), with the input layouts of Caffe2's GetSpatialBNGradient."""
    x, scale, bias = op_def.input[:3]
    dy = dense_output_grad(op_def, g_output)
    n_in, n_out = len(op_def.input), len(op_def.output)
    grads = [grad_name(x), grad_name(scale), grad_name(bias)]
    if _arg(op_def, "is_test", 0):
        # Caffe2 hands the estimated mean and variance where the training
        # gradient reads saved_mean and saved_inv_std.
        expected, inputs = (5, 1), [x, scale, dy, op_def.input[3], op_def.input[4]]
    elif _arg(op_def, "num_batches", 1) > 1:
        expected = (7, 5)
        inputs = [x, scale, dy, *op_def.output[3:5], grads[1], grads[2]]
    else:
        expected, inputs = (5, 5), [x, scale, dy, *op_def.output[3:5]]
    if (n_in, n_out) != expected:
        raise GradientError(f"operator SpatialBN: its gradient needs {expected[0]} inputs and "
                            f"{expected[1]} outputs in this mode, got {n_in} and {n_out}")
    grad_op = make_operator("SpatialBNGradient", inputs, grads)
    return [grad_op], grads + [None] * (n_in - 3)


def _infer_forward(ctx, X, *_):
    if X is None or ctx.args["is_test"]:
        return (X,)
    if X.ndim < 2:
        return (None,) * 5
    moments = TensorSpec((X.shape[channel_axis(ctx, X.ndim)],), X.dtype)
    return (X, moments, moments, moments, moments)


def _infer_gradient(ctx, X, *_):
    if X is None or X.ndim < 2:
        return (X, None, None)
    moments = TensorSpec((X.shape[channel_axis(ctx, X.ndim)],), X.dtype)
    return (X, moments, moments)


register_schema(OpSchema(
    "SpatialBN", num_inputs={5, 7}, num_outputs={1, 5}, args=ARGS,
    allow_inplace={(0, 0), (5, 3), (6, 4)}, enforce_inplace={(3, 1), (4, 2)},
    infer_shapes=_infer_forward,
    inputs=[("X", "float tensor of rank >= 2, NCHW or NHWC"),
            ("scale", "C scale factors"), ("bias", "C offsets"),
            ("mean", "running mean (training) or estimated mean (inference), C values"),
            ("var", "running variance (training) or estimated variance (inference), C values"),
            ("sums", "optional: per-channel sums over num_batches batches"),
            ("sumsq", "optional: per-channel sums of squares over num_batches batches")],
    outputs=[("Y", "normalised X, X's shape"),
             ("running_mean", "training: updated running mean (in place on input 3)"),
             ("running_var", "training: updated running variance (in place on input 4)"),
             ("saved_mean", "training: the batch mean"),
             ("saved_inv_std", "training: 1 / sqrt(batch variance + epsilon)")],
    doc="Spatial batch normalisation: Y = (X - mean) / sqrt(var + epsilon) * scale + bias per "
        "channel; is_test=0 uses and records the batch moments (5 outputs), is_test=1 the "
        "given ones (1 output).",
    gradient=spatial_bn_gradient_maker))

register_schema(OpSchema(
    "SpatialBNGradient", num_inputs={5, 7}, num_outputs=3, args=ARGS,
    allow_inplace={(5, 1), (6, 2)}, infer_shapes=_infer_gradient,
    inputs=[("X", "input of SpatialBN"), ("scale", "scale of SpatialBN"), ("dY", "gradient of Y"),
            ("saved_mean", "SpatialBN's saved_mean"),
            ("saved_inv_std", "SpatialBN's saved_inv_std"),
            ("dscale_sum", "optional (num_batches > 1): scale gradient summed over the batches"),
            ("dbias_sum", "optional (num_batches > 1): bias gradient summed over the batches")],
    outputs=[("dX", "gradient of X"), ("dscale", "gradient of scale"),
             ("dbias", "gradient of bias")],
    doc="Gradient of training-mode SpatialBN with respect to X, scale and bias."))


def _layout(ctx, X):
    """(channel axis, C, the axes reduced over, the per-channel broadcast shape)."""
    if X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {X.dtype}")
    if X.ndim < 2:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 2 (N, C, ...), got shape "
                 f"{tuple(X.shape)}")
    axis = channel_axis(ctx, X.ndim)
    C = X.shape[axis]
    if C == 0:
        ctx.fail(f"{ctx.input_label(0)} {tuple(X.shape)} has no channels")
    return axis, C, tuple(d for d in range(X.ndim) if d != axis), per_channel_shape(X.ndim, axis)


def _vector(ctx, i, arr, C, dtype):
    """Input i as a length-C vector of X's dtype."""
    if arr.size != C:
        ctx.fail(f"{ctx.input_label(i)} has {arr.size} values {tuple(arr.shape)}, expected one "
                 f"per channel (C = {C})")
    if arr.dtype != dtype:
        ctx.fail(f"{ctx.input_label(i)} has dtype {arr.dtype}, expected X's dtype {dtype}")
    return arr.reshape(C)


def _running(ctx, i, arr, C, dtype):
    """A running moment: C values of X's dtype, or zeros when it holds no C values yet."""
    if arr.size != C:
        return ctx.xp.zeros(C, dtype=dtype)
    return _vector(ctx, i, arr, C, dtype)


def _check_args(ctx, n_extra):
    eps, momentum, num_batches = (ctx.args[k] for k in ("epsilon", "momentum", "num_batches"))
    if not eps > 0:
        ctx.fail(f"argument 'epsilon' must be > 0, got {eps}")
    if not 0 <= momentum <= 1:
        ctx.fail(f"argument 'momentum' must be in [0, 1], got {momentum}")
    if num_batches < 1:
        ctx.fail(f"argument 'num_batches' must be >= 1, got {num_batches}")
    is_test, n_out = ctx.args["is_test"], len(ctx.op_def.output)
    if n_out != (1 if is_test else 5):
        ctx.fail(f"with is_test={int(is_test)} SpatialBN has {1 if is_test else 5} output(s), "
                 f"got {n_out}")
    if not is_test and num_batches > 1 and n_extra != 2:
        ctx.fail(f"num_batches={num_batches} needs the sums and sumsq inputs (7 inputs)")
    return is_test, eps, momentum, num_batches


def _accumulator(dtype):
    """The dtype sums over a batch run in: float32 for float16 data (whose 11-bit
    mantissa cannot hold a sum of thousands of values), else the data's own."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _affine(X, alpha, beta, bshape):
    """X * alpha + beta per channel, in one fresh array (no second full-size temporary)."""
    Y = X * alpha.reshape(bshape)
    Y += beta.reshape(bshape)
    return Y


@register_kernel("SpatialBN", devices=("CPU", "CUDA"))
def spatial_bn(ctx, X, scale, bias, mean, var, *sums):
    is_test, eps, momentum, num_batches = _check_args(ctx, len(sums))
    xp, dtype = ctx.xp, X.dtype
    axis, C, reduce_axes, bshape = _layout(ctx, X)
    scale, bias = _vector(ctx, 1, scale, C, dtype), _vector(ctx, 2, bias, C, dtype)
    if is_test:
        mean, var = _vector(ctx, 3, mean, C, dtype), _vector(ctx, 4, var, C, dtype)
        alpha = scale / xp.sqrt(var + dtype.type(eps))
        return (_affine(X, alpha, bias - alpha * mean, bshape),)
    running_mean, running_var = _running(ctx, 3, mean, C, dtype), _running(ctx, 4, var, C, dtype)
    if num_batches > 1:
        sums, sumsq = _vector(ctx, 5, sums[0], C, dtype), _vector(ctx, 6, sums[1], C, dtype)
    if X.size == 0:
        zeros = xp.zeros(C, dtype=dtype)
        return X.copy(), running_mean, running_var, zeros, zeros.copy()
    reduce_size = num_batches * (X.size // C)
    if num_batches > 1:
        batch_mean = sums / dtype.type(reduce_size)
        batch_var = sumsq / dtype.type(reduce_size) - batch_mean * batch_mean
    else:
        acc = _accumulator(dtype)
        batch_mean = X.mean(axis=reduce_axes, dtype=acc).astype(dtype)
        batch_var = X.var(axis=reduce_axes, dtype=acc).astype(dtype)
    a, b = dtype.type(1 - momentum), dtype.type(momentum)
    unbias = dtype.type(reduce_size / (reduce_size - 1) if reduce_size > 1 else np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        new_mean = batch_mean * a + running_mean * b
        new_var = batch_var * (a * unbias) + running_var * b
    rstd = 1 / xp.sqrt(batch_var + dtype.type(eps))
    alpha = scale * rstd
    Y = _affine(X, alpha, bias - alpha * batch_mean, bshape)
    return Y, new_mean.astype(dtype, copy=False), new_var.astype(dtype, copy=False), \
        batch_mean.astype(dtype, copy=False), rstd.astype(dtype, copy=False)


@register_kernel("SpatialBNGradient", devices=("CPU", "CUDA"))
def spatial_bn_gradient(ctx, X, scale, dY, saved_mean, saved_rstd, *aggregates):
    xp, dtype = ctx.xp, X.dtype
    axis, C, reduce_axes, bshape = _layout(ctx, X)
    num_batches = ctx.args["num_batches"]
    if num_batches < 1:
        ctx.fail(f"argument 'num_batches' must be >= 1, got {num_batches}")
    if num_batches > 1 and len(aggregates) != 2:
        ctx.fail(f"num_batches={num_batches} needs the dscale_sum and dbias_sum inputs "
                 f"(7 inputs)")
    if dY.shape != X.shape or dY.dtype != dtype:
        ctx.fail(f"{ctx.input_label(2)} is {dY.dtype}{tuple(dY.shape)}, expected X's "
                 f"{dtype}{tuple(X.shape)}")
    scale = _vector(ctx, 1, scale, C, dtype)
    mean, rstd = _vector(ctx, 3, saved_mean, C, dtype), _vector(ctx, 4, saved_rstd, C, dtype)
    if num_batches > 1:
        dscale_sum = _vector(ctx, 5, aggregates[0], C, dtype)
        dbias_sum = _vector(ctx, 6, aggregates[1], C, dtype)
    if X.size == 0:
        return X.copy(), xp.zeros(C, dtype=dtype), xp.zeros(C, dtype=dtype)
    if num_batches > 1:
        dscale = dscale_sum / dtype.type(num_batches)
        dbias = dbias_sum / dtype.type(num_batches)
    else:
        acc = _accumulator(dtype)
        dbias = dY.sum(axis=reduce_axes, dtype=acc).astype(dtype)
        dscale = (dY * (X - mean.reshape(bshape))).sum(axis=reduce_axes, dtype=acc) \
            .astype(dtype) * rstd
    inv_size = dtype.type(1 / (X.size // C))
    alpha = scale * rstd
    dscale_rstd = dscale * rstd
    gamma = alpha * (mean * dscale_rstd - dbias) * inv_size
    beta = -alpha * dscale_rstd * inv_size
    dX = _affine(dY, alpha, gamma, bshape)
    dX += X * beta.reshape(bshape)
    return dX, dscale.astype(dtype, copy=False), dbias.astype(dtype, copy=False)


# -- inference rewrites (runtime/rewrites.py): with is_test, Y = X * a + c per channel,
# which a Conv before it can take into its weights and bias.
def _affine_axis(op):
    """The channel axis (negative: from the end) of a test-mode SpatialBN, else None."""
    if not op.ctx.args["is_test"] or op.ctx.args["order"] not in ("NCHW", "NHWC") or \
            len(op.op_def.input) != 5:
        return None
    return 1 if op.ctx.args["order"] == "NCHW" else -1


def _affine_coefficients(op, scale, bias, mean, var):
    """(a, c) with Y = X * a + c, computed as the kernel computes them."""
    dtype = scale.dtype
    if not _check_args(op.ctx, 0)[0] or \
            not all(v.ndim == 1 and v.dtype == dtype for v in (scale, bias, mean, var)):
        raise ValueError("not a test-mode SpatialBN over vectors of one dtype")
    alpha = scale / np.sqrt(var + dtype.type(op.ctx.args["epsilon"]))
    return alpha, bias - alpha * mean


rewrites.register_channel_affine("SpatialBN", _affine_axis, _affine_coefficients)
