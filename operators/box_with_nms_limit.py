"""BoxWithNMSLimit: per-class NMS (or Soft-NMS) and a per-image detection limit.

After ``caffe2/operators/box_with_nms_limit_op.cc`` (newest).  For each image
(``batch_splits`` rows at a time) and each foreground class ``j``: the boxes
whose score is ``> score_thresh`` go through greedy NMS at ``nms`` (keeping at
most ``detections_per_im``), or with ``soft_nms_enabled`` through Soft-NMS
(https://arxiv.org/abs/1704.04503; ``linear``: scores of boxes overlapping more
than ``nms`` scaled by 1 - IoU; ``gaussian``: by exp(-IoU^2 / sigma); a box
dropped once its score falls below ``soft_nms_min_score_thres``, the updated
scores are the ones returned).  If more than ``detections_per_im`` boxes survive
over all classes, the highest-scoring ones are kept.  Outputs, class by class:
scores, boxes, classes (float; minus 1 unless ``output_classes_include_bg_cls``),
and optionally the per-image counts, the kept indices and the per-class counts.
With ``rotated`` the boxes are ``[ctr_x, ctr_y, w, h, angle]`` (5 per class) and
overlaps are those of rotated rectangles (operators/_rotated_iou.py).

Classes are independent: hard NMS runs one C (or NumPy) pass per class; Soft-NMS
runs all classes together, one vectorised step per pick (as many steps as the
busiest class keeps boxes).  Scores that are NaN never pass the threshold
(Caffe2's ``> score_thresh``); boxes that are not finite where scores pass are
an error.  Ties between equal scores are broken by the lower index (Caffe2's
order was unspecified).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators import _boxes, _rotated_iou
from caffe2lite.operators.bbox_transform import LEGACY_PLUS_ONE
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

F32 = np.float32

register_schema(OpSchema(
    "BoxWithNMSLimit", num_inputs=(2, 3), num_outputs=(3, 6), cpu_fallback=True,
    num_inputs_outputs=lambda n_in, n_out: n_out != 5,
    args=[Arg("score_thresh", "float", 0.05, "boxes need a score > this (TEST.SCORE_THRESH)"),
          Arg("nms", "float", 0.3, "NMS IoU threshold (TEST.NMS)"),
          Arg("detections_per_im", "int", 100, "most detections kept per image, over all "
                                               "classes (<= 0: no limit)"),
          Arg("soft_nms_enabled", "bool", False, "Soft-NMS instead of greedy NMS"),
          Arg("soft_nms_method", "string", "linear", "'linear' or 'gaussian'"),
          Arg("soft_nms_sigma", "float", 0.5, "sigma of the gaussian method"),
          Arg("soft_nms_min_score_thres", "float", 0.001, "Soft-NMS drops boxes whose updated "
                                                          "score falls below this"),
          Arg("rotated", "bool", False, "boxes are [ctr_x, ctr_y, w, h, angle_degrees], "
                                        "overlaps those of rotated rectangles"),
          Arg("cls_agnostic_bbox_reg", "bool", False, "one box per RoI shared by every class"),
          Arg("input_boxes_include_bg_cls", "bool", True, "boxes (and scores) start with the "
                                                          "background class"),
          Arg("output_classes_include_bg_cls", "bool", True, "output class ids count the "
                                                             "background as 0"),
          LEGACY_PLUS_ONE],
    inputs=[("scores", "(count, num_classes) scores (or (count, num_classes, 1, 1))"),
            ("boxes", "(count, num_classes * 4) boxes per class ((count, num_classes * 5) "
                      "rotated)"),
            ("batch_splits", "optional (batch_size,) boxes per image (float)")],
    outputs=[("scores", "(n,) kept scores"), ("boxes", "(n, 4) kept boxes ((n, 5) rotated)"),
             ("classes", "(n,) class ids (float)"),
             ("batch_splits", "(batch_size,) kept per image (float)"),
             ("keeps", "(n,) int32 row of each kept box"),
             ("keeps_size", "(batch_size, num_classes) int32 kept per class")],
    doc="Apply NMS to each class (except background) and limit the number of returned "
        "boxes.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _matrix(ctx, i, arr):
    if arr.dtype != F32:
        ctx.fail(f"{ctx.input_label(i)} must be float32, got {arr.dtype}")
    if arr.ndim == 4 and arr.shape[2:] == (1, 1):
        return arr.reshape(arr.shape[:2])
    if arr.ndim != 2:
        ctx.fail(f"{ctx.input_label(i)} must be 2-D (or 4-D with trailing 1 x 1), got "
                 f"{tuple(arr.shape)}")
    return arr


def _hard_nms(a, boxes_c, scores_c, plus_one):
    """Greedy NMS of one class: kept row indices in score order."""
    inds = np.flatnonzero(scores_c > F32(a["score_thresh"]))
    inds = inds[np.argsort(-scores_c[inds], kind="stable")]
    keep_max = a["detections_per_im"] if a["detections_per_im"] > 0 else -1
    return _boxes.nms(boxes_c, inds, a["nms"], keep_max, plus_one)


def _picked_overlaps(picked, rest, plus_one):
    """IoU of each picked box (m, d) with every box of its class (m, n, d)."""
    m, n, d = rest.shape
    if d == 5:
        return _rotated_iou.iou_pairs(np.repeat(picked, n, axis=0),
                                      rest.reshape(-1, 5)).reshape(m, n)
    one = F32(plus_one)
    b = picked
    w = np.maximum(np.minimum(rest[..., 2], b[:, None, 2])
                   - np.maximum(rest[..., 0], b[:, None, 0]) + one, F32(0))
    h = np.maximum(np.minimum(rest[..., 3], b[:, None, 3])
                   - np.maximum(rest[..., 1], b[:, None, 1]) + one, F32(0))
    inter = w * h
    areas = _boxes.areas_upright(rest.reshape(-1, 4), plus_one).reshape(m, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (_boxes.areas_upright(b, plus_one)[:, None] + areas - inter)


def _soft_nms(a, boxes, scores, plus_one):
    """Soft-NMS of every class at once: boxes (K, n, box_dim), scores (K, n).  Returns the
    kept rows per class (in pick order) and the updated scores (K, n)."""
    k, n = scores.shape
    out = scores.astype(F32).copy()
    pending = scores > F32(a["score_thresh"])
    sigma, thresh = a["soft_nms_sigma"], F32(a["nms"])
    min_score = F32(a["soft_nms_min_score_thres"])
    linear = a["soft_nms_method"] == "linear"
    picks, steps = [], []
    classes = np.arange(k)
    while pending.any():
        live = pending.any(axis=1)
        masked = np.where(pending, out, -np.inf)
        best = masked.argmax(axis=1)  # first maximum: the lower row on ties
        cls, rows = classes[live], best[live]
        picks.append(np.stack([cls, rows], axis=1))
        pending[cls, rows] = False
        ovr = _picked_overlaps(boxes[cls, rows], boxes[cls], plus_one)
        if linear:
            weight = np.where(ovr > thresh, F32(1) - ovr, F32(1))
        else:
            weight = np.exp(-1.0 * ovr.astype(np.float64) ** 2 / sigma).astype(F32)
        sub = pending[cls]
        out[cls] = np.where(sub, out[cls] * weight, out[cls])
        pending[cls] = sub & (out[cls] >= min_score)
        steps.append(len(cls))
    keeps = [[] for _ in range(k)]
    if picks:
        allp = np.concatenate(picks)
        for c in np.unique(allp[:, 0]):  # classes (a loop over classes, not boxes)
            keeps[c] = allp[allp[:, 0] == c, 1]
    return [np.asarray(kp, np.int64) for kp in keeps], out


@register_kernel("BoxWithNMSLimit")
def box_with_nms_limit(ctx, scores, boxes, *batch_splits):
    a = ctx.args
    box_dim = 5 if a["rotated"] else 4
    if a["soft_nms_method"] not in ("linear", "gaussian"):
        ctx.fail(f"Unexpected soft_nms_method {a['soft_nms_method']!r}: 'linear' or "
                 f"'gaussian'")
    scores, boxes = _matrix(ctx, 0, scores), _matrix(ctx, 1, boxes)
    n, num_classes = scores.shape
    fg_start = int(a["input_boxes_include_bg_cls"])

    def box_cls(j):  # Caffe2's get_box_cls_index
        return 0 if a["cls_agnostic_bbox_reg"] else (j if fg_start else j - 1)

    if num_classes < 1 or boxes.shape[0] != n \
            or boxes.shape[1] != (box_cls(num_classes - 1) + 1) * box_dim:
        ctx.fail(f"{ctx.input_label(1)} must be ({n}, "
                 f"{(box_cls(max(num_classes, 1) - 1) + 1) * box_dim}) for {num_classes} "
                 f"score columns, got {tuple(boxes.shape)}")
    if batch_splits:
        splits = batch_splits[0]
        if splits.ndim != 1 or splits.dtype.kind not in "fi":
            ctx.fail(f"{ctx.input_label(2)} must be a 1-D vector of counts, got "
                     f"{splits.dtype} {tuple(splits.shape)}")
        counts = splits.astype(np.int64)
        if (counts < 0).any() or counts.sum() != n or not np.array_equal(counts, splits):
            ctx.fail(f"{ctx.input_label(2)} must be whole non-negative counts adding up to "
                     f"{n}, got {splits.tolist()}")
    else:
        counts = np.array([n], np.int64)
    fg = np.arange(1, num_classes)
    score_col = fg - 1 + fg_start
    box_col = np.array([box_cls(j) for j in fg], np.int64)
    plus_one = a["legacy_plus_one"]
    out_scores, out_boxes, out_classes, out_keeps = [], [], [], []
    keeps_size = np.zeros((len(counts), num_classes), np.int32)
    offset = 0
    for b, count in enumerate(counts):  # images
        sc = scores[offset:offset + count]
        bx = boxes[offset:offset + count].reshape(count, -1, box_dim)
        cls_boxes = bx[:, box_col].transpose(1, 0, 2)  # (K, count, box_dim)
        cls_scores = sc[:, score_col].T  # (K, count)
        candidates = cls_scores > F32(a["score_thresh"])
        if not np.isfinite(cls_boxes[candidates]).all():
            ctx.fail(f"{ctx.input_label(1)}: boxes of scored detections must be finite")
        if a["soft_nms_enabled"]:
            keeps, final_scores = _soft_nms(a, cls_boxes, cls_scores, plus_one)
        else:
            keeps = [_hard_nms(a, cls_boxes[j], cls_scores[j], plus_one)
                     for j in range(len(fg))]  # classes
            final_scores = cls_scores
        sizes = np.array([len(kp) for kp in keeps], np.int64)
        cls_of = np.repeat(np.arange(len(fg)), sizes)
        rows = np.concatenate(keeps) if len(keeps) else np.zeros(0, np.int64)
        kept_scores = final_scores[cls_of, rows]
        limit = a["detections_per_im"]
        if 0 < limit < rows.size:
            best = np.sort(np.argsort(-kept_scores, kind="stable")[:limit])
            cls_of, rows, kept_scores = cls_of[best], rows[best], kept_scores[best]
        out_scores.append(kept_scores)
        out_boxes.append(cls_boxes[cls_of, rows])
        out_classes.append((fg[cls_of] - (0 if a["output_classes_include_bg_cls"] else 1))
                           .astype(F32))
        out_keeps.append(rows)
        keeps_size[b, 1:] = np.bincount(cls_of, minlength=len(fg))
        offset += count
    outputs = [np.concatenate(out_scores).astype(F32),
               np.concatenate(out_boxes).astype(F32).reshape(-1, box_dim),
               np.concatenate(out_classes).astype(F32)]
    n_out = len(ctx.op_def.output)
    if n_out > 3:
        outputs.append(np.array([len(s) for s in out_scores], F32))
    if n_out > 4:
        outputs.append(np.concatenate(out_keeps).astype(np.int32))
        outputs.append(keeps_size)
    return tuple(outputs)
