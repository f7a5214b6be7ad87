"""Box arithmetic shared by Detectron's operators (GenerateProposals, BBoxTransform,
BoxWithNMSLimit, the FPN proposal ops), after Caffe2's
``generate_proposals_op_util_boxes.h`` and ``generate_proposals_op_util_nms.h``.

Boxes are float32 rows ``[x1, y1, x2, y2]`` (upright) or ``[ctr_x, ctr_y, w, h,
angle_degrees]`` (rotated).  ``plus_one`` is Caffe2's ``legacy_plus_one``: a box
from x1 to x2 is ``x2 - x1 + 1`` pixels wide (Detectron's pixel convention) when
true, ``x2 - x1`` when false.  Every formula runs in float32, in Caffe2's order of
operations, so that the thresholds (IoU, min_size, score) decide as Caffe2 decided.

Greedy NMS runs in C when caffe2lite/_native is built (a loop over kept boxes, as
Caffe2's); the NumPy engine, identical in its decisions, is described here.
Greedy NMS is sequential by definition (a box is kept when no kept box with a
higher score overlaps it), so it is computed here without a loop over boxes: the
score-sorted boxes are taken in blocks, a block is first suppressed by the boxes
kept before it (one IoU matrix), then resolved within itself by iterating the
greedy rule ``keep[i] = not any(keep[j] and IoU(i, j) > t for j < i)`` as a
vector equation to its fixed point -- the rule has exactly one solution, so the
fixed point is greedy NMS's answer, reached in as many iterations as the longest
chain of suppressions inside the block (a handful in practice).
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.operators import _native_detection, _rotated_iou

F32 = np.float32
# Caffe2's BBOX_XFORM_CLIP_DEFAULT: log(1000 / 16), the largest log-space scaling
BBOX_XFORM_CLIP = F32(math.log(1000.0 / 16.0))
NMS_BLOCK = 256


def transform_upright(boxes, deltas, weights, plus_one: bool, xp=np):
    """Caffe2's bbox_transform_upright: apply (dx, dy, dw, dh) deltas to (M, 4) boxes."""
    one = F32(plus_one)
    widths = boxes[:, 2] - boxes[:, 0] + one
    heights = boxes[:, 3] - boxes[:, 1] + one
    ctr_x = boxes[:, 0] + F32(0.5) * widths
    ctr_y = boxes[:, 1] + F32(0.5) * heights
    wx, wy, ww, wh = (F32(w) for w in weights)
    dx = deltas[:, 0] / wx
    dy = deltas[:, 1] / wy
    dw = xp.minimum(deltas[:, 2] / ww, BBOX_XFORM_CLIP)
    dh = xp.minimum(deltas[:, 3] / wh, BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    with np.errstate(over="ignore"):  # exp of a clipped delta cannot overflow; NaN passes
        pred_w = xp.exp(dw) * widths
        pred_h = xp.exp(dh) * heights
    out = xp.empty((boxes.shape[0], 4), F32)
    out[:, 0] = pred_ctr_x - F32(0.5) * pred_w
    out[:, 1] = pred_ctr_y - F32(0.5) * pred_h
    out[:, 2] = pred_ctr_x + F32(0.5) * pred_w - one
    out[:, 3] = pred_ctr_y + F32(0.5) * pred_h - one
    return out


def transform_rotated(boxes, deltas, weights, angle_bound):
    """Caffe2's bbox_transform_rotated on (M, 5) [ctr_x, ctr_y, w, h, angle] boxes;
    ``angle_bound`` is (lo, hi) to normalise angles into, or None."""
    wx, wy, ww, wh = (F32(w) for w in weights)
    dx = deltas[:, 0] / wx
    dy = deltas[:, 1] / wy
    dw = np.minimum(deltas[:, 2] / ww, BBOX_XFORM_CLIP)
    dh = np.minimum(deltas[:, 3] / wh, BBOX_XFORM_CLIP)
    da = (deltas[:, 4].astype(np.float64) * 180.0 / math.pi).astype(F32)
    out = np.empty((boxes.shape[0], 5), F32)
    out[:, 0] = dx * boxes[:, 2] + boxes[:, 0]
    out[:, 1] = dy * boxes[:, 3] + boxes[:, 1]
    out[:, 2] = np.exp(dw) * boxes[:, 2]
    out[:, 3] = np.exp(dh) * boxes[:, 3]
    angles = da + boxes[:, 4]
    if angle_bound is not None:
        lo, hi = angle_bound
        period = F32(hi - lo)
        angles = np.where(angles < lo, angles + period,
                          np.where(angles > hi, angles - period, angles))
    out[:, 4] = angles
    return out


def check_angle_bound(ctx, lo: int, hi: int):
    """Caffe2's enforce on the angle period: positive and a multiple of 180 degrees."""
    period = hi - lo
    if not (period > 0 and period % 180 == 0):
        ctx.fail(f"angle_bound_hi - angle_bound_lo = {period} must be a positive multiple "
                 f"of 180 degrees (angle_bound_lo {lo}, angle_bound_hi {hi})")


def clip_upright(boxes, height, width, plus_one: bool, xp=np):
    """Caffe2's clip_boxes_upright: x into [0, width - 1], y into [0, height - 1] (the
    ``- 1`` when ``plus_one``); ``height`` / ``width`` are ints, or per-box int arrays."""
    one = int(plus_one)
    x_max = (xp.asarray(width) - one).astype(F32).reshape(-1)
    y_max = (xp.asarray(height) - one).astype(F32).reshape(-1)
    out = xp.empty_like(boxes)
    for col, limit in ((0, x_max), (1, y_max), (2, x_max), (3, y_max)):  # the 4 columns
        out[:, col] = xp.maximum(xp.minimum(boxes[:, col], limit), F32(0))
    return out


def clip_rotated(boxes, height, width, angle_thresh, plus_one: bool):
    """Caffe2's clip_boxes_rotated: only boxes within ``angle_thresh`` degrees of upright
    are clipped (as upright boxes); the others pass unchanged."""
    out = boxes.copy()
    upright = np.abs(boxes[:, 4]) <= F32(angle_thresh)
    if upright.any():
        b = boxes[upright]
        one = F32(plus_one)
        half_w, half_h = (b[:, 2] - one) / F32(2), (b[:, 3] - one) / F32(2)
        xyxy = np.stack([b[:, 0] - half_w, b[:, 1] - half_h, b[:, 0] + half_w,
                         b[:, 1] + half_h], axis=1)
        pick = lambda v: np.broadcast_to(np.asarray(v), upright.shape)[upright]  # noqa: E731
        c = clip_upright(xyxy, pick(height), pick(width), plus_one)
        out[upright, 0] = (c[:, 0] + c[:, 2]) / F32(2)
        out[upright, 1] = (c[:, 1] + c[:, 3]) / F32(2)
        out[upright, 2] = c[:, 2] - c[:, 0] + one
        out[upright, 3] = c[:, 3] - c[:, 1] + one
    return out


def areas_upright(boxes, plus_one: bool):
    one = F32(plus_one)
    return (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)


def iou_upright(a, b, area_a, area_b, plus_one: bool, xp=np):
    """IoU matrix (len(a), len(b)) in Caffe2's float32 formula (NaN stays NaN)."""
    one = F32(plus_one)
    w = xp.minimum(a[:, None, 2], b[None, :, 2]) - xp.maximum(a[:, None, 0], b[None, :, 0])
    h = xp.minimum(a[:, None, 3], b[None, :, 3]) - xp.maximum(a[:, None, 1], b[None, :, 1])
    inter = xp.maximum(w + one, F32(0)) * xp.maximum(h + one, F32(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_upright(boxes, order, thresh: float, top_n: int = -1, plus_one: bool = True,
                xp=np):
    """Caffe2's nms_cpu_upright: greedy NMS over ``order`` (indices into ``boxes``,
    highest score first), a box suppressed when its IoU with a kept box is not
    ``<= thresh``; at most ``top_n`` kept when ``top_n >= 0``.  Returns kept indices
    in ``order``'s order.  On the host the C engine runs when built; the block engine
    otherwise, and on CuPy arrays (``xp``)."""
    order = xp.asarray(order, dtype=np.int64)
    if order.size == 0 or top_n == 0:
        return order[:0]
    b = boxes[order]
    native = _native_detection.nms(b, float(thresh), top_n, plus_one) if xp is np else None
    if native is not None:
        return order[native]
    return order[_nms_blocks(b, thresh, top_n, upright_overlaps(plus_one, xp), xp)]


def nms_rotated(boxes, order, thresh: float, top_n: int = -1):
    """Caffe2's nms_cpu_rotated: nms_upright's rule over [ctr_x, ctr_y, w, h, angle] boxes,
    with the IoU of rotated rectangles (operators/_rotated_iou.py)."""
    order = np.asarray(order, dtype=np.int64)
    if order.size == 0 or top_n == 0:
        return order[:0]
    return order[_nms_blocks(boxes[order], thresh, top_n, _rotated_iou.iou_matrix)]


def nms(boxes, order, thresh: float, top_n: int = -1, plus_one: bool = True, xp=np):
    """Greedy NMS of upright (4-column) or rotated (5-column, host arrays) boxes, as
    Caffe2's nms_cpu."""
    if boxes.shape[1] == 5:
        return nms_rotated(boxes, order, thresh, top_n)
    return nms_upright(boxes, order, thresh, top_n, plus_one, xp)


def upright_overlaps(plus_one: bool, xp=np):
    """``overlaps(a, b, lower_only)``: the upright IoU matrix (all pairs measured)."""
    def overlaps(a, b, lower_only=False):
        return iou_upright(a, b, areas_upright(a, plus_one), areas_upright(b, plus_one),
                           plus_one, xp)
    return overlaps


def _nms_blocks(b, thresh, top_n, overlaps, xp=np):
    """The array engine of greedy NMS on score-ordered boxes ``b``: kept row numbers.
    ``overlaps(x, y, lower_only)`` is the IoU matrix of two box arrays (``lower_only``:
    x is y and only pairs j < i are needed)."""
    thresh = F32(thresh)
    kept = []
    kept_boxes = b[:0]
    n_kept = 0
    for start in range(0, len(b), NMS_BLOCK):  # blocks of boxes, in score order
        stop = min(start + NMS_BLOCK, len(b))
        blk = b[start:stop]
        alive = xp.ones(stop - start, bool)
        if n_kept:
            alive = ~(~(overlaps(blk, kept_boxes) <= thresh)).any(axis=1)
        # within the block: suppressors are earlier (higher-score) boxes of the block
        suppress = ~(overlaps(blk, blk, lower_only=True) <= thresh)
        suppress &= xp.tri(len(blk), k=-1, dtype=bool)
        keep = alive
        while True:  # as many rounds as the longest chain of suppressions in the block
            nxt = alive & ~(suppress & keep[None, :]).any(axis=1)
            if bool((nxt == keep).all()):
                break
            keep = nxt
        idx = xp.flatnonzero(keep)
        if top_n >= 0 and n_kept + idx.size >= top_n:
            kept.append(idx[:top_n - n_kept] + start)
            break
        kept.append(idx + start)
        n_kept += int(idx.size)
        kept_boxes = xp.concatenate([kept_boxes, blk[idx]])
    return xp.concatenate(kept)
