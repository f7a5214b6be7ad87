"""The corpus's two detection nets run end to end: Detectron's Faster R-CNN R-50-C4 and
the int8 Mask R-CNN2Go, with seeded random weights from ``caffe2lite.param_init``.

Weights are random, so what is checked is what the nets promise whatever the
weights: the documented outputs exist with their shapes and dtypes, boxes lie in
the image, scores are probabilities above the threshold, classes are foreground
ids, every RoI count is within post_nms_topN / detections_per_im, and the same
seed gives the same outputs.  The int8 net's mask branch (behind If / IsEmpty)
runs because its score threshold is lowered so that detections survive random
weights; the command line runs both nets too.

To stay cheap, each net runs once per test at a small image, with
GenerateProposals' ``post_nms_topN`` and BoxWithNMSLimit's ``detections_per_im``
lowered (the RoI heads -- ResNet-50's res5, the mask branch -- cost per RoI);
the repeat that shows determinism reruns the predict net alone on the same
weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import cli, param_init, workspace, zoo_widths
from caffe2lite.operators.generate_proposals import detectron_anchors
from caffe2lite.protoio import load_net, save_proto
from caffe2lite.runtime.registry import missing_operators

F = np.float32
FRCNN = "facebookarchive__models__detectron_e2e_faster_rcnn_R-50-C4_1x_predict_net.pbtxt"
M2GO = "facebookarchive__models__mask_rcnn_2go_model_int8_model.pbtxt"
ROIS = 6  # post_nms_topN for the tests (the nets ask 300 and 100)
DETECTIONS = 6  # detections_per_im for the tests (the nets ask 100)


def _set_arg(net, op_type, name, value):
    """Set (or add) argument ``name`` of the first ``op_type`` op of ``net``."""
    op = next(op for op in net.op if op.type == op_type)
    arg = next((a for a in op.arg if a.name == name), None)
    if arg is None:
        arg = op.arg.add(name=name)
    if isinstance(value, float):
        arg.f = value
    else:
        arg.i = value


def _net(nets_dir, name, score_thresh=None):
    path = nets_dir / name
    if not path.exists():
        pytest.skip(f"{name} is not in {nets_dir}")
    net = load_net(path)
    assert missing_operators(net) == []
    _set_arg(net, "GenerateProposals", "post_nms_topN", ROIS)
    _set_arg(net, "BoxWithNMSLimit", "detections_per_im", DETECTIONS)
    if score_thresh is not None:
        _set_arg(net, "BoxWithNMSLimit", "score_thresh", score_thresh)
    return net


def _feeds(size, seed=0):
    return {"data": np.random.default_rng(seed).uniform(0, 255, (1, 3) + size).astype(F),
            "im_info": np.array([[size[0], size[1], 1.0]], F), "anchor": detectron_anchors()}


def _run(net, widths, size, seed=0):
    """Random weights, then the net once; returns its outputs."""
    workspace.ResetWorkspace()
    feeds = _feeds(size, seed)
    shapes = {k: v.shape for k, v in feeds.items()}
    init = param_init.random_init_net(net, shapes, widths, seed=seed)
    # the same seed makes the same init net (its fills are seeded op by op)
    assert param_init.random_init_net(net, shapes, widths, seed=seed) == init
    workspace.RunNetOnce(init)
    for k, v in feeds.items():
        workspace.FeedBlob(k, v)
    workspace.RunNetOnce(net)
    return {name: workspace.FetchBlob(name) for name in net.external_output}


def _assert_rerun_gives(net, out):
    """The predict net run again on the same weights and inputs gives the same outputs."""
    workspace.RunNetOnce(net)
    for name, value in out.items():
        np.testing.assert_array_equal(workspace.FetchBlob(name), value, err_msg=name)


def _check_detections(out, size, limit, classes, score_thresh):
    scores, boxes, labels = out["score_nms"], out["bbox_nms"], out["class_nms"]
    n = scores.shape[0]
    assert scores.dtype == boxes.dtype == labels.dtype == F
    assert boxes.shape == (n, 4) and labels.shape == (n,) and n <= limit
    assert ((scores > score_thresh) & (scores <= 1)).all()
    assert ((labels >= 1) & (labels < classes) & (labels == np.round(labels))).all()
    assert ((boxes >= 0) & (boxes <= max(size) - 1)).all()


def test_faster_rcnn_runs_end_to_end(nets_dir):
    net = _net(nets_dir, FRCNN)
    out = _run(net, zoo_widths.detectron_faster_rcnn_r50_c4(), (64, 80))
    _check_detections(out, (64, 80), DETECTIONS, 81, 0.05)
    rois = workspace.FetchBlob("rpn_rois")
    n = rois.shape[0]
    assert rois.shape == (n, 5) and 0 < n <= ROIS and (rois[:, 0] == 0).all()
    assert workspace.FetchBlob("pool5").shape == (n, 1024, 14, 14)
    assert workspace.FetchBlob("cls_prob").shape == (n, 81)
    _assert_rerun_gives(net, out)


def test_mask_rcnn_2go_int8_runs_end_to_end_with_its_mask_branch(nets_dir):
    # random class scores sit near 1/81 < score_thresh: lower it so detections (and masks) come
    net = _net(nets_dir, M2GO, score_thresh=0.0)
    size = (64, 96)
    out = _run(net, zoo_widths.mask_rcnn_2go_int8(), size)
    assert workspace.FetchBlob("rois").shape == (ROIS, 5)
    assert workspace.FetchInt8Blob("roi_features_int8").data.shape == (ROIS, 6, 6, 128)
    _check_detections(out, size, DETECTIONS, 81, 0.0)
    n = out["score_nms"].shape[0]
    assert n > 0
    masks = out["mask_fcn_probs"]
    assert masks.dtype == F and masks.shape == (n, 81, 12, 12)  # 6x6 RoIs upsampled twice
    assert ((masks >= 0) & (masks <= 1)).all()
    # the branch rescaled bbox_nms by im_info's scale (1.0 here): still in the image
    assert (out["bbox_nms"] <= size[1] - 1).all()
    _assert_rerun_gives(net, out)


@pytest.mark.parametrize("name,zoo", [(M2GO, "mask_rcnn_2go_int8"),
                                      (FRCNN, "detectron_faster_rcnn_r50_c4")])
def test_command_line_runs_the_detection_nets(nets_dir, tmp_path, capsys, name, zoo):
    net_file = tmp_path / name
    save_proto(_net(nets_dir, name), net_file)
    np.save(tmp_path / "im_info.npy", np.array([[64, 80, 1.0]], F))
    np.save(tmp_path / "anchor.npy", detectron_anchors())
    argv = ["run", str(net_file), "--random-init", zoo, "--feed",
            "data=random:1,3,64,80", "--feed", f"im_info={tmp_path / 'im_info.npy'}",
            "--feed", f"anchor={tmp_path / 'anchor.npy'}", "--rois", str(ROIS)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "score_nms (float32, shape (" in out and "bbox_nms (float32, shape (" in out

