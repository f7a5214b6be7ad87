"""The FPN proposal ops and HeatmapMaxKeypoint against references written here.

CollectRpnProposals / DistributeFpnProposals / CollectAndDistributeFpnRpnProposals
follow Detectron's Python op (collect_and_distribute_fpn_rpn_proposals.py, the
reference Caffe2's own test used): concatenate, sort by score, keep the best,
map each RoI to floor(lvl0 + log2(sqrt(area) / s0 + 1e-6)) and split by level.
HeatmapMaxKeypoint's reference solves the quadratic fit per keypoint with
numpy.linalg.solve, one keypoint at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference
from helpers import assert_unchanged, snapshot

F = np.float32
rng = np.random.default_rng(7)


def level_rois(n, size=224.0):
    r = size * rng.random((n, 5)).astype(F)
    r[:, 0] = rng.integers(0, 2, n)
    r[:, 3] += r[:, 1]
    r[:, 4] += r[:, 2]
    return r


def collect_ref(rois, scores, top_n):
    rois, scores = np.concatenate(rois), np.concatenate(scores).reshape(-1)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return rois[order[:top_n] if top_n > 0 else order]


def distribute_ref(rois, lo, hi, s0=224, lvl0=4, plus_one=True):
    if rois.shape[1] == 4:
        rois = np.concatenate([np.zeros((len(rois), 1), F), rois], 1)
    p = 1.0 if plus_one else 0.0
    lvls = []
    for r in rois:
        area = (float(r[3]) - r[1] + p) * (float(r[4]) - r[2] + p)
        lvl = math.floor(lvl0 + math.log2(math.sqrt(area) / s0 + 1e-6))
        lvls.append(min(max(lvl, lo), hi))
    lvls = np.array(lvls)
    per_level, order = [], []
    for lvl in range(lo, hi + 1):
        idx = np.where(lvls == lvl)[0]
        per_level.append(rois[idx].reshape(-1, 5))
        order.extend(idx)
    return per_level, np.argsort(order).astype(np.int32)


def test_collect_and_distribute_matches_detectrons_python_op():
    rois = [level_rois(n) for n in (40, 25, 0, 12, 30)]  # levels 2..6, one empty
    scores = [rng.random(len(r)).astype(F) for r in rois]
    scores[1][:5] = scores[0][:5]  # ties across levels: the earlier input goes first
    outputs = ["rois"] + [f"rois_fpn{i}" for i in range(2, 6)] + ["restore"]
    names = [f"r{i}" for i in range(5)] + [f"s{i}" for i in range(5)]
    op = core.CreateOperator("CollectAndDistributeFpnRpnProposals", names, outputs,
                             rpn_post_nms_topN=60)

    def ref(*inputs):
        collected = collect_ref(inputs[:5], inputs[5:], 60)
        per_level, restore = distribute_ref(collected, 2, 5)
        return (collected, *per_level, restore)

    out = check_reference(op, rois + scores, ref, threshold=0)
    # the restore permutation puts the per-level RoIs back in collected order
    np.testing.assert_array_equal(np.concatenate(out[1:5])[out[5]], out[0])


def test_collect_and_distribute_separately_and_older_argument_name():
    rois = [level_rois(n) for n in (10, 7)]
    # sides a hair (1e-4 pixel) under 112 and 224: Detectron's +1e-6 keeps their level
    for row, side in ((0, 111), (1, 223)):
        rois[0][row, 1:] = [0, 0, side - 1e-4, side - 1e-4]
    scores = [rng.random((len(r), 1)).astype(F) for r in rois]  # (n, 1) scores squeeze
    scores[0][:2] = 2.0  # the two hair-thin cases are kept
    collect = core.CreateOperator("CollectRpnProposals", ["a", "b", "sa", "sb"], ["rois"],
                                  rpn_min_level=2, rpn_max_level=3, post_nms_topN=9)
    (collected,) = check_reference(collect, rois + scores,
                                   lambda *i: (collect_ref(i[:2], i[2:], 9),), threshold=0)
    for kw in (dict(roi_min_level=3, roi_max_level=5, roi_canonical_scale=100,
                    legacy_plus_one=0), {}):
        levels = range(kw.get("roi_min_level", 2), kw.get("roi_max_level", 5) + 1)
        distribute = core.CreateOperator("DistributeFpnProposals", ["rois"],
                                         [f"l{i}" for i in levels] + ["restore"], **kw)

        def ref(r):
            per_level, restore = distribute_ref(r, levels[0], levels[-1],
                                                s0=kw.get("roi_canonical_scale", 224),
                                                plus_one=kw.get("legacy_plus_one", 1))
            return (*per_level, restore)

        for boxes in (collected, collected[:, 1:]):  # 5 columns, or 4 (batch 0 added)
            check_reference(distribute, [boxes], ref, threshold=0)


@pytest.mark.parametrize("case, message", [
    ("negative", "Negative areas"),
    ("nan_score", "NaN"),
    ("count", "2 \\* 5 inputs"),
    ("columns", "float32 \\(n, 5\\)"),
    ("levels", "rpn_max_level 1 must be greater than or equal to rpn_min_level 2"),
])
def test_fpn_proposal_ops_refuse_bad_inputs(case, message):
    rois, scores = level_rois(4), rng.random(4).astype(F)
    names, args = ["r", "s"], dict(rpn_min_level=2, rpn_max_level=2)
    if case == "negative":
        rois[1, 3] = rois[1, 1] - 5
    elif case == "nan_score":
        scores[2] = np.nan
    elif case == "count":
        args = {}
    elif case == "columns":
        rois = rois[:, 1:]
    else:
        args = dict(rpn_min_level=2, rpn_max_level=1)
    workspace.FeedBlob("r", rois)
    workspace.FeedBlob("s", scores)
    before = snapshot()
    outputs = ["rois"] + [f"l{i}" for i in range(4)] + ["restore"]
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator(
            "CollectAndDistributeFpnRpnProposals", names, outputs, **args))
    assert_unchanged(before)


# -- HeatmapMaxKeypoint -------------------------------------------------------------------
def keypoint_ref(maps, boxes, softmax):
    n, k, s, _ = maps.shape
    out = np.zeros((n, 4, k), F)
    for i in range(n):
        x0, y0 = boxes[i, 0], boxes[i, 1]
        x_len, y_len = max(boxes[i, 2] - x0, 1.0), max(boxes[i, 3] - y0, 1.0)
        for j in range(k):
            hm = maps[i, j].astype(np.float64)
            my, mx = np.unravel_index(np.argmax(hm), hm.shape)

            def at(dy, dx):  # mirrored at the border
                yy, xx = my + dy, mx + dx
                yy = 2 * my - yy if not 0 <= yy < s else yy
                xx = 2 * mx - xx if not 0 <= xx < s else xx
                return hm[yy, xx]

            b = -np.array([at(0, 1) - at(0, -1), at(1, 0) - at(-1, 0)]) / 2
            cross = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4
            A = np.array([[at(0, -1) - 2 * at(0, 0) + at(0, 1), cross],
                          [cross, at(-1, 0) - 2 * at(0, 0) + at(1, 0)]])
            if abs(np.linalg.det(A)) < 1e-4:
                delta, score = np.zeros(2), hm[my, mx]
            else:
                delta = np.linalg.solve(A, b)
                if np.abs(delta).max() > 1.5:
                    delta = delta / np.abs(delta).max() * 1.5
                score = at(0, 0) - b @ delta + 0.5 * delta @ A @ delta
            out[i, 0, j] = x0 + (0.5 + mx + delta[0]) * x_len / s
            out[i, 1, j] = y0 + (0.5 + my + delta[1]) * y_len / s
            out[i, 2, j] = score
            out[i, 3, j] = np.exp(hm[my, mx]) / np.exp(hm).sum() if softmax else 0.0
    return out


@pytest.mark.parametrize("softmax", [0, 1])
def test_heatmap_max_keypoint_matches_reference(softmax):
    n, k, s = 5, 3, 7
    yy, xx = np.mgrid[0:s, 0:s]
    centres = rng.uniform(-0.5, s - 0.5, (n, k, 2))
    maps = -((yy - centres[..., :1, None]) ** 2 + (xx - centres[..., 1:, None]) ** 2) / 3
    maps = (maps + 0.05 * rng.standard_normal(maps.shape)).astype(F)
    maps[0, 0] = 1.0  # flat: no refinement step (|det A| < 1e-4)
    maps[1, 1, 0, 0] = 5.0  # a corner maximum: the neighbourhood mirrors
    # a saddle-like neighbourhood: the fitted step (about 10 cells) is clipped to 1.5
    maps[2, 2] = -5.0
    maps[2, 2, 2:5, 2:5] = [[0.999, 0.6, -0.98], [0.6, 1.0, 0.4], [-0.98, 0.4, 0.999]]
    boxes = np.concatenate([rng.uniform(0, 50, (n, 2)), rng.uniform(60, 120, (n, 2)),
                            rng.random((n, 1))], 1).astype(F)  # a 5th column is ignored
    boxes[3, 2] = boxes[3, 0]  # zero width: at least one pixel
    op = core.CreateOperator("HeatmapMaxKeypoint", ["maps", "boxes"], ["kp"],
                             should_output_softmax=softmax)
    check_reference(op, [maps, boxes], lambda m, b: (keypoint_ref(m, b, softmax),),
                    threshold=1e-4)


def test_heatmap_max_keypoint_refuses_bad_inputs():
    workspace.FeedBlob("maps", np.zeros((2, 1, 3, 3), F))
    workspace.FeedBlob("boxes", np.zeros((3, 4), F))
    with pytest.raises(EnforceError, match=r"\(2, >= 4\)"):
        workspace.RunOperatorOnce(core.CreateOperator("HeatmapMaxKeypoint", ["maps", "boxes"],
                                                      ["kp"]))
    workspace.FeedBlob("maps", np.full((3, 1, 3, 3), np.nan, F))
    with pytest.raises(EnforceError, match="NaN"):
        workspace.RunOperatorOnce(core.CreateOperator("HeatmapMaxKeypoint", ["maps", "boxes"],
                                                      ["kp"]))
    workspace.FeedBlob("maps", np.zeros((3, 1, 1, 1), F))
    with pytest.raises(EnforceError, match="at least 2 x 2"):
        workspace.RunOperatorOnce(core.CreateOperator("HeatmapMaxKeypoint", ["maps", "boxes"],
                                                      ["kp"]))
    assert not workspace.HasBlob("kp")
