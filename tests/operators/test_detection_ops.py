"""Detectron's operators against NumPy references written here from Caffe2's semantics.

RoIAlign (NCHW / NHWC, aligned, fixed and adaptive sampling, 4- and 5-column
RoIs, RoIs outside the map, zero-size RoIs) and its gradient (finite
differences), RoIAlignRotated (an unrotated RoI equals RoIAlign), BBoxTransform,
GenerateProposals and BoxWithNMSLimit (greedy and Soft-NMS) -- each reference a
plain loop over boxes following Caffe2's sources -- and hostile inputs that must
fail cleanly, leaving every blob as it was.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from detection_testing import greedy_nms as reference_greedy
from detection_testing import soft_nms

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

F = np.float32


# -- references ---------------------------------------------------------------------------
def roi_align_ref(X, R, scale, ph, pw, sr, aligned, nhwc=False):
    """Caffe2's RoIAlign, one sample at a time (NCHW result)."""
    if nhwc:
        X = X.transpose(0, 3, 1, 2)
    N, C, H, W = X.shape
    out = np.zeros((len(R), C, ph, pw), np.float64)
    for r, roi in enumerate(R):
        b, box = (int(roi[0]), roi[1:]) if len(roi) == 5 else (0, roi)
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (float(F(v) * F(scale)) - off for v in box)
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = sr if sr > 0 else math.ceil(rh / ph)
        gw = sr if sr > 0 else math.ceil(rw / pw)
        for i in range(ph):
            for j in range(pw):
                acc = np.zeros(C)
                for iy in range(gh):
                    y = y1 + i * rh / ph + (iy + 0.5) * rh / ph / gh
                    for ix in range(gw):
                        x = x1 + j * rw / pw + (ix + 0.5) * rw / pw / gw
                        if y < -1 or y > H or x < -1 or x > W:
                            continue
                        y_, x_ = min(max(y, 0), H - 1), min(max(x, 0), W - 1)
                        yl, xl = int(y_), int(x_)
                        yh, xh = min(yl + 1, H - 1), min(xl + 1, W - 1)
                        ly, lx = y_ - yl, x_ - xl
                        img = X[b]
                        acc += ((1 - ly) * (1 - lx) * img[:, yl, xl] + (1 - ly) * lx * img[:, yl, xh]
                                + ly * (1 - lx) * img[:, yh, xl] + ly * lx * img[:, yh, xh])
                out[r, :, i, j] = acc / (gh * gw) if gh * gw else np.nan
    return out.astype(F)


def iou(a, b, plus_one):
    p = 1.0 if plus_one else 0.0
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + p, 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + p, 0.0)
    inter = w * h
    area = lambda c: (c[2] - c[0] + p) * (c[3] - c[1] + p)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def greedy_nms(boxes, order, thresh, top_n=-1, plus_one=True):
    return reference_greedy(boxes, order, thresh, top_n, lambda a, b: iou(a, b, plus_one))


def transform(box, delta, weights, plus_one):
    p = 1.0 if plus_one else 0.0
    w, h = box[2] - box[0] + p, box[3] - box[1] + p
    cx, cy = box[0] + 0.5 * w, box[1] + 0.5 * h
    dx, dy = delta[0] / weights[0], delta[1] / weights[1]
    clip = math.log(1000.0 / 16.0)
    dw, dh = min(delta[2] / weights[2], clip), min(delta[3] / weights[3], clip)
    pcx, pcy, pw_, ph_ = dx * w + cx, dy * h + cy, math.exp(dw) * w, math.exp(dh) * h
    return [pcx - 0.5 * pw_, pcy - 0.5 * ph_, pcx + 0.5 * pw_ - p, pcy + 0.5 * ph_ - p]


def clip_box(box, height, width, plus_one):
    p = 1 if plus_one else 0
    lim = [width - p, height - p, width - p, height - p]
    return [min(max(v, 0.0), m) for v, m in zip(box, lim)]


def rois_case(rng, n_img=2, n=12, size=40):
    xy = rng.uniform(-5, size, (n, 2))
    wh = rng.uniform(0, size / 2, (n, 2))
    batch = rng.integers(0, n_img, (n, 1))
    return np.concatenate([batch, xy, xy + wh], axis=1).astype(F)


