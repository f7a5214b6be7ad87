"""The corpus's two detection nets run end to end: Detectron's Faster R-CNN R-50-C4 and
the int8 Mask R-CNN2Go, with seeded random weights from ``caffe2lite.param_init``.

Weights are random, so what is checked is what the nets promise whatever the
weights: the documented outputs exist with their shapes and dtypes, boxes lie in
the image, scores are probabilities above the threshold, classes are foreground
ids, every RoI count is within post_nms_topN / detections_per_im, and the same
seed gives the same outputs.  The int8 net's mask branch (behind If / IsEmpty)
runs when its score threshold is lowered so that detections survive random
weights; the command line runs both nets too.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import cli, param_init, workspace, zoo_widths
from caffe2lite.operators.generate_proposals import detectron_anchors
from caffe2lite.protoio import load_net
from caffe2lite.runtime.registry import missing_operators

F = np.float32
FRCNN = "facebookarchive__models__detectron_e2e_faster_rcnn_R-50-C4_1x_predict_net.pbtxt"
M2GO = "facebookarchive__models__mask_rcnn_2go_model_int8_model.pbtxt"


def _net(nets_dir, name):
    path = nets_dir / name
    if not path.exists():
        pytest.skip(f"{name} is not in {nets_dir}")
    net = load_net(path)
    assert missing_operators(net) == []
    return net


def _run(net, widths, size, seed=0, num_rois=None):
    workspace.ResetWorkspace()
    feeds = {"data": np.random.default_rng(seed).uniform(0, 255, (1, 3) + size).astype(F),
             "im_info": np.array([[size[0], size[1], 1.0]], F), "anchor": detectron_anchors()}
    shapes = {k: v.shape for k, v in feeds.items()}
    workspace.RunNetOnce(param_init.random_init_net(net, shapes, widths, seed=seed,
                                                    num_rois=num_rois))
    for k, v in feeds.items():
        workspace.FeedBlob(k, v)
    workspace.RunNetOnce(net)
    return {name: workspace.FetchBlob(name) for name in net.external_output}


def _check_detections(out, size, limit, classes):
    scores, boxes, labels = out["score_nms"], out["bbox_nms"], out["class_nms"]
    n = scores.shape[0]
    assert scores.dtype == boxes.dtype == labels.dtype == F
    assert boxes.shape == (n, 4) and labels.shape == (n,) and n <= limit
    assert ((scores > 0.05) & (scores <= 1)).all()
    assert ((labels >= 1) & (labels < classes) & (labels == np.round(labels))).all()
    assert ((boxes >= 0) & (boxes <= max(size) - 1)).all()


def test_faster_rcnn_runs_end_to_end(nets_dir):
    net = _net(nets_dir, FRCNN)
    widths = zoo_widths.detectron_faster_rcnn_r50_c4()
    out = _run(net, widths, (128, 128))
    _check_detections(out, (128, 128), 100, 81)
    rois = workspace.FetchBlob("rpn_rois")
    assert rois.shape[1] == 5 and 0 < rois.shape[0] <= 1000 and (rois[:, 0] == 0).all()
    assert workspace.FetchBlob("pool5").shape == (rois.shape[0], 1024, 14, 14)
    assert workspace.FetchBlob("cls_prob").shape == (rois.shape[0], 81)
    again = _run(net, widths, (128, 128))
    for name, value in out.items():
        np.testing.assert_array_equal(again[name], value)


def test_mask_rcnn_2go_int8_runs_end_to_end_with_its_mask_branch(nets_dir):
    net = _net(nets_dir, M2GO)
    widths = zoo_widths.mask_rcnn_2go_int8()
    out = _run(net, widths, (128, 160))
    _check_detections(out, (128, 160), 100, 81)
    rois = workspace.FetchBlob("rois")
    assert rois.shape == (100, 5)  # post_nms_topN: random RPN scores keep 100 proposals
    assert workspace.FetchInt8Blob("roi_features_int8").data.shape == (100, 6, 6, 128)
    # random class scores sit near 1/81 < score_thresh: lower it so detections (and masks) come
    nms = next(op for op in net.op if op.type == "BoxWithNMSLimit")
    next(a for a in nms.arg if a.name == "score_thresh").f = 0.0
    out = _run(net, widths, (128, 160), num_rois=12)
    n = out["score_nms"].shape[0]
    assert 0 < n <= 100 and out["bbox_nms"].shape == (n, 4)
    masks = out["mask_fcn_probs"]
    assert masks.dtype == F and masks.shape == (n, 81, 12, 12)  # 6x6 RoIs upsampled twice
    assert ((masks >= 0) & (masks <= 1)).all()
    # the branch rescaled bbox_nms by im_info's scale (1.0 here): still in the image
    assert (out["bbox_nms"] <= 159).all()


@pytest.mark.parametrize("name,zoo", [(M2GO, "mask_rcnn_2go_int8"),
                                      (FRCNN, "detectron_faster_rcnn_r50_c4")])
def test_command_line_runs_the_detection_nets(nets_dir, tmp_path, capsys, name, zoo):
    _net(nets_dir, name)
    np.save(tmp_path / "im_info.npy", np.array([[96, 128, 1.0]], F))
    np.save(tmp_path / "anchor.npy", detectron_anchors())
    argv = ["run", str(nets_dir / name), "--random-init", zoo, "--feed",
            "data=random:1,3,96,128", "--feed", f"im_info={tmp_path / 'im_info.npy'}",
            "--feed", f"anchor={tmp_path / 'anchor.npy'}", "--rois", "20"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "score_nms (float32, shape (" in out and "bbox_nms (float32, shape (" in out
