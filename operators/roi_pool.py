"""RoIPool and RoIPoolGradient: Fast R-CNN's max pooling over regions (roi_pool_op.cc).

Each RoI ``[batch, x1, y1, x2, y2]`` is scaled by ``spatial_scale`` and rounded
(half away from zero, C's ``round``) to whole pixels, widened to at least one pixel,
and cut into ``pooled_h x pooled_w`` bins: bin ``ph`` covers rows
``floor(ph * h / pooled_h)`` to ``ceil((ph + 1) * h / pooled_h)`` past the RoI's top
row, clipped to the map.  Y is the bin's maximum (0 for a bin wholly off the map);
argmaxes (training mode) is the flat ``h * W + w`` position of the first maximum in
row-major order, -1 where nothing was pooled.

No loop over RoIs or bins: every bin's window is gathered at once, padded to the
largest window of the chunk, RoIs taken in chunks that stay within a few MiB.
Caffe2 had no CPU gradient (its RoIPoolGradient CPU kernel was not implemented);
here dY is added into X's shape at the argmaxes with one bincount, on both devices.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators.roi_align import _geometry
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, grad_name, make_operator,
                                register_kernel, register_schema)

F32 = np.float32
FLT_MAX = float(np.finfo(F32).max)
CHUNK_VALUES = 1 << 22  # gathered floats per chunk

ROI_POOL_ARGS = [
    Arg("is_test", "int", 0, "1: Y only; 0: also argmaxes (output 1), which the gradient "
                             "reads"),
    Arg("order", "string", "NCHW", "only 'NCHW' (X is N, C, H, W), as in Caffe2"),
    Arg("pooled_h", "int", 1, "output height"),
    Arg("pooled_w", "int", 1, "output width"),
    Arg("spatial_scale", "float", 1.0, "scale of X relative to the image the RoIs are in "
                                       "(0.0625 for a stride-16 map)"),
]


def _shapes(ctx, X, R):
    a = ctx.args
    if X is None or R is None or len(X.shape) != 4 or len(R.shape) != 2:
        return (None,) * len(ctx.op_def.output)
    y = TensorSpec((R.shape[0], X.shape[1], a["pooled_h"], a["pooled_w"]), np.float32)
    return (y,) if a["is_test"] else (y, TensorSpec(y.shape, np.int32))


def roi_pool_gradient_maker(op_def, g_output):
    """RoIPoolGradient(X, RoIs, argmaxes, dY) -> dX, as Caffe2's GetRoIPoolGradient."""
    x, rois = op_def.input
    if len(op_def.output) < 2:
        raise ValueError("RoIPool's gradient reads its argmaxes: run it with is_test=0 "
                         "and two outputs")
    grad_op = make_operator("RoIPoolGradient", [x, rois, op_def.output[1], g_output[0]],
                            [grad_name(x)])
    return [grad_op], [grad_name(x), None]


register_schema(OpSchema(
    "RoIPool", num_inputs=2, num_outputs=(1, 2), args=ROI_POOL_ARGS, infer_shapes=_shapes,
    inputs=[("X", "4-D float32 feature map (N, C, H, W)"),
            ("rois", "(R, 5) float32 [batch_id, x1, y1, x2, y2] in image coordinates")],
    outputs=[("Y", "(R, C, pooled_h, pooled_w): each bin's maximum"),
             ("argmaxes", "int32 like Y: the flat position h * W + w of each maximum in "
                          "its image and channel, -1 for an empty bin; only with is_test=0")],
    doc="Carries out RoI max pooling for Fast/Faster R-CNN. Training mode (is_test=0) "
        "writes Y and argmaxes, test mode Y only.",
    gradient=roi_pool_gradient_maker))

register_schema(OpSchema(
    "RoIPoolGradient", num_inputs=4, num_outputs=1, args=ROI_POOL_ARGS,
    infer_shapes=lambda ctx, X, R, A, dY: (X,),
    inputs=[("X", "the forward input"), ("rois", "the forward RoIs"),
            ("argmaxes", "the forward op's argmaxes"), ("dY", "gradient of Y")],
    outputs=[("dX", "gradient of X: each bin's dY added at its argmax")],
    doc="Gradient of RoIPool with respect to X."))


def _checked(ctx, X, R):
    a = ctx.args
    if a["order"] != "NCHW":
        ctx.fail(f"RoIPool only supports NCHW order, got order={a['order']!r}")
    if R.ndim != 2 or R.shape[1] != 5:
        ctx.fail(f"{ctx.input_label(1)} must have shape (R, 5) [batch_id, x1, y1, x2, y2], "
                 f"got {tuple(R.shape)}")
    return _geometry(ctx, X, R, (5,), False)


def _round(xp, v):
    """C's round(): halves away from zero (NumPy's rounds halves to even)."""
    return (xp.sign(v) * xp.floor(xp.abs(v) + 0.5)).astype(np.int64)


def _bins(xp, start, end, pooled, limit):
    """(R, pooled) first and past-the-end pixels of each bin along one axis."""
    size = xp.maximum(end - start + 1, 1).astype(F32)
    bin_size = size / F32(pooled)
    p = xp.arange(pooled, dtype=F32)
    lo = xp.floor(p[None, :] * bin_size[:, None]).astype(np.int64) + start[:, None]
    hi = xp.ceil((p[None, :] + 1) * bin_size[:, None]).astype(np.int64) + start[:, None]
    return xp.clip(lo, 0, limit), xp.clip(hi, 0, limit)