# -- RoIAlign -----------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("sampling_ratio,aligned", [(0, 0), (2, 0), (0, 1), (-1, 1)])
def test_roi_align_matches_reference(order, sampling_ratio, aligned):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 3, 11, 13)).astype(F)
    R = rois_case(rng)
    R = np.concatenate([R, [[1, -30, -30, -20, -25], [0, 2, 3, 2, 3]]]).astype(F)  # outside, 0-size
    if aligned:
        R = R[:-1]  # a zero-size RoI is fine aligned; keep one positive-size set
    x_in = X.transpose(0, 2, 3, 1).copy() if order == "NHWC" else X
    op = core.CreateOperator("RoIAlign", ["X", "R"], ["Y"], spatial_scale=0.5, pooled_h=3,
                             pooled_w=4, sampling_ratio=sampling_ratio, aligned=aligned,
                             order=order)

    def ref(x, r):
        y = roi_align_ref(X, r, 0.5, 3, 4, sampling_ratio, aligned)
        return (y.transpose(0, 2, 3, 1) if order == "NHWC" else y,)

    check_reference(op, [x_in, R], ref, threshold=1e-5)


def test_roi_align_four_columns_and_engines_agree():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((1, 4, 9, 9)).astype(F)
    R = rois_case(rng, n_img=1, size=30)[:, 1:]
    op = core.CreateOperator("RoIAlign", ["X", "R"], ["Y"], spatial_scale=0.25, pooled_h=2,
                             pooled_w=2, sampling_ratio=0)
    y = check_reference(op, [X, R], lambda x, r: (roi_align_ref(x, r, 0.25, 2, 2, 0, 0),),
                        threshold=1e-5)[0]
    # the NumPy engine (no C library) gives the same values
    code = ("import numpy as np, sys; from caffe2lite.testing import run_op; "
            "from caffe2lite import core; d = np.load(sys.argv[1]); "
            "op = core.CreateOperator('RoIAlign', ['X', 'R'], ['Y'], spatial_scale=0.25, "
            "pooled_h=2, pooled_w=2, sampling_ratio=0); "
            "np.save(sys.argv[1] + '.out.npy', run_op(op, [d['X'], d['R']])[0])")
    path = os.path.join(workspace.RootFolder(), f".roi_engines_{os.getpid()}.npz")
    np.savez(path, X=X, R=R)
    try:
        env = dict(os.environ, CAFFE2LITE_DISABLE_NATIVE="1")
        subprocess.run([sys.executable, "-c", code, path], check=True, env=env)
        np.testing.assert_allclose(np.load(path + ".out.npy"), y, rtol=1e-6, atol=1e-6)
    finally:
        for p in (path, path + ".out.npy"):
            if os.path.exists(p):
                os.remove(p)


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_roi_align_gradient(order):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 2, 6, 7)).astype(F)
    if order == "NHWC":
        X = X.transpose(0, 2, 3, 1).copy()
    R = np.array([[0, 1.3, 0.7, 9.1, 8.2], [1, 3.1, 2.2, 12.9, 10.4]], F)
    op = core.CreateOperator("RoIAlign", ["X", "R"], ["Y"], spatial_scale=0.5, pooled_h=2,
                             pooled_w=2, sampling_ratio=2, order=order)
    check_gradient(op, [X, R], input_index=0)


