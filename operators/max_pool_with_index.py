"""MaxPoolWithIndex and its gradient: 2-D max pooling that also outputs where each max was.

Caffe2 (``max_pool_with_index.cu``) had these ops on CUDA only; here one body over
``ctx.xp`` serves the CPU (NumPy) and CUDA (CuPy).  The semantics are the CUDA
kernel's: NCHW only, 4-D float or float16 input; each output takes the first element
of its window (row-major scan) that is larger than every earlier one, starting from
-FLT_MAX -- so padding, NaN and -inf never win, and a window holding nothing else
gives -FLT_MAX and index -1.  ``Index`` is a flat int32 vector with one entry per
output element: the winner's position ``h * W + w`` inside its (n, c) image.  The
gradient adds each dY to the input element its index names (scatter-add).
"""

from math import prod

import numpy as np

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.pool import POOL_ARGS
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema,
                                same_as)

FLT_MAX = float(np.finfo(np.float32).max)


def _gradient_maker(op_def, g_output):
    """Caffe2's GetMaxPoolWithIndexGradient: (X, dY, Index) -> dX."""
    x = op_def.input[0]
    return ([make_operator("MaxPoolWithIndexGradient",
                           [x, dense_output_grad(op_def, g_output), op_def.output[1]],
                           [grad_name(x)])], [grad_name(x)])


def _shapes(ctx, X):
    if X is None:
        return (None, None)
    window, res = _geometry(ctx, X.shape)
    shape = geo.output_shape(window, res, X.shape[0], X.shape[1])
    return TensorSpec(shape, X.dtype), TensorSpec((prod(shape),), np.int32)


ARGS = POOL_ARGS + [Arg("deterministic", "bool", False, "accepted (Caffe2's tests pass it); "
                                                      "the kernel is always deterministic")]

register_schema(OpSchema(
    "MaxPoolWithIndex", num_inputs=1, num_outputs=2, args=ARGS, infer_shapes=_shapes,
    inputs=[("X", "4-D float (or float16) input, NCHW")],
    outputs=[("Y", "the max of each window: (N, C, out_h, out_w)"),
             ("Index", "int32 vector, one entry per element of Y: the max's h * W + w "
                       "within its image (-1 when nothing in the window beats -FLT_MAX)")],
    doc="Max pooling that also outputs where each maximum was found, for the gradient "
        "(Caffe2's CUDA op, here on CPU and CUDA). Deterministic: the first maximum of a "
        "window wins.",
    gradient=_gradient_maker))

register_schema(OpSchema(
    "MaxPoolWithIndexGradient", num_inputs=3, num_outputs=1, args=ARGS,
    infer_shapes=same_as(0),
    inputs=[("X", "input of MaxPoolWithIndex"), ("dY", "gradient of Y"),
            ("Index", "Index output of MaxPoolWithIndex")],
    outputs=[("dX", "gradient of X: each dY added at the position its index names")],
    doc="Gradient of MaxPoolWithIndex."))


@once_per_op
def _window(ctx):
    window = geo.parse(ctx, pooling=True)
    if window.order != "NCHW":
        ctx.fail(f"argument 'order' = {window.order}: only NCHW order is supported")
    if window.kernel and len(window.kernel) != 2:
        ctx.fail(f"the kernel {list(window.kernel)} has {len(window.kernel)} dims; "
                 f"MaxPoolWithIndex pools 2-D images")
    return window


def _geometry(ctx, shape):
    window = _window(ctx)
    if len(shape) != 4:
        ctx.fail(f"{ctx.input_label(0)} must be 4-D (NCHW), got shape {tuple(shape)}: "
                 f"operator only supports 4D tensors")
    return window, geo.resolve(ctx, window, shape)


def _check_input(ctx, X):
    if getattr(X, "dtype", None) not in (np.float32, np.float16):
        ctx.fail(f"{ctx.input_label(0)} must be a float32 or float16 tensor, got "
                 f"{getattr(X, 'dtype', type(X).__name__)} (unsupported input type)")
    return _geometry(ctx, X.shape)


@register_kernel("MaxPoolWithIndex", devices=("CPU", "CUDA"))
def max_pool_with_index(ctx, X):
    xp = ctx.xp
    window, res = _check_input(ctx, X)
    n, c, h, w = X.shape
    axes = (2, 3)
    # Candidates must beat -FLT_MAX (Caffe2's start value), compared in float32 as the
    # CUDA kernel did; padding is -inf, which never does.
    values = X.astype(np.float32)
    values = xp.where(values > -FLT_MAX, values, -xp.inf)
    padded = geo.pad_spatial(xp, values, axes, res.heads, res.tails, -xp.inf)
    where = geo.pad_spatial(xp, xp.arange(h * w, dtype=np.int32).reshape(1, 1, h, w), axes,
                            res.heads, res.tails, -1)
    cells = prod(res.kernel)
    windows = geo.window_view(xp, padded, axes, res)
    windows = windows.reshape(windows.shape[:4] + (cells,))
    first = windows.argmax(axis=-1)[..., None]  # argmax: the first of equal maxima
    best = xp.take_along_axis(windows, first, axis=-1)[..., 0]
    positions = geo.window_view(xp, where, axes, res)
    positions = positions.reshape(positions.shape[:4] + (cells,))
    positions = xp.broadcast_to(positions, best.shape + positions.shape[-1:])
    index = xp.take_along_axis(positions, first, axis=-1)[..., 0]
    found = best > -FLT_MAX
    Y = xp.where(found, best, -FLT_MAX).astype(X.dtype)
    index = xp.where(found, index, -1).astype(np.int32)
    return Y, index.reshape(-1)


@register_kernel("MaxPoolWithIndexGradient", devices=("CPU", "CUDA"))
def max_pool_with_index_gradient(ctx, X, dY, index):
    xp = ctx.xp
    window, res = _check_input(ctx, X)
    n, c, h, w = X.shape
    if getattr(dY, "dtype", None) != X.dtype or dY.ndim != 4 or dY.shape[:2] != (n, c):
        ctx.fail(f"{ctx.input_label(1)} must be a {X.dtype} tensor (N, C, out_h, out_w) = "
                 f"({n}, {c}, ...), got {getattr(dY, 'dtype', type(dY).__name__)}"
                 f"{tuple(getattr(dY, 'shape', ()))}")
    if getattr(index, "dtype", None) != np.int32 or index.size != dY.size:
        ctx.fail(f"{ctx.input_label(2)} must be an int32 tensor with one index per element "
                 f"of dY ({dY.size}), got {getattr(index, 'dtype', type(index).__name__)}"
                 f"{tuple(getattr(index, 'shape', ()))}")
    per_image = dY.shape[2] * dY.shape[3]
    index = index.reshape(n * c, per_image)
    if index.size and (int(index.max()) >= h * w or int(index.min()) < -1):
        ctx.fail(f"{ctx.input_label(2)} holds positions outside [-1, {h * w}) (H * W = "
                 f"{h} * {w})")
    image = xp.arange(n * c, dtype=np.int64)[:, None] * (h * w)
    keep = index >= 0
    flat = (image + index)[keep]
    grads = dY.reshape(n * c, per_image)[keep].astype(np.float64)
    dX = xp.bincount(flat, weights=grads, minlength=X.size)
    return (dX.astype(X.dtype).reshape(X.shape),)
