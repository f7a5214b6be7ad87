"""Detectron's ops on CUDA agree with the CPU: RoIAlign and GenerateProposals' NMS run
their array engines on CuPy, the layer ops are one xp body, the rest fall back to the host.

Skipped without a GPU (``pytest -m cuda --fake-cuda`` rehearses them against
tests/fake_cupy.py).  Sums of bilinear samples are compared within 1e-5 (the GPU
adds in another order); NMS decisions and copies exactly.
"""

import numpy as np
import pytest
from device_utils import requires_cuda, run_on

from caffe2lite import core, utils
from caffe2lite.operators.generate_proposals import detectron_anchors

F = np.float32
rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 9, 11)).astype(F)
XY = rng.uniform(-4, 30, (14, 2))
ROIS = np.concatenate([rng.integers(0, 2, (14, 1)), XY, XY + rng.uniform(0, 16, (14, 2))],
                      axis=1).astype(F)
ROTATED = np.concatenate([ROIS[:, :3], rng.uniform(2, 12, (14, 2)),
                          rng.uniform(-90, 90, (14, 1))], axis=1).astype(F)


def _proposal_inputs(rotated=False):
    A, H, W = 15, 6, 7
    anchors = detectron_anchors()
    if rotated:
        anchors = np.concatenate([(anchors[:, :2] + anchors[:, 2:]) / 2,
                                  anchors[:, 2:] - anchors[:, :2] + 1,
                                  rng.uniform(-60, 60, (A, 1))], axis=1).astype(F)
    dim = anchors.shape[1]
    return {"scores": rng.random((2, A, H, W)).astype(F),
            "deltas": (rng.standard_normal((2, dim * A, H, W)) * 0.1).astype(F),
            "im_info": np.array([[96, 112, 1.0], [80, 100, 1.2]], F), "anchors": anchors}


def _alias():
    op = core.CreateOperator("AliasWithName", ["X"], ["Y"])
    op.arg.add().CopyFrom(utils.MakeArgument("name", "features"))
    return op


CASES = [
    ("RoIAlign", {"X": X, "R": ROIS}, ["Y"], dict(spatial_scale=0.5, pooled_h=3, pooled_w=2,
                                                  sampling_ratio=0)),
    ("RoIAlign", {"X": X.transpose(0, 2, 3, 1).copy(), "R": ROIS}, ["Y"],
     dict(spatial_scale=0.5, pooled_h=2, pooled_w=2, sampling_ratio=2, aligned=1,
          order="NHWC")),
    ("RoIAlignRotated", {"X": X, "R": ROTATED}, ["Y"], dict(spatial_scale=0.5, pooled_h=2,
                                                            pooled_w=3, sampling_ratio=2)),
    ("GenerateProposals", _proposal_inputs(), ["rois", "probs"],
     dict(pre_nms_topN=300, post_nms_topN=40, nms_thresh=0.6, min_size=2.0)),
    ("GenerateProposals", _proposal_inputs(rotated=True), ["rois", "probs"],
     dict(pre_nms_topN=200, post_nms_topN=30, nms_thresh=0.5, min_size=2.0)),
    ("BatchPermutation", {"X": X, "i": np.array([1, 0], np.int32)}, ["Y"], {}),
    ("BatchPermutationGradient", {"i": np.array([1, 0], np.int32), "dY": X}, ["dX"], {}),
    ("AffineChannel", {"X": X, "s": X[0, :, 0, 0].copy(), "b": X[1, :, 0, 0].copy()}, ["Y"],
     {}),
    ("AffineChannelGradient", {"dY": X, "X": X * 2, "s": X[0, :, 0, 0].copy()},
     ["dX", "ds", "db"], dict(is_learnable=1)),
    ("UpsampleNearest", {"X": X}, ["Y"], dict(scale=2)),
    ("UpsampleNearestGradient", {"X": X[:, :, :4, :5].copy(), "dY": X[:, :, :8, :10].copy()},
     ["dX"], dict(scale=2)),
    ("ResizeNearest", {"X": X, "scales": np.array([1.5, 0.7], F)}, ["Y"], {}),
    ("ResizeNearestGradient", {"dY": X, "X": X[:, :, :5, :4].copy()}, ["dX"],
     dict(height_scale=1.9, width_scale=2.9, order="NCHW")),
    ("HeatmapMaxKeypoint", {"maps": X[:, :, :7, :7].copy(), "boxes": ROIS[:2, 1:]}, ["kp"],
     dict(should_output_softmax=1)),  # host fallback
    ("BBoxTransform", {"r": ROIS[np.argsort(ROIS[:, 0], kind="stable")],
                       "d": rng.standard_normal((14, 8)).astype(F) * 0.1,
                       "i": np.array([[60, 70, 1.0], [50, 40, 2.0]], F)}, ["box", "splits"],
     {}),  # host fallback
]


def assert_agree(op, feeds, outputs, tol):
    cpu, cpu_error = run_on(op, feeds, "CPU", outputs)
    gpu, gpu_error = run_on(op, feeds, "CUDA", outputs)
    assert cpu_error is None and gpu_error is None, (cpu_error, gpu_error)
    for name in outputs:
        assert gpu[name].shape == cpu[name].shape and gpu[name].dtype == cpu[name].dtype, name
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=tol, atol=tol, err_msg=name)


@requires_cuda
@pytest.mark.parametrize("op_type,feeds,outputs,args", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_matches_cpu(op_type, feeds, outputs, args):
    tol = 1e-5 if op_type.startswith(("RoIAlign", "Affine", "Heatmap")) else 0
    assert len(run_on(core.CreateOperator(op_type, list(feeds), outputs, **args), feeds,
                      "CPU", outputs)[0][outputs[0]]) > 0  # a case with something in it
    assert_agree(core.CreateOperator(op_type, list(feeds), outputs, **args), feeds, outputs, tol)


@requires_cuda
def test_cuda_alias_with_name_and_box_with_nms_limit():
    assert_agree(_alias(), {"X": X}, ["Y"], 0)
    scores = rng.random((30, 3)).astype(F)
    base = rng.uniform(0, 60, (30, 2))
    boxes = np.concatenate([np.concatenate([base, base + rng.uniform(5, 30, (30, 2))], 1)
                            for _ in range(3)], 1).astype(F)
    op = core.CreateOperator("BoxWithNMSLimit", ["s", "b"], ["S", "B", "C"], score_thresh=0.2,
                             nms=0.4)
    assert_agree(op, {"s": scores, "b": boxes}, ["S", "B", "C"], 0)