def test_roi_align_rotated_unrotated_equals_roi_align():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1, 3, 10, 10)).astype(F)
    boxes = np.array([[0, 2, 2, 12, 9], [0, 5, 1, 7, 15]], F)
    rotated = np.stack([boxes[:, 0], (boxes[:, 1] + boxes[:, 3]) / 2,
                        (boxes[:, 2] + boxes[:, 4]) / 2, boxes[:, 3] - boxes[:, 1],
                        boxes[:, 4] - boxes[:, 2], np.zeros(2)], axis=1).astype(F)
    kw = dict(spatial_scale=0.5, pooled_h=3, pooled_w=3, sampling_ratio=2)
    op = core.CreateOperator("RoIAlignRotated", ["X", "R"], ["Y"], **kw)
    check_reference(op, [X, rotated], lambda x, r: (roi_align_ref(X, boxes, 0.5, 3, 3, 2, 0),),
                    threshold=1e-5)
    # a quarter turn of a square RoI permutes the sampling grid
    square = np.array([[0, 10, 10, 8, 8, 90]], F)
    upright = np.array([[0, 10, 10, 8, 8, 0]], F)
    workspace.FeedBlob("X", X)
    for name, r in (("turned", square), ("upright", upright)):
        workspace.FeedBlob("R", r)
        workspace.RunOperatorOnce(core.CreateOperator("RoIAlignRotated", ["X", "R"], [name],
                                                      **kw))
    turned, up = workspace.FetchBlob("turned"), workspace.FetchBlob("upright")
    np.testing.assert_allclose(turned[0], np.rot90(up[0], k=-1, axes=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("rois, message", [
    (np.array([[2, 0, 0, 4, 4]], F), "batch indices must be in"),
    (np.array([[-1, 0, 0, 4, 4]], F), "batch indices must be in"),
    (np.array([[0, 0, np.nan, 4, 4]], F), "must be finite"),
    (np.array([[0, 0, 0, 4]], np.float64), "float32"),
])
def test_roi_align_refuses_hostile_rois(rois, message):
    workspace.FeedBlob("X", np.ones((2, 1, 4, 4), F))
    workspace.FeedBlob("R", rois)
    before = snapshot()
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator("RoIAlign", ["X", "R"], ["Y"]))
    assert_unchanged(before)


def test_roi_align_empty_rois_and_negative_aligned_size():
    workspace.FeedBlob("X", np.ones((1, 3, 4, 4), F))
    workspace.FeedBlob("R", np.zeros((0, 5), F))
    workspace.RunOperatorOnce(core.CreateOperator("RoIAlign", ["X", "R"], ["Y"], pooled_h=2,
                                                  pooled_w=2, order="NHWC"))
    assert workspace.FetchBlob("Y").shape == (0, 2, 2, 4)  # NHWC: (0, PH, PW, C) of X's C=4
    workspace.FeedBlob("R", np.array([[0, 3, 3, 1, 1]], F))
    with pytest.raises(EnforceError, match="non-negative size"):
        workspace.RunOperatorOnce(core.CreateOperator("RoIAlign", ["X", "R"], ["Y2"], aligned=1))


# -- BBoxTransform ------------------------------------------------------------------------
@pytest.mark.parametrize("apply_scale,plus_one", [(0, 1), (1, 1), (1, 0)])
def test_bbox_transform_matches_reference(apply_scale, plus_one):
    rng = np.random.default_rng(5)
    rois = rois_case(rng, n_img=2, n=8, size=60)
    rois = rois[np.argsort(rois[:, 0], kind="stable")]
    deltas = (rng.standard_normal((8, 12)) * 0.5).astype(F)
    deltas[0, 2] = 50.0  # beyond the log-space clip
    im_info = np.array([[64, 70, 1.0], [80, 60, 2.0]], F)
    weights = [10.0, 10.0, 5.0, 5.0]
    op = core.CreateOperator("BBoxTransform", ["rois", "deltas", "im_info"], ["box", "splits"],
                             weights=weights, apply_scale=apply_scale, legacy_plus_one=plus_one)

    def ref(rois, deltas, im_info):
        out = np.zeros_like(deltas)
        for i, roi in enumerate(rois):
            h, w, s = im_info[int(roi[0])]
            img_h, img_w = int(h / s + 0.5), int(w / s + 0.5)
            for k in range(3):
                b = transform(roi[1:] / s, deltas[i, 4 * k:4 * k + 4], weights, plus_one)
                b = clip_box(b, img_h, img_w, plus_one)
                out[i, 4 * k:4 * k + 4] = np.array(b) * (s if apply_scale else 1.0)
        return out, np.bincount(rois[:, 0].astype(int), minlength=2).astype(F)

    check_reference(op, [rois, deltas, im_info], ref, threshold=1e-4)


def test_bbox_transform_refuses_out_of_range_image_index():
    workspace.FeedBlob("rois", np.array([[3, 0, 0, 4, 4]], F))
    workspace.FeedBlob("deltas", np.zeros((1, 4), F))
    workspace.FeedBlob("im_info", np.array([[10, 10, 1]], F))
    with pytest.raises(EnforceError, match="image indices must be in"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "BBoxTransform", ["rois", "deltas", "im_info"], ["out"]))
    assert not workspace.HasBlob("out")


