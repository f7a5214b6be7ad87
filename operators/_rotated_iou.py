"""Overlaps of rotated boxes, as Caffe2's ``generate_proposals_op_util_nms.h`` measured them.

A rotated box is ``[ctr_x, ctr_y, w, h, angle]`` (degrees, counter-clockwise in
image coordinates: corners at ``centre + R (+-w/2, +-h/2)`` with ``R = [[cos,
sin], [-sin, cos]]``).  Caffe2 (``rotated_rect_intersection``) collects the
points of the intersection polygon -- every crossing of an edge of one box with
an edge of the other, and every corner of one box inside the other (bounds
inclusive) -- and measures the convex polygon they span (a Graham scan, then
its area); fewer than three points measure 0, and two boxes whose corners all
agree within 1e-5 overlap by the smaller area.  IoU is ``inter / (area_a +
area_b - inter)`` in float32, areas ``w * h``.

Here the same points are computed for many pairs at once (arrays of shape
(pairs, 24) per coordinate, with a validity mask), ordered by angle around
their centroid -- for points in convex position the order a Graham scan finds
-- and the polygon's area is the shoelace sum.  Invalid slots repeat the first
point, adding nothing.  Where Caffe2's float32 arithmetic was fragile this is
not: corners are float64 relative to the first box's centre, and the
inclusive tests allow a relative 1e-9 of rounding, so a rectangle described
twice (say turned by 90 degrees with width and height swapped) overlaps itself
fully; and a box of zero width or height overlaps nothing (Caffe2's corner
test took such a box for the whole slab along its one side).

Pairs whose circumscribed circles are apart cannot meet and are never
measured, which keeps NMS over thousands of proposals to the few pairs that
overlap.  No loop over boxes or pairs (only over chunks of pairs, to bound
memory).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
CHUNK_PAIRS = 8192  # pairs measured at once: about 1.5 MiB per (pairs, 24) array
SAME_POINT_EPS = 1e-5
SLACK = 1e-9  # relative rounding allowed in the inclusive tests
_SIGNS = np.array([[-1, 1], [1, 1], [1, -1], [-1, -1]], np.float64)  # Caffe2's corner order


def corners(boxes):
    """(n, 4, 2) float64 corner offsets from each box's centre, in Caffe2's order (its
    RotatedRect::get_vertices)."""
    boxes = np.asarray(boxes, np.float64)
    theta = np.radians(boxes[:, 4])
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    hx = _SIGNS[None, :, 0] * boxes[:, 2:3] / 2  # +-w/2 per corner
    hy = _SIGNS[None, :, 1] * boxes[:, 3:4] / 2
    return np.stack([c * hx + s * hy, c * hy - s * hx], axis=-1)


def _inside(px, py, rx, ry):
    """Which points (px, py) (P, k) lie in the rectangles with corners (rx, ry) (P, 4)
    (bounds inclusive: Caffe2's projections on the sides AB and AD)."""
    abx, aby = (rx[:, 1] - rx[:, 0])[:, None], (ry[:, 1] - ry[:, 0])[:, None]
    dax, day = (rx[:, 0] - rx[:, 3])[:, None], (ry[:, 0] - ry[:, 3])[:, None]
    apx, apy = px - rx[:, :1], py - ry[:, :1]
    along_ab, ab2 = apx * abx + apy * aby, abx * abx + aby * aby
    along_ad, ad2 = -(apx * dax + apy * day), dax * dax + day * day
    return (along_ab >= -SLACK * ab2) & (along_ab <= (1 + SLACK) * ab2) \
        & (along_ad >= -SLACK * ad2) & (along_ad <= (1 + SLACK) * ad2)


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
    parallel = np.abs(det) <= SLACK * np.hypot(eax, eay) * np.hypot(ebx, eby)
    crossing = ~parallel & (t1 >= -SLACK) & (t1 <= 1 + SLACK) & (t2 >= -SLACK) \
        & (t2 <= 1 + SLACK)
    t1 = np.where(crossing, t1, 0)
    px = np.concatenate([(ax[:, :, None] + t1 * eax).reshape(-1, 16), ax, bx], axis=1)
    py = np.concatenate([(ay[:, :, None] + t1 * eay).reshape(-1, 16), ay, by], axis=1)
    valid = np.concatenate([crossing.reshape(-1, 16), _inside(ax, ay, bx, by),
                            _inside(bx, by, ax, ay)], axis=1)
    count = valid.sum(axis=1)
    n = np.maximum(count, 1)[:, None]
    px = px - (px * valid).sum(axis=1, keepdims=True) / n  # about the centroid
    py = py - (py * valid).sum(axis=1, keepdims=True) / n
    # a monotone stand-in for the angle around the centroid (no arctan): -1..3
    norm = np.abs(px) + np.abs(py)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(norm > 0, py / norm, 0)
    key = np.where(valid, np.where(px >= 0, slope, 2 - slope), np.inf)
    order = np.argsort(key, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    px, py = np.take_along_axis(px, order, axis=1), np.take_along_axis(py, order, axis=1)
    px = np.where(valid, px, px[:, :1])  # unused slots (sorted last) repeat the first point
    py = np.where(valid, py, py[:, :1])
    nxt = np.r_[1:px.shape[1], 0]
    area = np.abs((px * py[:, nxt] - px[:, nxt] * py).sum(axis=1)) / 2
    return np.where(count > 2, area, 0.0)


def intersection(a, b):
    """Intersection areas (float64, (P,)) of the paired rotated boxes a[p], b[p] (P, 5)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    out = np.zeros(len(a), np.float64)
    if not len(a):
        return out
    ca = corners(a)  # about a's centre
    cb = corners(b) + (b[:, None, :2].astype(np.float64) - a[:, None, :2])
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    same = (np.abs(ca - cb) <= SAME_POINT_EPS).all(axis=(1, 2))
    out[same] = np.minimum(area_a[same], area_b[same])
    rest = np.flatnonzero(~same & (area_a != 0) & (area_b != 0))
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
