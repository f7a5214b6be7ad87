"""GenerateProposals: Faster R-CNN's region proposals from RPN scores and deltas.

After ``caffe2/operators/generate_proposals_op.cc`` (newest: ``legacy_plus_one``,
rotated anchors).  Per image: the ``A`` anchors are shifted to every position
of the ``H x W`` map (stride ``1 / spatial_scale``), ordered (H, W, A) like the
transposed scores and deltas; the ``pre_nms_topN`` highest scores are taken
(all when <= 0), their anchors transformed by the deltas, clipped to
``im_info``'s height and width, boxes smaller than ``min_size * scale`` or with
their centre outside the image dropped, and greedy NMS at ``nms_thresh`` keeps
at most ``post_nms_topN`` (all when <= 0).  Outputs are the RoIs
``[image_index, x1, y1, x2, y2]`` of every image, in score order per image,
and their scores.

Ties between equal scores keep the lower anchor index first (Caffe2's sort
left their order unspecified).  A NaN score is an error (Caffe2's sort was
undefined on it); NaN or infinite deltas give boxes that the size filter drops.
Rotated anchors (5 columns, ``[ctr_x, ctr_y, w, h, angle]``) give rotated
proposals: ``angle_bound_*`` normalise their angles, only those within
``clip_angle_thresh`` degrees of upright are clipped, and NMS measures the
overlap of rotated rectangles (operators/_rotated_iou.py).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators import _boxes
from caffe2lite.operators.bbox_transform import (ANGLE_ARGS, CORRECT_TRANSFORM_COORDS,
                                                 LEGACY_PLUS_ONE)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

F32 = np.float32

GENERATE_PROPOSALS_ARGS = [
    Arg("spatial_scale", "float", 1.0 / 16, "scale of the score map relative to the image "
                                            "(anchors step by 1 / spatial_scale pixels)"),
    Arg("pre_nms_topN", "int", 6000, "highest-scoring anchors considered per image (<= 0: all)"),
    Arg("post_nms_topN", "int", 300, "proposals kept per image after NMS (<= 0: all)"),
    Arg("nms_thresh", "float", 0.7, "NMS IoU threshold"),
    Arg("min_size", "float", 16.0, "smallest box side kept, in original-image pixels"),
    *ANGLE_ARGS, LEGACY_PLUS_ONE, CORRECT_TRANSFORM_COORDS,
]


register_schema(OpSchema(
    "GenerateProposals", num_inputs=4, num_outputs=2, args=GENERATE_PROPOSALS_ARGS,
    inputs=[("scores", "(img_count, A, H, W) objectness scores"),
            ("bbox_deltas", "(img_count, 4 * A, H, W) box deltas (5 * A for rotated anchors)"),
            ("im_info", "(img_count, 3) [height, width, scale]"),
            ("anchors", "(A, 4) anchor boxes [x1, y1, x2, y2] (or (A, 5) rotated)")],
    outputs=[("rois", "(n, 5) proposals [image_index, x1, y1, x2, y2] (n, 6 rotated); n "
                      "depends on the values (at most images * post_nms_topN)"),
             ("rois_probs", "(n,) scores of the proposals")],
    doc="Generate bounding box proposals for Faster RCNN from scores, deltas and anchors, "
        "with greedy non-maximum suppression per image.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _checked(ctx, scores, deltas, im_info, anchors):
    for i, arr in enumerate((scores, deltas, im_info, anchors)):
        if arr.dtype != F32:
            ctx.fail(f"{ctx.input_label(i)} must be float32, got {arr.dtype}")
    if scores.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} must be (img_count, A, H, W), got {tuple(scores.shape)}")
    n, A, H, W = scores.shape
    if anchors.ndim != 2 or anchors.shape != (A, anchors.shape[1]) \
            or anchors.shape[1] not in (4, 5):
        ctx.fail(f"{ctx.input_label(3)} must be ({A}, 4) or ({A}, 5), got "
                 f"{tuple(anchors.shape)}")
    box_dim = anchors.shape[1]
    if tuple(deltas.shape) != (n, box_dim * A, H, W):
        ctx.fail(f"{ctx.input_label(1)} must be {(n, box_dim * A, H, W)}, got "
                 f"{tuple(deltas.shape)}")
    if tuple(im_info.shape) != (n, 3):
        ctx.fail(f"{ctx.input_label(2)} must be ({n}, 3), got {tuple(im_info.shape)}")
    xp = ctx.xp
    if not bool(xp.isfinite(im_info).all()):
        ctx.fail(f"{ctx.input_label(2)} must be finite")
    if bool(xp.isnan(scores).any()):
        ctx.fail(f"{ctx.input_label(0)} holds NaN scores, which cannot be ranked")
    if not ctx.args["spatial_scale"] > 0:
        ctx.fail(f"argument 'spatial_scale' must be > 0, got {ctx.args['spatial_scale']}")
    return box_dim


def detectron_anchors(stride: int = 16, sizes=(32, 64, 128, 256, 512),
                      aspect_ratios=(0.5, 1.0, 2.0)):
    """Detectron's generate_anchors: (len(sizes) * len(aspect_ratios), 4) float32 boxes of
    each area size**2 and height/width ratio, centred on the first ``stride`` cell, ratio
    by ratio -- the ``anchors`` input GenerateProposals expects from Detectron's models."""
    out = []
    for ratio in aspect_ratios:
        for size in sizes:
            w = np.round(np.sqrt(size * size / ratio))
            h = np.round(w * ratio)
            c = (stride - 1) / 2
            out.append([c - (w - 1) / 2, c - (h - 1) / 2, c + (w - 1) / 2, c + (h - 1) / 2])
    return np.array(out, F32)


