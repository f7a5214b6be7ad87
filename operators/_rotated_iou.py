"""Overlaps of rotated boxes, as Caffe2's ``generate_proposals_op_util_nms.h`` measured them.

A rotated box is ``[ctr_x, ctr_y, w, h, angle]`` (degrees, counter-clockwise).
Caffe2 (``rotated_rect_intersection``) takes the four corners of each box
(float32, its ``get_vertices``), collects the points of the intersection
polygon -- every crossing of an edge of one box with an edge of the other, and
every corner of one box inside the other (bounds inclusive) -- and measures
the convex polygon they span (a Graham scan, then its area); fewer than three
points measure 0, and two boxes whose corners all agree within 1e-5 overlap by
the smaller area.  IoU is ``inter / (area_a + area_b - inter)`` in float32,
areas ``w * h``.

Here the same points are computed for many pairs at once (arrays of shape
(pairs, 24, 2) with a validity mask), ordered by angle around their centroid
-- for points in convex position the order a Graham scan finds -- and the
polygon's area is the shoelace sum, in float64.  Invalid slots repeat the first
point, adding nothing.  Pairs whose circumscribed circles are apart cannot
meet and are never measured, which keeps NMS over thousands of proposals to
the few pairs that overlap.  No loop over boxes or pairs (only over chunks of
pairs, to bound memory).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
CHUNK_PAIRS = 8192  # pairs measured at once: about 10 MiB per (pairs, 24, 2) array
SAME_POINT_EPS = F32(1e-5)


def corners(boxes):
    """(n, 4, 2) float32 corners in Caffe2's order (its RotatedRect::get_vertices, with the
    clockwise angle ``-angle``)."""
    boxes = np.asarray(boxes, F32)
    theta = -boxes[:, 4].astype(np.float64) * 0.01745329251
    b = np.cos(theta).astype(F32) * F32(0.5)
    a = np.sin(theta).astype(F32) * F32(0.5)
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    p0 = np.stack([cx - a * h - b * w, cy + b * h - a * w], axis=1)
    p1 = np.stack([cx + a * h - b * w, cy - b * h - a * w], axis=1)
    centre = np.stack([cx, cy], axis=1)
    return np.stack([p0, p1, F32(2) * centre - p0, F32(2) * centre - p1], axis=1)


def _inside(px, py, rx, ry):
    """Which points (px, py) (P, k) lie in the rectangles with corners (rx, ry) (P, 4)
    (bounds inclusive: Caffe2's projections on the sides AB and AD)."""
    abx, aby = (rx[:, 1] - rx[:, 0])[:, None], (ry[:, 1] - ry[:, 0])[:, None]
    dax, day = (rx[:, 0] - rx[:, 3])[:, None], (ry[:, 0] - ry[:, 3])[:, None]
    apx, apy = px - rx[:, :1], py - ry[:, :1]
    along_ab = apx * abx + apy * aby
    along_ad = -(apx * dax + apy * day)
    return (along_ab >= 0) & (along_ad >= 0) & (along_ab <= abx * abx + aby * aby) \
        & (along_ad <= dax * dax + day * day)


_NEXT = np.array([1, 2, 3, 0])  # corner i's edge runs to corner _NEXT[i]


def _chunk_intersection(ax, ay, bx, by):
    """Intersection areas of paired rectangles with corners (ax, ay), (bx, by) (P, 4)."""
    # edge i of a (rows) against edge j of b (columns): (P, 4, 4)
    eax, eay = (ax[:, _NEXT] - ax)[:, :, None], (ay[:, _NEXT] - ay)[:, :, None]
    ebx, eby = (bx[:, _NEXT] - bx)[:, None, :], (by[:, _NEXT] - by)[:, None, :]
    dx, dy = bx[:, None, :] - ax[:, :, None], by[:, None, :] - ay[:, :, None]
    det = ebx * eay - eax * eby
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (ebx * dy - dx * eby) / det
        t2 = (eax * dy - dx * eay) / det
    crossing = (np.abs(det) > 1e-14) & (t1 >= 0) & (t1 <= 1) & (t2 >= 0) & (t2 <= 1)
    t1 = np.where(crossing, t1, 0)
    px = np.concatenate([(ax[:, :, None] + t1 * eax).reshape(-1, 16), ax, bx], axis=1)
    py = np.concatenate([(ay[:, :, None] + t1 * eay).reshape(-1, 16), ay, by], axis=1)
    valid = np.concatenate([crossing.reshape(-1, 16), _inside(ax, ay, bx, by),
                            _inside(bx, by, ax, ay)], axis=1)
    count = valid.sum(axis=1)
    n = np.maximum(count, 1)
    px = px - (px * valid).sum(axis=1, keepdims=True) / n[:, None]  # about the centroid
    py = py - (py * valid).sum(axis=1, keepdims=True) / n[:, None]
    # a monotone stand-in for the angle around the centroid (no arctan): -1..3
    norm = np.abs(px) + np.abs(py)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(norm > 0, py / norm, 0)
    key = np.where(valid, np.where(px >= 0, slope, 2 - slope), np.inf)
    order = np.argsort(key, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    # unused slots (sorted last) repeat the first point, adding nothing to the sum
    px = np.where(valid, np.take_along_axis(px, order, axis=1), px[np.arange(len(px)), order[:, 0]][:, None])
    py = np.where(valid, np.take_along_axis(py, order, axis=1), py[np.arange(len(py)), order[:, 0]][:, None])
    nxt = np.r_[1:px.shape[1], 0]
    area = np.abs((px * py[:, nxt] - px[:, nxt] * py).sum(axis=1, dtype=np.float64)) / 2
    return np.where(count > 2, area, 0.0)


def intersection(a, b):
    """Intersection areas (float64, (P,)) of the paired rotated boxes a[p], b[p] (P, 5)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    out = np.zeros(len(a), np.float64)
    if not len(a):
        return out
    ca, cb = corners(a), corners(b)
    same = (np.abs(ca - cb) <= SAME_POINT_EPS).all(axis=(1, 2))
    out[same] = np.minimum(a[same, 2] * a[same, 3], b[same, 2] * b[same, 3])
    rest = np.flatnonzero(~same)
    for start in range(0, rest.size, CHUNK_PAIRS):  # chunks of pairs, to bound memory
        part = rest[start:start + CHUNK_PAIRS]
        out[part] = _chunk_intersection(ca[part, :, 0], ca[part, :, 1], cb[part, :, 0],
                                        cb[part, :, 1])
    return out


def _reach(boxes):
    """Half-diagonal of each box, with room for rounding: farther apart, boxes cannot meet."""
    w, h = boxes[:, 2].astype(np.float64), boxes[:, 3].astype(np.float64)
    return 0.5 * np.hypot(w, h) * (1 + 1e-4) + 1e-3


def _iou(inter, area_a, area_b):
    inter = inter.astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def iou_pairs(a, b):
    """float32 IoU of the paired rotated boxes a[p], b[p] (P, 5)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    gap = np.hypot(*(a[:, :2].astype(np.float64) - b[:, :2]).T)
    near = np.flatnonzero(gap <= _reach(a) + _reach(b))
    inter = np.zeros(len(a), np.float64)
    inter[near] = intersection(a[near], b[near])
    return _iou(inter, a[:, 2] * a[:, 3], b[:, 2] * b[:, 3])


def iou_matrix(a, b, lower_only: bool = False):
    """float32 IoU matrix (len(a), len(b)) of rotated boxes; with ``lower_only`` (a is b)
    only pairs j < i are measured, the rest reading 0."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    gap = np.hypot(a[:, None, 0].astype(np.float64) - b[None, :, 0],
                   a[:, None, 1].astype(np.float64) - b[None, :, 1])
    near = gap <= _reach(a)[:, None] + _reach(b)[None, :]
    if lower_only:
        near &= np.tri(len(a), len(b), k=-1, dtype=bool)
    rows, cols = np.nonzero(near)
    inter = np.zeros((len(a), len(b)), np.float64)
    inter[rows, cols] = intersection(a[rows], b[cols])
    return _iou(inter, (a[:, 2] * a[:, 3])[:, None], (b[:, 2] * b[:, 3])[None, :])
