"""BBoxTransform: apply per-class regression deltas to RoIs, clip to the image, rescale.

After ``caffe2/operators/bbox_transform_op.cc`` (newest: ``legacy_plus_one``).
For RoIs ``(M, 4 or 5)`` (the optional first column is the image index, RoIs of
one image grouped together in increasing order, as GenerateProposals writes
them) and deltas ``(M, K * 4)``, each RoI is divided by its image's scale,
transformed by each class's deltas (``weights`` divide dx, dy, dw, dh; dw and dh
are clipped at log(1000 / 16)), clipped to the original image
``round(im_info[:2] / scale)``, and multiplied by the scale again when
``apply_scale``.  ``rotated`` boxes are ``[ctr_x, ctr_y, w, h, angle]`` and
``deltas`` ``(M, K * 5)``; their angles are normalised into
``[angle_bound_lo, angle_bound_hi]`` and only nearly upright boxes (within
``clip_angle_thresh`` degrees) are clipped.  All classes at once, no loop over
RoIs; an image index outside ``[0, batch)`` is an error.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators import _boxes
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

F32 = np.float32

ANGLE_ARGS = [
    Arg("angle_bound_on", "bool", True, "rotated boxes: normalise angles into "
                                        "[angle_bound_lo, angle_bound_hi]"),
    Arg("angle_bound_lo", "int", -90, "lower angle bound in degrees"),
    Arg("angle_bound_hi", "int", 90, "upper angle bound in degrees"),
    Arg("clip_angle_thresh", "float", 1.0, "rotated boxes within this many degrees of "
                                           "upright are clipped like upright ones; < 0: none"),
]
LEGACY_PLUS_ONE = Arg("legacy_plus_one", "bool", True,
                      "Detectron's pixel convention: a box from x1 to x2 is x2 - x1 + 1 wide")
CORRECT_TRANSFORM_COORDS = Arg(
    "correct_transform_coords", "bool", False,
    "older Caffe2's name for what legacy_plus_one (default on) now does; accepted so older "
    "nets load, its value not read")

register_schema(OpSchema(
    "BBoxTransform", num_inputs=3, num_outputs=(1, 2), cpu_fallback=True,
    args=[Arg("weights", "floats", [1.0, 1.0, 1.0, 1.0], "[wx, wy, ww, wh] dividing the deltas"),
          Arg("apply_scale", "bool", True, "multiply the boxes by im_info's scale at the end"),
          Arg("rotated", "bool", False, "boxes are [ctr_x, ctr_y, w, h, angle_degrees]"),
          *ANGLE_ARGS, LEGACY_PLUS_ONE, CORRECT_TRANSFORM_COORDS],
    infer_shapes=lambda ctx, rois, deltas, im_info: (
        deltas, None if im_info is None else TensorSpec((im_info.shape[0],), np.float32)),
    inputs=[("rois", "(M, 4) or (M, 5) [batch_index, ...] boxes in pixel coordinates of the "
                     "scaled image"),
            ("deltas", "(M, 4 * K) [dx, dy, dw, dh] per class ((M, 5 * K) rotated)"),
            ("im_info", "(batch_size, 3) [height, width, scale]")],
    outputs=[("box_out", "(M, 4 * K) transformed, clipped boxes ((M, 5 * K) rotated)"),
             ("roi_batch_splits", "(batch_size,) float: RoIs per image")],
    doc="Transform proposal bounding boxes to target bounding boxes using bounding box "
        "regression deltas.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _checked(ctx, rois, deltas, im_info, box_dim):
    for i, (arr, ndim) in enumerate(((rois, 2), (deltas, 2), (im_info, 2))):
        if arr.dtype != F32 or arr.ndim != ndim:
            ctx.fail(f"{ctx.input_label(i)} must be a 2-D float32 tensor, got {arr.dtype} "
                     f"{tuple(arr.shape)}")
    n = rois.shape[0]
    if rois.shape[1] not in (box_dim, box_dim + 1):
        ctx.fail(f"{ctx.input_label(0)} must have {box_dim} or {box_dim + 1} columns, got "
                 f"{rois.shape[1]}")
    if deltas.shape[0] != n or deltas.shape[1] % box_dim or deltas.shape[1] == 0:
        ctx.fail(f"{ctx.input_label(1)} must be ({n}, {box_dim} * classes), got "
                 f"{tuple(deltas.shape)}")
    if im_info.shape[1] != 3 or im_info.shape[0] < 1:
        ctx.fail(f"{ctx.input_label(2)} must be (batch_size >= 1, 3), got "
                 f"{tuple(im_info.shape)}")
    if not np.isfinite(im_info).all() or not (im_info[:, 2] > 0).all():
        ctx.fail(f"{ctx.input_label(2)} must hold finite sizes and positive scales")
    weights = ctx.args["weights"]
    if len(weights) != 4:
        ctx.fail(f"argument 'weights' must have 4 values [wx, wy, ww, wh], got {weights}")


@register_kernel("BBoxTransform")
def bbox_transform(ctx, rois, deltas, im_info):
    a = ctx.args
    box_dim = 5 if a["rotated"] else 4
    _checked(ctx, rois, deltas, im_info, box_dim)
    if a["rotated"] and a["angle_bound_on"]:
        _boxes.check_angle_bound(ctx, a["angle_bound_lo"], a["angle_bound_hi"])
    n, batch = rois.shape[0], im_info.shape[0]
    if rois.shape[1] == box_dim:
        if batch != 1:
            ctx.fail(f"{ctx.input_label(0)} has no image index column, so im_info must hold "
                     f"one image, got {batch}")
        counts = np.array([n], np.int64)
    else:
        ids = rois[:, 0]
        if not np.isfinite(ids).all() or ((ids.astype(np.int64) < 0)
                                          | (ids.astype(np.int64) >= batch)).any():
            ctx.fail(f"{ctx.input_label(0)}: image indices must be in [0, {batch})")
        counts = np.bincount(ids.astype(np.int64), minlength=batch)
    # Caffe2 takes each image's RoIs as the next counts[b] rows (RoIs grouped by image)
    image = np.repeat(np.arange(batch), counts)
    info = im_info[image]
    scale_before = info[:, 2]
    scale_after = scale_before if a["apply_scale"] else np.ones_like(scale_before)
    img_h = (info[:, 0] / scale_before + 0.5).astype(np.int64)
    img_w = (info[:, 1] / scale_before + 0.5).astype(np.int64)
    boxes = rois[:, -box_dim:].copy()
    boxes[:, :4] /= scale_before[:, None]
    k = deltas.shape[1] // box_dim
    flat_boxes = np.repeat(boxes, k, axis=0)
    flat_deltas = deltas.reshape(n * k, box_dim)
    rep = lambda v: np.repeat(v, k)  # noqa: E731 (per class copy of a per-RoI column)
    plus_one = a["legacy_plus_one"]
    if a["rotated"]:
        bound = (a["angle_bound_lo"], a["angle_bound_hi"]) if a["angle_bound_on"] else None
        out = _boxes.transform_rotated(flat_boxes, flat_deltas, a["weights"], bound)
        out = _boxes.clip_rotated(out, rep(img_h), rep(img_w), a["clip_angle_thresh"],
                                  plus_one)
    else:
        out = _boxes.transform_upright(flat_boxes, flat_deltas, a["weights"], plus_one)
        out = _boxes.clip_upright(out, rep(img_h), rep(img_w), plus_one)
    out[:, :4] *= rep(scale_after)[:, None]
    boxes_out = out.reshape(n, k * box_dim)
    if len(ctx.op_def.output) == 1:
        return (boxes_out,)
    return boxes_out, counts.astype(F32)