# -- GenerateProposals --------------------------------------------------------------------
def proposals_ref(scores, deltas, im_info, anchors, scale, pre, post, thresh, min_size):
    rois, probs = [], []
    A, H, W = scores.shape[1:]
    stride = 1.0 / scale
    for n in range(scores.shape[0]):
        cands = []
        for h in range(H):
            for w in range(W):
                for a in range(A):
                    anchor = anchors[a] + np.array([w, h, w, h]) * stride
                    cands.append((scores[n, a, h, w], anchor, deltas[n, 4 * a:4 * a + 4, h, w]))
        order = sorted(range(len(cands)), key=lambda i: -cands[i][0])[:pre if pre > 0 else None]
        img_h, img_w, s = im_info[n]
        boxes, scs = [], []
        for i in order:
            b = clip_box(transform(cands[i][1], cands[i][2], [1, 1, 1, 1], True),
                         int(img_h), int(img_w), True)
            ws, hs = b[2] - b[0] + 1, b[3] - b[1] + 1
            if ws >= min_size * s and hs >= min_size * s and b[0] + ws / 2 < img_w \
                    and b[1] + hs / 2 < img_h:
                boxes.append(b)
                scs.append(cands[i][0])
        keep = greedy_nms(boxes, range(len(boxes)), thresh, post if post > 0 else -1)
        rois += [[n] + boxes[k] for k in keep]
        probs += [scs[k] for k in keep]
    return np.array(rois, F).reshape(-1, 5), np.array(probs, F)


def test_generate_proposals_matches_reference():
    rng = np.random.default_rng(6)
    A, H, W = 3, 4, 5
    scores = rng.random((2, A, H, W)).astype(F)
    deltas = (rng.standard_normal((2, 4 * A, H, W)) * 0.3).astype(F)
    im_info = np.array([[60, 75, 1.0], [50, 64, 1.5]], F)
    anchors = np.array([[-8, -8, 23, 23], [-20, -4, 35, 19], [0, -12, 15, 27]], F)
    kw = dict(spatial_scale=1 / 16.0, pre_nms_topN=40, post_nms_topN=12, nms_thresh=0.6,
              min_size=4.0)
    op = core.CreateOperator("GenerateProposals", ["scores", "deltas", "im_info", "anchors"],
                             ["rois", "probs"], **kw)
    check_reference(op, [scores, deltas, im_info, anchors],
                    lambda *a: proposals_ref(*a, 1 / 16.0, 40, 12, 0.6, 4.0), threshold=1e-4)


def test_generate_proposals_refuses_nan_scores():
    scores = np.ones((1, 1, 2, 2), F)
    scores[0, 0, 1, 1] = np.nan
    for name, v in (("s", scores), ("d", np.zeros((1, 4, 2, 2), F)),
                    ("i", np.array([[32, 32, 1]], F)), ("a", np.array([[0, 0, 15, 15]], F))):
        workspace.FeedBlob(name, v)
    with pytest.raises(EnforceError, match="NaN scores"):
        workspace.RunOperatorOnce(core.CreateOperator("GenerateProposals", ["s", "d", "i", "a"],
                                                      ["rois", "probs"]))
    assert not workspace.HasBlob("rois")


# -- BoxWithNMSLimit ----------------------------------------------------------------------
def soft_nms_ref(boxes, scores, inds, sigma, thresh, min_score, linear):
    return soft_nms(boxes, scores, inds, sigma, thresh, min_score, linear,
                    lambda a, b: iou(a, b, True))