def all_anchors(anchors, height: int, width: int, feat_stride: float, xp=np):
    """Caffe2's ComputeAllAnchors: (H * W * A, box_dim) anchors shifted to every position,
    ordered (H, W, A)."""
    box_dim = anchors.shape[1]
    stride = F32(feat_stride)
    sx = xp.arange(width, dtype=F32) * stride
    sy = xp.arange(height, dtype=F32) * stride
    shift_x, shift_y = xp.meshgrid(sx, sy)  # (H, W)
    shifts = xp.zeros((height * width, box_dim), F32)
    shifts[:, 0], shifts[:, 1] = shift_x.reshape(-1), shift_y.reshape(-1)
    if box_dim == 4:
        shifts[:, 2], shifts[:, 3] = shifts[:, 0], shifts[:, 1]
    return (anchors[None, :, :] + shifts[:, None, :]).reshape(-1, box_dim)


def _one_image(ctx, xp, scores, deltas, info, anchors_all, box_dim):
    a = ctx.args
    A = scores.shape[0]
    flat_deltas = deltas.reshape(A * box_dim, -1).T.reshape(-1, box_dim)  # (H*W*A, box_dim)
    flat_scores = scores.reshape(A, -1).T.reshape(-1)
    order = xp.argsort(-flat_scores, kind="stable")
    if 0 < a["pre_nms_topN"] < order.size:
        order = order[:a["pre_nms_topN"]]
    sorted_scores = flat_scores[order]
    plus_one = a["legacy_plus_one"]
    info = [float(v) for v in info]  # three host numbers
    height, width = int(info[0]), int(info[1])  # Caffe2 passed them as ints
    if box_dim == 4:
        proposals = _boxes.transform_upright(anchors_all[order], flat_deltas[order],
                                             (1.0, 1.0, 1.0, 1.0), plus_one, xp)
        proposals = _boxes.clip_upright(proposals, height, width, plus_one, xp)
        one = F32(plus_one)
        ws = proposals[:, 2] - proposals[:, 0] + one
        hs = proposals[:, 3] - proposals[:, 1] + one
        x_ctr, y_ctr = proposals[:, 0] + ws / F32(2), proposals[:, 1] + hs / F32(2)
    else:
        bound = (a["angle_bound_lo"], a["angle_bound_hi"]) if a["angle_bound_on"] else None
        proposals = _boxes.transform_rotated(anchors_all[order], flat_deltas[order],
                                             (1.0, 1.0, 1.0, 1.0), bound)
        proposals = _boxes.clip_rotated(proposals, height, width, a["clip_angle_thresh"],
                                        plus_one)
        ws, hs, x_ctr, y_ctr = (proposals[:, 2], proposals[:, 3], proposals[:, 0],
                                proposals[:, 1])
    min_size = float(F32(a["min_size"])) * info[2]  # Caffe2: double min_size *= scale
    keep = xp.flatnonzero((ws.astype(np.float64) >= min_size) & (hs.astype(np.float64) >= min_size)
                          & (x_ctr < F32(info[1])) & (y_ctr < F32(info[0])))
    top_n = a["post_nms_topN"] if 0 < a["post_nms_topN"] < keep.size else -1
    keep = _boxes.nms(proposals, keep, a["nms_thresh"], top_n, plus_one, xp)
    return proposals[keep], sorted_scores[keep]


@register_kernel("GenerateProposals", devices=("CPU", "CUDA"))
def generate_proposals(ctx, scores, deltas, im_info, anchors):
    box_dim = _checked(ctx, scores, deltas, im_info, anchors)
    a = ctx.args
    if box_dim == 5 and a["angle_bound_on"]:
        _boxes.check_angle_bound(ctx, a["angle_bound_lo"], a["angle_bound_hi"])
    # rotated overlaps are host code (operators/_rotated_iou.py): rotated proposals on a
    # GPU are made on the host and copied back
    host = box_dim == 5 and ctx.xp is not np
    xp = np if host else ctx.xp
    if host:
        scores, deltas, im_info, anchors = (ctx.device.to_host(v) for v in
                                            (scores, deltas, im_info, anchors))
    n, A, H, W = scores.shape
    anchors_all = all_anchors(anchors, H, W, 1.0 / F32(a["spatial_scale"]), xp)
    im_info = ctx.device.to_host(im_info)
    rois, probs = [], []
    for i in range(n):  # images
        boxes, p = _one_image(ctx, xp, scores[i], deltas[i], im_info[i], anchors_all, box_dim)
        rois.append(xp.concatenate([xp.full((len(boxes), 1), i, F32), boxes], axis=1))
        probs.append(p)
    if not rois:
        rois, probs = [xp.zeros((0, box_dim + 1), F32)], [xp.zeros(0, F32)]
    out = xp.concatenate(rois).astype(F32), xp.concatenate(probs).astype(F32)
    return tuple(ctx.device.to_device(v) for v in out) if host else out
