"""ONNX -> Caffe2: NonMaxSuppression and RoiAlign, on the detection operators.

NonMaxSuppression is detection's BoxWithNMSLimit with each (batch, class) pair
as an image of its own holding one foreground class: then Caffe2's per-image
limit ``detections_per_im`` is ONNX's max_output_boxes_per_class, its greedy
NMS (score order, ties to the lower index, suppressed when IoU > threshold,
boxes without Detectron's +1) is ONNX's, and its kept rows come out image by
image, which is ONNX's (batch, class) order.  The boxes are first brought to
corner form (min / max of each coordinate pair, or centre -/+ half the size),
shared by every class (``cls_agnostic_bbox_reg``); each kept row's image gives
its batch and class by a lookup.  RoiAlign is detection's RoIAlign with the
batch index as the RoIs' first column.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx.dtypes import caffe2_type


@imports("NonMaxSuppression")
def non_max_suppression(node, cx):
    boxes, scores = node.inputs[:2]
    b, n, _ = cx.static_shape(node, boxes)
    classes = cx.static_shape(node, scores)[1]
    limit = cx.constant(node, 2, "max_output_boxes_per_class")
    limit = max(int(np.ravel(limit)[0]), 0) if limit is not None and np.size(limit) else 0
    iou = cx.constant(node, 3, "iou_threshold")
    iou = float(np.ravel(iou)[0]) if iou is not None and np.size(iou) else 0.0
    score = cx.constant(node, 4, "score_threshold")
    score = float(np.ravel(score)[0]) if score is not None and np.size(score) else -np.inf
    y = node.outputs[0]
    if limit == 0 or b * classes * n == 0:
        return [op("ConstantFill", [], [y], node, shape=[0, 3], dtype=caffe2_type(np.int64),
                   value=0)]
    t = cx.temps(node)
    images = b * classes
    ops = _corners(node, cx, boxes, t("corners"), center=node.attrs.get("center_point_box", 0))
    # every (batch, class) image holds the batch's boxes: (b, n, 4) -> (b * classes * n, 4)
    ops += [op("Reshape", [t("corners")], [t("corners_b1"), t("old0")], shape=[b, 1, n, 4]),
            op("Expand", [t("corners_b1"),
                          cx.temp_const(node, "per_class", np.array([b, classes, n, 4]))],
               [t("class_boxes")]),
            op("Reshape", [t("class_boxes")], [t("rows_boxes"), t("old1")], shape=[-1, 4]),
            # scores (b, classes, n) -> (rows, 2): a background column, then the score
            op("Reshape", [scores], [t("rows_scores"), t("old2")], shape=[-1, 1]),
            op("ConstantFill", [t("rows_scores")], [t("background")], value=0.0),
            op("Concat", [t("background"), t("rows_scores")], [t("two_class"), t("split")],
               axis=1),
            op("BoxWithNMSLimit",
               [t("two_class"), t("rows_boxes"),
                cx.temp_const(node, "images", np.full(images, n, np.float32))],
               [t("kept_scores"), t("kept_boxes"), t("kept_classes"), t("kept_per_image"),
                t("kept_rows"), t("kept_sizes")], node,
               score_thresh=score, nms=iou, detections_per_im=limit, cls_agnostic_bbox_reg=1,
               legacy_plus_one=0),
            # the image of every kept row, and from it the row's batch and class
            op("Gather", [t("kept_sizes"), cx.temp_const(node, "foreground", np.array([1]))],
               [t("sizes_column")], axis=1, wrap_indices=0),
            op("Reshape", [t("sizes_column")], [t("lengths"), t("old3")], shape=[-1]),
            op("LengthsToSegmentIds", [t("lengths")], [t("image_of_row")])]
    columns = []
    for name, table in (("batch", np.repeat(np.arange(b), classes)),
                        ("class", np.tile(np.arange(classes), b))):
        ops.append(op("Gather", [cx.temp_const(node, f"{name}_of_image", table.reshape(-1, 1)),
                                 t("image_of_row")], [t(f"{name}_column")]))
        columns.append(t(f"{name}_column"))
    ops += [op("Cast", [t("kept_rows")], [t("rows64")], to=caffe2_type(np.int64)),
            op("Reshape", [t("rows64")], [t("box_column"), t("old4")], shape=[-1, 1]),
            op("Concat", columns + [t("box_column")], [y, t("split2")], node, axis=1)]
    return ops


def _corners(node, cx, boxes, out, center):
    """Ops writing ``out``: boxes as (min0, min1, max0, max1) along the last axis."""
    t = cx.temps(node)
    first = cx.temp_const(node, "first_pair", np.array([0, 1]))
    second = cx.temp_const(node, "second_pair", np.array([2, 3]))
    ops = [op("Gather", [boxes, first], [t("pair0")], axis=2, wrap_indices=0),
           op("Gather", [boxes, second], [t("pair1")], axis=2, wrap_indices=0)]
    if center:  # (centre, size): centre -/+ size / 2
        ops += [op("Scale", [t("pair1")], [t("half")], scale=0.5),
                op("Sub", [t("pair0"), t("half")], [t("low")]),
                op("Add", [t("pair0"), t("half")], [t("high")])]
    else:  # either diagonal: the smaller and the larger of each coordinate pair
        ops += [op("Min", [t("pair0"), t("pair1")], [t("low")]),
                op("Max", [t("pair0"), t("pair1")], [t("high")])]
    return ops + [op("Concat", [t("low"), t("high")], [out, t("corner_split")], axis=2)]


@imports("RoiAlign")
def roi_align(node, cx):
    """detection's RoIAlign (average pooling only); ``half_pixel`` coordinates (opset 16's
    default) are its ``aligned``."""
    if node.attrs.get("mode", "avg") != "avg":
        raise node.unsupported(f"mode '{node.attrs['mode']}': Caffe2's RoIAlign averages")
    x, rois, batch_indices = node.inputs[:3]
    default = "half_pixel" if cx.opset >= 16 else "output_half_pixel"
    aligned = node.attrs.get("coordinate_transformation_mode", default) == "half_pixel"
    t = cx.temps(node)
    return [op("Cast", [batch_indices], [t("batch_float")],
               to=caffe2_type(np.float32)),
            op("Reshape", [t("batch_float")], [t("batch_column"), t("old")], shape=[-1, 1]),
            op("Concat", [t("batch_column"), rois], [t("rois5"), t("split")], axis=1),
            op("RoIAlign", [x, t("rois5")], node.outputs, node,
               pooled_h=node.attrs.get("output_height", 1),
               pooled_w=node.attrs.get("output_width", 1),
               sampling_ratio=node.attrs.get("sampling_ratio", 0),
               spatial_scale=float(node.attrs.get("spatial_scale", 1.0)), aligned=int(aligned))]
