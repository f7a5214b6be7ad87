"""CollectRpnProposals, DistributeFpnProposals and CollectAndDistributeFpnRpnProposals.

After ``caffe2/operators/collect_and_distribute_fpn_rpn_proposals_op.cc`` (the
newest, with ``legacy_plus_one``), itself Detectron's Python op.  An FPN RPN
proposes RoIs on each level ``rpn_min_level..rpn_max_level``;

* **collect** concatenates every level's RoIs ``[batch, x1, y1, x2, y2]`` and
  scores and keeps the ``rpn_post_nms_topN`` best (all when <= 0), highest
  score first, ties by input position (Caffe2's comparator);
* **distribute** gives each RoI the level ``floor(roi_canonical_level +
  log2(sqrt(area) / roi_canonical_scale + 1e-6))`` clipped to
  ``[roi_min_level, roi_max_level]`` (Eqn. 1 of the FPN paper; float32, area
  with Detectron's +1 when ``legacy_plus_one``), writes one blob of RoIs per
  level (in input order) and ``rois_idx_restore``, the int32 permutation that
  puts the concatenated per-level RoIs back in input order.

A negative area is an error (Caffe2's "Negative areas founds"), so is a NaN
score (Caffe2's sort was undefined on it).  Older Caffe2 read the limit from
``post_nms_topN``: it is taken when ``rpn_post_nms_topN`` is absent.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators.bbox_transform import LEGACY_PLUS_ONE
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

F32 = np.float32

COLLECT_ARGS = [
    Arg("rpn_max_level", "int", 6, "RPN_MAX_LEVEL: the last level given"),
    Arg("rpn_min_level", "int", 2, "RPN_MIN_LEVEL: the first level given"),
    Arg("rpn_post_nms_topN", "int", 2000, "RPN_POST_NMS_TOP_N: RoIs kept over all levels "
                                          "(<= 0: all)"),
    Arg("post_nms_topN", "int", 2000, "older Caffe2's name for rpn_post_nms_topN, read when "
                                      "that is absent"),
]
DISTRIBUTE_ARGS = [
    Arg("roi_canonical_scale", "int", 224, "ROI_CANONICAL_SCALE: the RoI size of the "
                                           "canonical level"),
    Arg("roi_canonical_level", "int", 4, "ROI_CANONICAL_LEVEL"),
    Arg("roi_max_level", "int", 5, "ROI_MAX_LEVEL: the last output level"),
    Arg("roi_min_level", "int", 2, "ROI_MIN_LEVEL: the first output level"),
    LEGACY_PLUS_ONE,
]


def _levels(lo_name, hi_name):
    return lambda a: max(a[hi_name] - a[lo_name] + 1, 0)


_rpn_levels = _levels("rpn_min_level", "rpn_max_level")
_roi_levels = _levels("roi_min_level", "roi_max_level")
_ROIS = "(n, 5) [batch_index, x1, y1, x2, y2]"
_OUT_LEVELS = [("rois_fpn<level>", "the RoIs of each level roi_min_level..roi_max_level, "
                                   "in input order"),
               ("rois_idx_restore", "int32 permutation putting the concatenated per-level RoIs "
                                    "back in input order")]

register_schema(OpSchema(
    "CollectRpnProposals", num_inputs=(2, None), num_outputs=1, args=COLLECT_ARGS,
    cpu_fallback=True,
    inputs=[("rpn_rois_fpn<level>...", f"RPN proposals of each level, {_ROIS}"),
            ("rpn_roi_probs_fpn<level>...", "their scores, one (n,) blob per level")],
    outputs=[("rois", f"the rpn_post_nms_topN best proposals over all levels, {_ROIS}")],
    doc="Merge RPN proposals generated at multiple FPN levels and keep the best "
        "rpn_post_nms_topN.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "DistributeFpnProposals", num_inputs=1, num_outputs=(2, None), args=DISTRIBUTE_ARGS,
    cpu_fallback=True,
    inputs=[("rois", "(n, 5) [batch_index, x1, y1, x2, y2] or (n, 4) boxes")],
    outputs=_OUT_LEVELS,
    doc="Distribute proposals to their FPN levels by size (Eqn. 1 of the FPN paper).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "CollectAndDistributeFpnRpnProposals", num_inputs=(2, None), num_outputs=(3, None),
    args=COLLECT_ARGS + DISTRIBUTE_ARGS, cpu_fallback=True,
    inputs=[("rpn_rois_fpn<level>...", f"RPN proposals of each level, {_ROIS}"),
            ("rpn_roi_probs_fpn<level>...", "their scores, one (n,) blob per level")],
    outputs=[("rois", "the rpn_post_nms_topN best proposals over all levels")] + _OUT_LEVELS,
    doc="Merge RPN proposals generated at multiple FPN levels and then distribute those "
        "proposals to their appropriate FPN levels for Faster RCNN. An anchor at one FPN level "
        "may predict an RoI that will map to another level, hence the need to redistribute "
        "the proposals.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _check_level_range(ctx, lo_name, hi_name):
    lo, hi = ctx.args[lo_name], ctx.args[hi_name]
    if hi < lo:
        ctx.fail(f"{hi_name} {hi} must be greater than or equal to {lo_name} {lo}.")


def _collect(ctx, inputs):
    """The best RoIs over every level (Caffe2's CollectRpnProposals)."""
    _check_level_range(ctx, "rpn_min_level", "rpn_max_level")
    levels = _rpn_levels(ctx.args)
    if len(inputs) != 2 * levels:
        ctx.fail(f"takes 2 * {levels} inputs (RoIs then scores of levels "
                 f"{ctx.args['rpn_min_level']}..{ctx.args['rpn_max_level']}), got "
                 f"{len(inputs)}")
    rois, scores = [], []
    for i in range(levels):
        r, s = inputs[i], inputs[levels + i]
        if getattr(r, "dtype", None) != F32 or r.ndim != 2 or r.shape[1] != 5:
            ctx.fail(f"{ctx.input_label(i)} must be float32 (n, 5) RoIs, got "
                     f"{getattr(r, 'dtype', type(r).__name__)} {tuple(getattr(r, 'shape', ()))}")
        if getattr(s, "dtype", None) != F32 or s.ndim < 1 or s.shape[0] != r.shape[0] \
                or s.size != r.shape[0]:
            ctx.fail(f"{ctx.input_label(levels + i)} must hold {r.shape[0]} float32 scores "
                     f"(one per RoI of {ctx.input_label(i)}), got "
                     f"{getattr(s, 'dtype', type(s).__name__)} {tuple(getattr(s, 'shape', ()))}")
        rois.append(r)
        scores.append(s.reshape(-1))
    rois, scores = np.concatenate(rois), np.concatenate(scores)
    if np.isnan(scores).any():
        ctx.fail("the RoI scores hold NaN, which cannot be ranked")
    order = np.argsort(-scores, kind="stable")
    given = {a.name for a in ctx.op_def.arg}
    top_n = ctx.args["rpn_post_nms_topN" if "rpn_post_nms_topN" in given or
                     "post_nms_topN" not in given else "post_nms_topN"]
    if 0 < top_n < order.size:
        order = order[:top_n]
    return rois[order]


def _distribute(ctx, rois, label):
    """(per-level RoIs, rois_idx_restore) for (n, 4 or 5) RoIs (Caffe2's
    DistributeFpnProposals)."""
    _check_level_range(ctx, "roi_min_level", "roi_max_level")
    a = ctx.args
    if getattr(rois, "dtype", None) != F32 or rois.ndim != 2 or rois.shape[1] not in (4, 5):
        ctx.fail(f"{label} must be float32 (n, 5) or (n, 4) RoIs, got "
                 f"{getattr(rois, 'dtype', type(rois).__name__)} "
                 f"{tuple(getattr(rois, 'shape', ()))}")
    full = np.zeros((rois.shape[0], 5), F32)
    full[:, 5 - rois.shape[1]:] = rois
    one = F32(a["legacy_plus_one"])
    areas = (full[:, 3] - full[:, 1] + one) * (full[:, 4] - full[:, 2] + one)
    if not (areas >= 0).all():
        ctx.fail(f"{label}: Negative areas founds (a RoI with x2 < x1 or y2 < y1, or not "
                 f"finite)")
    with np.errstate(divide="ignore"):  # a zero area: log(1e-6), clipped to the lowest level
        ratio = np.sqrt(areas) / F32(a["roi_canonical_scale"]) + F32(1e-6)
        lvls = np.floor(F32(a["roi_canonical_level"]) + np.log(ratio) / F32(np.log(2.0)))
    lvls = np.clip(lvls, a["roi_min_level"], a["roi_max_level"]).astype(np.int64)
    order = np.argsort(lvls, kind="stable")  # by level, input order within a level
    counts = np.bincount(lvls - a["roi_min_level"], minlength=_roi_levels(a))
    per_level = np.split(full[order], np.cumsum(counts)[:-1])
    restore = np.empty(order.size, np.int32)
    restore[order] = np.arange(order.size, dtype=np.int32)
    return per_level, restore


@register_kernel("CollectRpnProposals")
def collect_rpn_proposals(ctx, *inputs):
    return (_collect(ctx, inputs),)


@register_kernel("DistributeFpnProposals")
def distribute_fpn_proposals(ctx, rois):
    _check_level_range(ctx, "roi_min_level", "roi_max_level")
    if len(ctx.op_def.output) != _roi_levels(ctx.args) + 1:
        ctx.fail(f"takes {_roi_levels(ctx.args)} + 1 outputs (RoIs of levels "
                 f"{ctx.args['roi_min_level']}..{ctx.args['roi_max_level']}, then "
                 f"rois_idx_restore), got {len(ctx.op_def.output)}")
    per_level, restore = _distribute(ctx, rois, ctx.input_label(0))
    return (*per_level, restore)


@register_kernel("CollectAndDistributeFpnRpnProposals")
def collect_and_distribute_fpn_rpn_proposals(ctx, *inputs):
    _check_level_range(ctx, "roi_min_level", "roi_max_level")
    if len(ctx.op_def.output) != _roi_levels(ctx.args) + 2:
        ctx.fail(f"takes {_roi_levels(ctx.args)} + 2 outputs (rois, the RoIs of levels "
                 f"{ctx.args['roi_min_level']}..{ctx.args['roi_max_level']}, "
                 f"rois_idx_restore), got {len(ctx.op_def.output)}")
    rois = _collect(ctx, inputs)
    per_level, restore = _distribute(ctx, rois, "the collected RoIs")
    return (rois, *per_level, restore)
