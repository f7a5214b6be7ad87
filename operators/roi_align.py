"""RoIAlign, RoIAlignGradient and RoIAlignRotated (Mask R-CNN's region features).

After ``caffe2/operators/roi_align_op.cc``, ``roi_align_gradient_op.cc`` and
``roi_align_rotated_op.cc`` (the newest, with ``aligned``).  For each RoI
``[batch, x1, y1, x2, y2]`` (4 columns: batch 0) the box is scaled by
``spatial_scale`` (minus 0.5 when ``aligned``), cut into ``pooled_h x pooled_w``
bins, and each bin is the mean of ``grid_h x grid_w`` bilinear samples placed at
the centres of a regular grid in the bin (``sampling_ratio``, or when it is <= 0
``ceil(roi_size / pooled)`` per RoI).  A sample more than one pixel outside the
map contributes 0; one within a pixel of the border is clamped onto it.
Without ``aligned`` a RoI smaller than one pixel is widened to 1 (Caffe2's
"malformed RoIs"); with it a RoI of negative size is an error.

On the CPU the forward pass runs in C (caffe2lite/_native/detection.c: the
NumPy engine was 25x slower than ONNX Runtime on Faster R-CNN's 1000 RoIs,
BENCHMARKS.md).  The NumPy engine -- also the CuPy path, and the CPU's when the
C library is not built -- has no loop over RoIs, bins or samples: the samples
of every RoI with the same grid size are laid out as one array (a loop over the
distinct grid sizes only), gathered from the channels-last feature map in chunks
that stay within a few MiB, weighted and summed per bin.  A batch index outside [0, N) is an error (Caffe2 read out of bounds).
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.operators import _native_detection
from caffe2lite.operators._storage_order import ORDERS
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, register_kernel, register_schema)

F32 = np.float32
CHUNK_VALUES = 1 << 22  # gathered floats per chunk (16 MiB per corner)

ROI_ARGS = [
    Arg("order", "string", "NCHW", "'NCHW' (X is N, C, H, W) or 'NHWC' (X is N, H, W, C)"),
    Arg("spatial_scale", "float", 1.0, "scale of X relative to the image the RoIs are in "
                                       "(0.0625 for a stride-16 map)"),
    Arg("pooled_h", "int", 1, "output height"),
    Arg("pooled_w", "int", 1, "output width"),
    Arg("sampling_ratio", "int", -1, "samples per bin side; <= 0: ceil(roi_size / pooled) "
                                     "per RoI (adaptive)"),
    Arg("aligned", "bool", False, "shift RoIs by -0.5 pixel (pixel-centre alignment) and do "
                                  "not widen RoIs smaller than a pixel"),
]


def _geometry(ctx, X, R, box_cols: tuple, rotated: bool):
    """Check the arguments and shapes; return (order, N, C, H, W, rois float32, batch)."""
    a = ctx.args
    order = a["order"]
    if order not in ORDERS:
        ctx.fail(f"argument 'order' must be 'NCHW' or 'NHWC', got {order!r}")
    if not a["spatial_scale"] > 0:
        ctx.fail(f"argument 'spatial_scale' must be > 0, got {a['spatial_scale']}")
    if a["pooled_h"] < 1 or a["pooled_w"] < 1:
        ctx.fail(f"pooled_h and pooled_w must be >= 1, got {a['pooled_h']} x {a['pooled_w']}")
    if X.ndim != 4 or X.dtype != F32:
        ctx.fail(f"{ctx.input_label(0)} must be a 4-D float32 feature map, got "
                 f"{X.dtype} {tuple(X.shape)}")
    if R.dtype != F32 or R.ndim != 2 or R.shape[1] not in box_cols:
        if not (R.size == 0 and R.dtype.kind == "f"):
            ctx.fail(f"{ctx.input_label(1)} must be float32 of shape (R, "
                     f"{' or '.join(map(str, box_cols))}), got {R.dtype} {tuple(R.shape)}")
    if order == "NCHW":
        N, C, H, W = X.shape
    else:
        N, H, W, C = X.shape
    if R.size == 0:
        return order, N, C, H, W, None, None
    xp = ctx.xp
    with_batch = R.shape[1] == box_cols[-1]
    boxes = R[:, 1:] if with_batch else R
    if with_batch:
        batch_f = R[:, 0]
        if not bool(xp.isfinite(batch_f).all()):
            ctx.fail(f"{ctx.input_label(1)}: a batch index is not finite")
        batch = batch_f.astype(np.int64)  # C++'s truncation
        if bool((batch < 0).any()) or bool((batch >= N).any()):
            ctx.fail(f"{ctx.input_label(1)}: batch indices must be in [0, {N}), got "
                     f"[{int(batch.min())}, {int(batch.max())}]")
    else:
        batch = xp.zeros(R.shape[0], np.int64)
    if not bool(xp.isfinite(boxes).all()):
        ctx.fail(f"{ctx.input_label(1)}: RoI coordinates must be finite")
    if H == 0 or W == 0:
        ctx.fail(f"{ctx.input_label(0)} has an empty spatial size {H} x {W}")
    return order, N, C, H, W, boxes, batch


def _grid_sizes(ctx, roi_h, roi_w):
    """Samples per bin side, per RoI: sampling_ratio, or ceil(size / pooled) (float32)."""
    xp, a = ctx.xp, ctx.args
    n = roi_h.shape[0]
    if a["sampling_ratio"] > 0:
        full = xp.full(n, a["sampling_ratio"], np.int64)
        return full, full.copy()
    gh = xp.ceil(roi_h / F32(a["pooled_h"])).astype(np.int64)
    gw = xp.ceil(roi_w / F32(a["pooled_w"])).astype(np.int64)
    return xp.maximum(gh, 0), xp.maximum(gw, 0)


def _upright_frames(ctx, boxes):
    """Per RoI: (start_y, start_x, roi_h, roi_w) in feature-map pixels, as Caffe2 computed."""
    a = ctx.args
    scale = F32(a["spatial_scale"])
    offset = F32(0.5) if a["aligned"] else F32(0)
    x1, y1 = boxes[:, 0] * scale - offset, boxes[:, 1] * scale - offset
    x2, y2 = boxes[:, 2] * scale - offset, boxes[:, 3] * scale - offset
    roi_w, roi_h = x2 - x1, y2 - y1
    if a["aligned"]:
        if bool((roi_w < 0).any()) or bool((roi_h < 0).any()):
            ctx.fail(f"{ctx.input_label(1)}: ROIs in ROIAlign do not have non-negative size "
                     f"(x2 < x1 or y2 < y1 with aligned=1)")
    else:  # Caffe2's backward compatibility: malformed RoIs become 1x1
        roi_w, roi_h = ctx.xp.maximum(roi_w, F32(1)), ctx.xp.maximum(roi_h, F32(1))
    return y1, x1, roi_h, roi_w


def _rotated_frames(ctx, boxes):
    """Per rotated RoI [cx, cy, w, h, angle]: centre, size and (cos, sin) of the angle."""
    a, xp = ctx.args, ctx.xp
    scale = F32(a["spatial_scale"])
    offset = F32(0.5) if a["aligned"] else F32(0)
    cx, cy = boxes[:, 0] * scale - offset, boxes[:, 1] * scale - offset
    roi_w, roi_h = boxes[:, 2] * scale, boxes[:, 3] * scale
    theta = (boxes[:, 4].astype(np.float64) * math.pi / 180.0).astype(F32)
    if a["aligned"]:
        if bool((roi_w < 0).any()) or bool((roi_h < 0).any()):
            ctx.fail(f"{ctx.input_label(1)}: ROIs in ROIAlign do not have non-negative size")
    else:
        roi_w, roi_h = xp.maximum(roi_w, F32(1)), xp.maximum(roi_h, F32(1))
    return cy, cx, roi_h, roi_w, xp.cos(theta), xp.sin(theta)


def _axis_offsets(xp, start, size, pooled, grid):
    """(R, pooled, grid) positions start + p * bin + (i + 0.5) * bin / grid in float32."""
    bin_size = size / F32(pooled)
    step = bin_size / grid.astype(F32)
    p = xp.arange(pooled, dtype=F32)[None, :, None]
    i = xp.arange(int(grid[0]), dtype=F32)[None, None, :] + F32(0.5)
    return (start[:, None, None] + p * bin_size[:, None, None]) + i * step[:, None, None]


def _bilinear(xp, y, x, H, W):
    """Corner indices (flat y * W + x) and weights of bilinear samples at (y, x); samples
    more than a pixel outside the map get weight 0 (Caffe2's rule)."""
    outside = (y < F32(-1)) | (y > F32(H)) | (x < F32(-1)) | (x > F32(W))
    y = xp.minimum(xp.maximum(y, F32(0)), F32(H - 1))
    x = xp.minimum(xp.maximum(x, F32(0)), F32(W - 1))
    yl, xl = xp.floor(y).astype(np.int64), xp.floor(x).astype(np.int64)
    yh, xh = xp.minimum(yl + 1, H - 1), xp.minimum(xl + 1, W - 1)
    py, px = y - yl.astype(F32), x - xl.astype(F32)
    qy, qx = F32(1) - py, F32(1) - px
    zero = F32(0)
    weights = [xp.where(outside, zero, w) for w in (qy * qx, qy * px, py * qx, py * px)]
    index = [yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh]
    return index, weights


def _samples(ctx, frames, rows, rotated, H, W):
    """Corner indices and weights, shaped (r, PH, PW, gh * gw), for the RoIs ``rows`` of
    one grid size; weights include 1 / (gh * gw)."""
    xp, a = ctx.xp, ctx.args
    PH, PW = a["pooled_h"], a["pooled_w"]
    if rotated:
        cy, cx, rh, rw, cos, sin, gh, gw = (f[rows] for f in frames)
        yy = _axis_offsets(xp, -rh / F32(2), rh, PH, gh)  # relative to the centre
        xx = _axis_offsets(xp, -rw / F32(2), rw, PW, gw)
        yy = yy[:, :, None, :, None]
        xx = xx[:, None, :, None, :]
        c, s = cos[:, None, None, None, None], sin[:, None, None, None, None]
        x = xx * c + yy * s + cx[:, None, None, None, None]
        y = yy * c - xx * s + cy[:, None, None, None, None]
    else:
        y1, x1, rh, rw, gh, gw = (f[rows] for f in frames)
        y = _axis_offsets(xp, y1, rh, PH, gh)[:, :, None, :, None]
        x = _axis_offsets(xp, x1, rw, PW, gw)[:, None, :, None, :]
        y, x = xp.broadcast_arrays(y, x)
    index, weights = _bilinear(xp, y, x, H, W)
    r, g = len(rows), int(gh[0]) * int(gw[0])
    scale = F32(1) / F32(g)
    index = [i.reshape(r, PH, PW, g) for i in index]
    weights = [(w * scale).reshape(r, PH, PW, g) for w in weights]
    return index, weights


def _grid_groups(ctx, gh, gw):
    """RoI index arrays, one per distinct (grid_h, grid_w), in RoI order within a group."""
    xp = ctx.xp
    key = gh * (int(gw.max()) + 1) + gw if gw.size else gw
    keys = xp.unique(key)
    return [xp.flatnonzero(key == k) for k in keys]


def _frames(ctx, boxes, rotated):
    frames = _rotated_frames(ctx, boxes) if rotated else _upright_frames(ctx, boxes)
    roi_h, roi_w = frames[2], frames[3]
    gh, gw = _grid_sizes(ctx, roi_h, roi_w)
    a = ctx.args
    samples = int((gh * gw).sum()) * a["pooled_h"] * a["pooled_w"]
    check_allocation(ctx, (samples, 4), 12, "the RoIs' sampling grids (adaptive "
                                            "sampling_ratio on huge RoIs)")
    return frames + (gh, gw), gh, gw


def _chunks(rows, per_roi: int):
    """Split RoI index array ``rows`` so that a chunk gathers about CHUNK_VALUES floats."""
    step = max(1, CHUNK_VALUES // max(per_roi, 1))
    return [rows[i:i + step] for i in range(0, len(rows), step)]


def _forward(ctx, X, R, rotated):
    xp, a = ctx.xp, ctx.args
    order, N, C, H, W, boxes, batch = _geometry(ctx, X, R, (5, 6) if rotated else (4, 5),
                                                rotated)
    PH, PW = a["pooled_h"], a["pooled_w"]
    n_rois = R.shape[0] if R.ndim == 2 else 0
    if boxes is None or n_rois == 0:
        shape = (0, C, PH, PW) if order == "NCHW" else (0, PH, PW, C)
        return (xp.zeros(shape, F32),)
    check_allocation(ctx, (n_rois, C, PH, PW), 4, "the output")
    frames, gh, gw = _frames(ctx, boxes, rotated)
    if not rotated and xp is np and _native_detection.available():
        table = X.transpose(0, 2, 3, 1) if order == "NCHW" else X
        rows = np.stack([batch.astype(np.float64)] + [f.astype(np.float64) for f in frames],
                        axis=1)
        return (_native_detection.roi_align(table, rows, H, W, PH, PW, order == "NCHW"),)
    # channels-last image rows: (N * H * W, C); a RoI's pixels are offset by batch * H * W
    table = X.transpose(0, 2, 3, 1) if order == "NCHW" else X
    table = xp.ascontiguousarray(table).reshape(N * H * W, C)
    out = xp.zeros((n_rois, PH, PW, C), F32)
    for rows in _grid_groups(ctx, gh, gw):
        g = int(gh[rows[0]]) * int(gw[rows[0]])
        if g == 0:  # a zero-size aligned RoI: Caffe2's 0 * (1 / 0) per bin
            out[rows] = F32(np.nan)
            continue
        for part in _chunks(rows, PH * PW * g * C):
            index, weights = _samples(ctx, frames, part, rotated, H, W)
            base = (batch[part] * (H * W))[:, None, None, None]
            acc = None
            for idx, w in zip(index, weights):
                term = table[(idx + base).reshape(-1)].reshape(idx.shape + (C,)) * w[..., None]
                acc = term if acc is None else acc + term
            out[part] = acc.sum(axis=3)
    if order == "NCHW":
        out = xp.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return (out,)


def _output_shape(ctx, X, R, rotated):
    a = ctx.args
    if X is None or R is None or len(X.shape) != 4 or len(R.shape) != 2:
        return (None,)
    n = R.shape[0]
    if a["order"] == "NCHW":
        return (TensorSpec((n, X.shape[1], a["pooled_h"], a["pooled_w"]), np.float32),)
    return (TensorSpec((n, a["pooled_h"], a["pooled_w"], X.shape[3]), np.float32),)


def roi_align_gradient_maker(op_def, g_output):
    """RoIAlignGradient(X, RoIs, dY) -> dX, as Caffe2's GetRoIAlignGradient."""
    x, rois = op_def.input
    grad_op = make_operator("RoIAlignGradient", [x, rois, g_output[0]], [grad_name(x)])
    return [grad_op], [grad_name(x), None]


register_schema(OpSchema(
    "RoIAlign", num_inputs=2, num_outputs=1, args=ROI_ARGS,
    infer_shapes=lambda ctx, X, R: _output_shape(ctx, X, R, False),
    inputs=[("X", "4-D float32 feature map (N, C, H, W), or (N, H, W, C) for NHWC"),
            ("RoIs", "(R, 5) [batch, x1, y1, x2, y2], or (R, 4) for one image, in image "
                     "coordinates")],
    outputs=[("Y", "(R, C, pooled_h, pooled_w), or (R, pooled_h, pooled_w, C) for NHWC")],
    doc="Region of Interest (RoI) align operation as used in Mask R-CNN: each RoI's "
        "pooled_h x pooled_w bins are means of bilinear samples of X.",
    gradient=roi_align_gradient_maker))

register_schema(OpSchema(
    "RoIAlignRotated", num_inputs=2, num_outputs=1, args=ROI_ARGS,
    infer_shapes=lambda ctx, X, R: _output_shape(ctx, X, R, True),
    inputs=[("X", "4-D float32 feature map (N, C, H, W), or (N, H, W, C) for NHWC"),
            ("RoIs", "(R, 6) [batch, ctr_x, ctr_y, w, h, angle_degrees], or (R, 5) for one "
                     "image; angle counter-clockwise")],
    outputs=[("Y", "(R, C, pooled_h, pooled_w), or (R, pooled_h, pooled_w, C) for NHWC")],
    doc="RoIAlign on rotated RoIs: the sampling grid is turned by the RoI's angle about "
        "its centre (https://arxiv.org/abs/1703.01086).",
    gradient="NO_GRADIENT"))

register_schema(OpSchema(
    "RoIAlignGradient", num_inputs=3, num_outputs=1, args=ROI_ARGS, cpu_fallback=True,
    infer_shapes=lambda ctx, X, R, dY: (X,),
    inputs=[("X", "the forward input"), ("RoIs", "the forward RoIs"),
            ("dY", "gradient of the forward output")],
    outputs=[("dX", "gradient of X: each sample's bilinear weights times its bin's dY / "
                    "samples, added into the pixels it read")],
    doc="Gradient of RoIAlign with respect to X."))


@register_kernel("RoIAlign", devices=("CPU", "CUDA"))
def roi_align(ctx, X, R):
    return _forward(ctx, X, R, rotated=False)


@register_kernel("RoIAlignRotated", devices=("CPU", "CUDA"))
def roi_align_rotated(ctx, X, R):
    return _forward(ctx, X, R, rotated=True)


@register_kernel("RoIAlignGradient")
def roi_align_gradient(ctx, X, R, dY):
    a = ctx.args
    order, N, C, H, W, boxes, batch = _geometry(ctx, X, R, (4, 5), False)
    PH, PW = a["pooled_h"], a["pooled_w"]
    n = R.shape[0] if R.ndim == 2 else 0
    expected = (n, C, PH, PW) if order == "NCHW" else (n, PH, PW, C)
    if dY.dtype != F32 or tuple(dY.shape) != expected:
        ctx.fail(f"{ctx.input_label(2)} must be float32 of shape {expected}, got "
                 f"{dY.dtype} {tuple(dY.shape)}")
    grad = np.zeros((N * H * W, C), F32)
    if boxes is not None and n:
        dy = dY.transpose(0, 2, 3, 1) if order == "NCHW" else dY  # (R, PH, PW, C)
        frames, gh, gw = _frames(ctx, boxes, False)
        positions, values = [], []
        for rows in _grid_groups(ctx, gh, gw):
            g = int(gh[rows[0]]) * int(gw[rows[0]])
            if g == 0:
                continue
            for part in _chunks(rows, PH * PW * g * C):
                index, weights = _samples(ctx, frames, part, False, H, W)
                base = (batch[part] * (H * W))[:, None, None, None]
                for idx, w in zip(index, weights):
                    positions.append((idx + base).reshape(-1))
                    values.append((w[..., None] * dy[part][:, :, :, None, :]).reshape(-1, C))
        positions, values = np.concatenate(positions), np.concatenate(values)
        order_ = np.argsort(positions, kind="stable")
        positions, values = positions[order_], values[order_]
        starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
        grad[positions[starts]] = np.add.reduceat(values, starts, axis=0)
    grad = grad.reshape(N, H, W, C)
    if order == "NCHW":
        grad = np.ascontiguousarray(grad.transpose(0, 3, 1, 2))
    return (grad,)