@register_kernel("RoIPool", devices=("CPU", "CUDA"))
def roi_pool(ctx, X, R):
    a = ctx.args
    xp = ctx.xp
    training = not a["is_test"]
    if training and len(ctx.op_def.output) < 2:
        ctx.fail("is_test=0 writes argmaxes as output 1: give two outputs, or set is_test=1")
    _order, N, C, H, W, boxes, batch = _checked(ctx, X, R)
    PH, PW = a["pooled_h"], a["pooled_w"]
    n = R.shape[0]
    Y = xp.zeros((n, C, PH, PW), F32)
    A = xp.full((n, C, PH, PW), -1, np.int32)
    if n:
        corners = _round(xp, boxes * F32(a["spatial_scale"]))   # x1, y1, x2, y2
        h0, h1 = _bins(xp, corners[:, 1], corners[:, 3], PH, H)
        w0, w1 = _bins(xp, corners[:, 0], corners[:, 2], PW, W)
        kh, kw = int((h1 - h0).max()), int((w1 - w0).max())
        per_roi = max(C * PH * PW * max(kh, 1) * max(kw, 1), 1)
        step = max(CHUNK_VALUES // per_roi, 1)
        for s in range(0, n, step):
            rows = slice(s, min(s + step, n))
            _pool_chunk(xp, X, batch[rows], h0[rows], h1[rows], w0[rows], w1[rows],
                        kh, kw, H, W, Y[rows], A[rows])
    return (Y, A) if training else (Y,)


def _pool_chunk(xp, X, batch, h0, h1, w0, w1, kh, kw, H, W, Y, A):
    """Max and first argmax of every bin of a chunk of RoIs, into Y and A (R, C, PH, PW)."""
    if kh <= 0 or kw <= 0:
        return  # every bin empty: Y stays 0, A stays -1
    dh, dw = xp.arange(kh), xp.arange(kw)
    hh = h0[:, :, None] + dh                                       # (R, PH, kh)
    ww = w0[:, :, None] + dw                                       # (R, PW, kw)
    valid = ((hh < h1[:, :, None])[:, :, None, :, None]
             & (ww < w1[:, :, None])[:, None, :, None, :])         # (R, PH, PW, kh, kw)
    flat = (xp.minimum(hh, H - 1)[:, :, None, :, None] * W
            + xp.minimum(ww, W - 1)[:, None, :, None, :])          # (R, PH, PW, kh, kw)
    R, PH, PW = valid.shape[:3]
    maps = X.reshape(X.shape[0], X.shape[1], H * W)[batch]         # (R, C, H*W)
    windows = xp.take_along_axis(maps, flat.reshape(R, 1, -1), axis=2)
    windows = windows.reshape(R, maps.shape[1], PH, PW, kh * kw)
    keep = valid.reshape(R, 1, PH, PW, kh * kw) & ~xp.isnan(windows)
    windows = xp.where(keep, windows, -xp.inf)
    first = windows.argmax(axis=-1)                                # first maximum, row-major
    best = xp.take_along_axis(windows, first[..., None], axis=-1)[..., 0]
    # Caffe2 starts a bin at -FLT_MAX and takes a value only when strictly greater.
    taken = best > -FLT_MAX
    nonempty = valid.any(axis=(3, 4))[:, None]                     # (R, 1, PH, PW)
    Y[...] = xp.where(taken, best, xp.where(nonempty, F32(-FLT_MAX), F32(0)))
    where = xp.take_along_axis(xp.broadcast_to(flat.reshape(R, 1, PH, PW, -1), windows.shape),
                               first[..., None], axis=-1)[..., 0]
    A[...] = xp.where(taken, where, -1).astype(np.int32)


@register_kernel("RoIPoolGradient", devices=("CPU", "CUDA"))
def roi_pool_gradient(ctx, X, R, A, dY):
    xp = ctx.xp
    _order, N, C, H, W, _boxes, batch = _checked(ctx, X, R)
    a = ctx.args
    expected = (R.shape[0], C, a["pooled_h"], a["pooled_w"])
    if A.dtype != np.int32 or tuple(A.shape) != expected:
        ctx.fail(f"{ctx.input_label(2)} must be int32 of shape {expected} (RoIPool's "
                 f"argmaxes), got {A.dtype} {tuple(A.shape)}")
    if dY.dtype != F32 or tuple(dY.shape) != expected:
        ctx.fail(f"{ctx.input_label(3)} must be float32 of shape {expected}, got "
                 f"{dY.dtype} {tuple(dY.shape)}")
    if A.size and (int(A.min()) < -1 or int(A.max()) >= H * W):
        ctx.fail(f"{ctx.input_label(2)} must hold positions in [-1, {H * W}), got "
                 f"[{int(A.min())}, {int(A.max())}]")
    dX = xp.zeros(N * C * H * W, np.float64)
    if A.size:
        used = A >= 0
        plane = (batch[:, None] * C + xp.arange(C)[None, :]) * (H * W)   # (R, C)
        positions = (plane[:, :, None, None] + A)[used]
        dX = xp.bincount(positions, weights=dY[used].astype(np.float64), minlength=dX.size)
    return (dX.astype(F32).reshape(X.shape),)