@pytest.mark.parametrize("soft", [None, "linear", "gaussian"])
def test_box_with_nms_limit_matches_reference(soft):
    rng = np.random.default_rng(7)
    n, classes = 30, 4
    base = rng.uniform(0, 50, (n, 2))
    boxes = np.concatenate([np.concatenate([base + rng.normal(0, 3, (n, 2)),
                                            base + 20 + rng.normal(0, 3, (n, 2))], 1)
                            for _ in range(classes)], 1).astype(F)
    scores = rng.random((n, classes)).astype(F)
    scores[3, 2] = np.nan  # never passes the threshold
    splits = np.array([18, 12], F)
    args = dict(score_thresh=0.3, nms=0.4, detections_per_im=9)
    if soft:
        args.update(soft_nms_enabled=1, soft_nms_method=soft, soft_nms_sigma=0.5,
                    soft_nms_min_score_thres=0.2)
    op = core.CreateOperator("BoxWithNMSLimit", ["scores", "boxes", "splits"],
                             ["s", "b", "c", "bs", "k", "ks"], **args)

    def ref(scores, boxes, splits):
        outs = [[], [], [], [], [], []]
        start = 0
        for img, count in enumerate(splits.astype(int)):
            sc, bx = scores[start:start + count], boxes[start:start + count]
            kept = []
            for j in range(1, classes):
                cand = [i for i in range(count) if sc[i, j] > 0.3]
                cb = bx[:, 4 * j:4 * j + 4]
                if soft:
                    keep, new = soft_nms_ref(cb, sc[:, j], cand, 0.5, 0.4, 0.2, soft == "linear")
                else:
                    order = sorted(cand, key=lambda i: (-sc[i, j], i))
                    keep, new = greedy_nms(cb, order, 0.4, 9), sc[:, j]
                kept += [(j, i, new[i]) for i in keep]
            if len(kept) > 9:
                best = sorted(range(len(kept)), key=lambda t: (-kept[t][2], t))[:9]
                kept = [kept[t] for t in sorted(best)]
            for j, i, s in kept:
                outs[0].append(s)
                outs[1].append(bx[i, 4 * j:4 * j + 4])
                outs[2].append(j)
                outs[4].append(i)
            outs[3].append(len(kept))
            outs[5].append(np.bincount([k[0] for k in kept], minlength=classes))
            start += count
        return (np.array(outs[0], F), np.array(outs[1], F).reshape(-1, 4),
                np.array(outs[2], F), np.array(outs[3], F), np.array(outs[4], np.int32),
                np.array(outs[5], np.int32))

    check_reference(op, [scores, boxes, splits], ref, threshold=1e-5)


def test_box_with_nms_limit_class_agnostic_and_background_options():
    rng = np.random.default_rng(8)
    boxes = np.concatenate([rng.uniform(0, 20, (6, 2)), rng.uniform(30, 50, (6, 2))], 1)
    scores = rng.random((6, 3)).astype(F)
    op = core.CreateOperator("BoxWithNMSLimit", ["scores", "boxes"], ["s", "b", "c"],
                             score_thresh=0.1, nms=0.5, cls_agnostic_bbox_reg=1,
                             output_classes_include_bg_cls=0)
    s, b, c = check_reference(op, [scores, boxes.astype(F)], lambda *a: (), threshold=0)
    per_class = {j: [i for i in np.argsort(-scores[:, j], kind="stable") if scores[i, j] > 0.1]
                 for j in (1, 2)}
    expected_c = [j - 1 for j in (1, 2) for _ in greedy_nms(boxes, per_class[j], 0.5, 100)]
    np.testing.assert_array_equal(c, np.array(expected_c, F))


def test_box_with_nms_limit_refuses_bad_batch_splits_and_boxes():
    workspace.FeedBlob("scores", np.full((3, 2), 0.9, F))
    workspace.FeedBlob("boxes", np.zeros((3, 8), F))
    workspace.FeedBlob("splits", np.array([1, 1], F))
    before = snapshot()
    with pytest.raises(EnforceError, match="adding up to 3"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "BoxWithNMSLimit", ["scores", "boxes", "splits"], ["s", "b", "c"]))
    workspace.FeedBlob("boxes", np.full((3, 8), np.inf, F))
    with pytest.raises(EnforceError, match="must be finite"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "BoxWithNMSLimit", ["scores", "boxes"], ["s", "b", "c"]))
    assert "s" not in workspace.Blobs() and before.keys() <= set(workspace.Blobs())


def test_nms_engines_decide_alike():
    from caffe2lite.operators import _boxes  # the two engines of greedy NMS

    rng = np.random.default_rng(9)
    for trial in range(8):
        n = int(rng.integers(1, 700))
        xy = rng.uniform(0, 200, (n, 2))
        b = np.concatenate([xy, xy + rng.uniform(0, 60, (n, 2))], 1).astype(F)
        order = np.argsort(-rng.random(n), kind="stable")
        thresh, top_n, plus_one = rng.uniform(0.1, 0.9), int(rng.integers(-1, 200)), trial % 2
        expected = greedy_nms(b, order, F(thresh), top_n, plus_one)
        np.testing.assert_array_equal(_boxes.nms_upright(b, order, thresh, top_n, plus_one),
                                      expected)
        numpy_engine = _boxes._nms_blocks(b[order], thresh, top_n,
                                          _boxes.upright_overlaps(plus_one))
        np.testing.assert_array_equal(order[numpy_engine], expected)
