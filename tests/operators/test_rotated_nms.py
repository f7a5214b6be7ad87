"""NMS over rotated boxes: the overlap of rotated rectangles, GenerateProposals with rotated
anchors and BoxWithNMSLimit(rotated=1), against references written here.

The reference overlap clips one rectangle by the other's four sides
(Sutherland-Hodgman, one pair at a time, float64) -- a different algorithm from
the operators' (Caffe2's intersection points and their convex hull, all pairs
at once).  A box ``[cx, cy, w, h, angle]`` has its corners at ``centre + R @
(+-w/2, +-h/2)`` with ``R = [[cos, sin], [-sin, cos]]``: Caffe2's
counter-clockwise angle in image coordinates (y down).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from detection_testing import greedy_nms, soft_nms

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.operators import _boxes, _rotated_iou
from caffe2lite.testing import check_reference

F = np.float32
rng = np.random.default_rng(5)


# -- the reference overlap ----------------------------------------------------------------
def ref_corners(box):
    cx, cy, w, h, angle = (float(v) for v in box)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    local = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [(cx + c * x + s * y, cy - s * x + c * y) for x, y in local]


def signed_area(poly):
    return sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1])) / 2


def clip(poly, a, b):
    """The part of ``poly`` left of the directed line a -> b (inclusive)."""
    side = lambda p: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])  # noqa
    out = []
    for p, q in zip(poly, poly[1:] + poly[:1]):
        sp, sq = side(p), side(q)
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def ref_intersection(b1, b2):
    poly, window = ref_corners(b1), ref_corners(b2)
    if signed_area(window) < 0:
        window = window[::-1]
    for a, b in zip(window, window[1:] + window[:1]):
        if len(poly) < 3:
            return 0.0
        poly = clip(poly, a, b)
    return abs(signed_area(poly)) if len(poly) >= 3 else 0.0


def ref_iou(b1, b2):
    inter = ref_intersection(b1, b2)
    return inter / (float(b1[2]) * float(b1[3]) + float(b2[2]) * float(b2[3]) - inter)


def rotated_boxes(n, spread=60.0, size=(4.0, 30.0)):
    return np.concatenate([rng.uniform(0, spread, (n, 2)), rng.uniform(*size, (n, 2)),
                           rng.uniform(-90, 90, (n, 1))], axis=1).astype(F)


def test_rotated_intersection_matches_polygon_clipping():
    boxes = rotated_boxes(120)
    boxes[:10, 4] = 0  # upright boxes, some sharing edge lines
    boxes[10] = boxes[11]  # identical boxes: Caffe2's "same" case
    boxes[12] = [20, 20, 10, 4, 30]
    boxes[13] = [20, 20, 4, 10, 120]  # the same rectangle, described turned by 90 degrees
    boxes[14] = [0, 0, 10, 10, 0]
    boxes[15] = [10, 0, 10, 10, 0]  # touching along an edge: no area
    boxes[16] = [2, 2, 2, 2, 45]  # inside boxes[14]
    boxes[17] = [5, 5, 0, 6, 10]  # zero width
    i, j = rng.integers(0, 120, 600), rng.integers(0, 120, 600)
    i = np.r_[i, 10, 12, 14, 14, 17]
    j = np.r_[j, 11, 13, 15, 16, 14]
    got = _rotated_iou.intersection(boxes[i], boxes[j])
    expected = np.array([ref_intersection(boxes[a], boxes[b]) for a, b in zip(i, j)])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert (expected > 0).sum() > 100  # the sample is not all disjoint pairs
    area = float(boxes[10, 2]) * float(boxes[10, 3])
    np.testing.assert_allclose(got[-5:], [area, 40.0, 0.0, 4.0, 0.0], rtol=1e-6, atol=1e-6)
    # the matrix form, lower triangle only, agrees with the pairs
    m = _rotated_iou.iou_matrix(boxes[:40], boxes[:40], lower_only=True)
    rows, cols = np.tril_indices(40, k=-1)
    np.testing.assert_allclose(m[rows, cols], [ref_iou(boxes[a], boxes[b])
                                               for a, b in zip(rows, cols)], atol=1e-5)
    assert not np.nan_to_num(np.triu(m)).any()  # unmeasured (NaN: two zero-area boxes)


def ref_greedy(boxes, order, thresh, top_n=-1):
    return greedy_nms(boxes, order, thresh, top_n, ref_iou)


def test_rotated_nms_engine_is_greedy_nms():
    boxes = rotated_boxes(400, spread=110)  # more than one 256-box block
    order = np.argsort(-rng.random(400), kind="stable")
    for thresh, top_n in ((0.3, -1), (0.6, 50), (0.0, -1)):
        expected = ref_greedy(boxes, order, thresh, top_n)
        np.testing.assert_array_equal(_boxes.nms_rotated(boxes, order, thresh, top_n), expected)


# -- GenerateProposals with rotated anchors -----------------------------------------------
def transform_rotated_ref(box, delta, lo=-90, hi=90):
    cx, cy, w, h, angle = (float(v) for v in box)
    clip = math.log(1000.0 / 16.0)
    dw, dh = min(float(delta[2]), clip), min(float(delta[3]), clip)
    out = [float(delta[0]) * w + cx, float(delta[1]) * h + cy, math.exp(dw) * w,
           math.exp(dh) * h, angle + float(delta[4]) * 180.0 / math.pi]
    if out[4] < lo:
        out[4] += hi - lo
    elif out[4] > hi:
        out[4] -= hi - lo
    return out


def clip_rotated_ref(box, height, width, angle_thresh=1.0):
    if abs(box[4]) > angle_thresh:
        return box
    cx, cy, w, h, angle = box
    x1, y1 = cx - (w - 1) / 2, cy - (h - 1) / 2
    x2, y2 = cx + (w - 1) / 2, cy + (h - 1) / 2
    x1, x2 = (min(max(v, 0.0), width - 1.0) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), height - 1.0) for v in (y1, y2))
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1 + 1, y2 - y1 + 1, angle]


def rotated_proposals_ref(scores, deltas, im_info, anchors, stride, pre, post, thresh, min_size):
    rois, probs = [], []
    A, H, W = scores.shape[1:]
    for n in range(scores.shape[0]):
        cands = []
        for y in range(H):
            for x in range(W):
                for a in range(A):
                    anchor = anchors[a] + np.array([x * stride, y * stride, 0, 0, 0], F)
                    cands.append((scores[n, a, y, x], anchor, deltas[n, 5 * a:5 * a + 5, y, x]))
        order = sorted(range(len(cands)), key=lambda i: -cands[i][0])[:pre]
        img_h, img_w, s = (float(v) for v in im_info[n])
        boxes, kept_scores = [], []
        for i in order:
            b = clip_rotated_ref(transform_rotated_ref(cands[i][1], cands[i][2]), int(img_h),
                                 int(img_w))
            if b[2] >= min_size * s and b[3] >= min_size * s and b[0] < img_w and b[1] < img_h:
                boxes.append(b)
                kept_scores.append(cands[i][0])
        keep = ref_greedy(np.array(boxes, F), range(len(boxes)), thresh, post)
        rois += [[n] + boxes[k] for k in keep]
        probs += [kept_scores[k] for k in keep]
    return np.array(rois, F).reshape(-1, 6), np.array(probs, F)


def test_generate_proposals_with_rotated_anchors_matches_reference():
    A, H, W = 3, 4, 5
    scores = rng.random((2, A, H, W)).astype(F)
    deltas = (rng.standard_normal((2, 5 * A, H, W)) * 0.2).astype(F)
    deltas[0, 4::5, 0, 0] = 0.0  # upright proposals near the border: clipped
    im_info = np.array([[60, 75, 1.0], [50, 64, 1.5]], F)
    anchors = np.array([[7.5, 7.5, 32, 16, 0], [7.5, 7.5, 24, 24, 45],
                        [7.5, 7.5, 16, 40, -60]], F)
    op = core.CreateOperator("GenerateProposals", ["scores", "deltas", "im_info", "anchors"],
                             ["rois", "probs"], spatial_scale=1 / 16.0, pre_nms_topN=40,
                             post_nms_topN=12, nms_thresh=0.5, min_size=4.0)
    rois, _ = check_reference(
        op, [scores, deltas, im_info, anchors],
        lambda *a: rotated_proposals_ref(*a, 16.0, 40, 12, 0.5, 4.0), threshold=1e-4)
    assert rois.shape[1] == 6 and len(rois) > 12  # both images contribute


# -- BoxWithNMSLimit(rotated=1) -----------------------------------------------------------
@pytest.mark.parametrize("soft", [None, "linear", "gaussian"])
def test_box_with_nms_limit_rotated_matches_reference(soft):
    n, classes = 24, 3
    base = rotated_boxes(n, spread=40)
    boxes = np.concatenate([base + np.c_[rng.normal(0, 2, (n, 4)), rng.normal(0, 10, n)]
                            for _ in range(classes)], axis=1).astype(F)
    scores = rng.random((n, classes)).astype(F)
    args = dict(score_thresh=0.2, nms=0.3, detections_per_im=10, rotated=1)
    if soft:
        args.update(soft_nms_enabled=1, soft_nms_method=soft, soft_nms_min_score_thres=0.15)
    op = core.CreateOperator("BoxWithNMSLimit", ["scores", "boxes"],
                             ["s", "b", "c", "bs", "k", "ks"], **args)

    def ref(scores, boxes):
        kept = []
        for j in range(1, classes):
            cand = [i for i in range(n) if scores[i, j] > 0.2]
            cb = boxes[:, 5 * j:5 * j + 5]
            if soft:
                keep, new = soft_nms(cb, scores[:, j], cand, 0.5, 0.3, 0.15,
                                     soft == "linear", ref_iou)
            else:
                keep = ref_greedy(cb, sorted(cand, key=lambda i: (-scores[i, j], i)), 0.3, 10)
                new = scores[:, j]
            kept += [(j, i, new[i]) for i in keep]
        if len(kept) > 10:
            best = sorted(range(len(kept)), key=lambda t: (-kept[t][2], t))[:10]
            kept = [kept[t] for t in sorted(best)]
        return (np.array([k[2] for k in kept], F),
                np.array([boxes[i, 5 * j:5 * j + 5] for j, i, _ in kept], F).reshape(-1, 5),
                np.array([k[0] for k in kept], F), np.array([len(kept)], F),
                np.array([k[1] for k in kept], np.int32),
                np.bincount([k[0] for k in kept], minlength=classes)[None].astype(np.int32))

    check_reference(op, [scores, boxes], ref, threshold=1e-5)


def test_box_with_nms_limit_rotated_refuses_four_column_boxes():
    workspace.FeedBlob("scores", np.full((3, 2), 0.9, F))
    workspace.FeedBlob("boxes", np.zeros((3, 8), F))
    with pytest.raises(EnforceError, match=r"must be \(3, 10\)"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "BoxWithNMSLimit", ["scores", "boxes"], ["s", "b", "c"], rotated=1))
    assert not workspace.HasBlob("s")
