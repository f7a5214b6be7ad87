"""Detection kernels against ONNX Runtime, and Detectron's Faster R-CNN end to end.

    PYTHONPATH=. python tools/bench_detection.py [--repeat 5] [--size 800] [--skip-net]
    PYTHONPATH=. python tools/bench_detection.py --rotated

Needs ``onnxruntime`` and ``onnx`` (a benchmark-only peer: ``pip install onnxruntime
onnx``).  In one process, on the same inputs:

* RoIAlign: Faster R-CNN R-50-C4's head (1,024-channel stride-16 map of an
  800 x 800 image, 1,000 RoIs of 16-400 pixels, 14 x 14 bins, adaptive sampling)
  and Mask R-CNN2Go's (128 channels NHWC, 100 RoIs, 6 x 6) -- caffe2lite's
  ``RoIAlign`` against ORT's ``RoiAlign`` (``output_half_pixel``, i.e. not aligned,
  which is Caffe2's default); the outputs are compared too.
* NMS: 6,000 RPN boxes kept down to 1,000 at IoU 0.7, and 300 boxes to 100 at 0.5
  -- caffe2lite's greedy NMS (the C engine, and the NumPy one) against ORT's
  ``NonMaxSuppression`` (IoU without Detectron's +1, so ``legacy_plus_one=0``);
  the kept sets are compared.
* Rotated NMS (``--rotated`` alone needs no ORT; no peer has it): 6,000 RRPN-like
  rotated proposals clustered around 200 objects, kept down to 1,000 / 300 at IoU
  0.7 -- the greedy engine over operators/_rotated_iou.py's all-pairs overlaps.
* The Faster R-CNN R-50-C4 predict net from the corpus (../shared/nets) at
  ``--size`` x ``--size``, seeded random weights (caffe2lite.param_init), run
  through a created net: the fastest of ``--repeat`` runs after a warm-up.

Each kernel time is the fastest of ``--repeat`` calls after a warm-up (caffe2lite's
through RunOperatorOnce, runtime overhead included; ORT's through
InferenceSession.run).  The ratio is caffe2lite / ORT: the target is <= 2.
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np
from benchtime import best_s

from caffe2lite import core, param_init, workspace, zoo_widths
from caffe2lite.operators import _boxes
from caffe2lite.operators.generate_proposals import detectron_anchors
from caffe2lite.protoio import load_net

F = np.float32
NETS = Path(__file__).resolve().parents[1].parent / "shared" / "nets"
FRCNN = "facebookarchive__models__detectron_e2e_faster_rcnn_R-50-C4_1x_predict_net.pbtxt"


def ort_session(node, inputs, opset, out_type):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    types = {np.dtype(F): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}
    graph = helper.make_graph(
        [node], "bench", [helper.make_tensor_value_info(n, types[v.dtype], None)
                          for n, v in inputs.items()],
        [helper.make_tensor_value_info(o, types[np.dtype(out_type)], None)
         for o in node.output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return lambda: session.run(None, inputs)


def random_rois(rng, n, image, lo, hi):
    xy = rng.uniform(0, image - lo, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(lo, hi, (n, 2)), image - 1)], 1)
    return boxes.astype(F)


def bench_roi_align(rng, repeat, name, shape, order, n_rois, pooled, image):
    from onnx import helper

    X = rng.standard_normal(shape, dtype=F)
    boxes = random_rois(rng, n_rois, image, 16, 400)
    rois = np.concatenate([np.zeros((n_rois, 1), F), boxes], 1)
    workspace.FeedBlob("X", X)
    workspace.FeedBlob("R", rois)
    op = core.CreateOperator("RoIAlign", ["X", "R"], ["Y"], spatial_scale=1 / 16.0,
                             pooled_h=pooled, pooled_w=pooled, sampling_ratio=0, order=order)
    ours = best_s(lambda: workspace.RunOperatorOnce(op), repeat)
    x_nchw = X if order == "NCHW" else np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    node = helper.make_node("RoiAlign", ["X", "rois", "batch"], ["Y"], output_height=pooled,
                            output_width=pooled, sampling_ratio=0, spatial_scale=1 / 16.0,
                            mode="avg", coordinate_transformation_mode="output_half_pixel")
    run_ort = ort_session(node, {"X": x_nchw, "rois": boxes,
                                 "batch": np.zeros(n_rois, np.int64)}, 16, F)
    theirs = best_s(run_ort, repeat)
    y = workspace.FetchBlob("Y")
    y = y if order == "NCHW" else y.transpose(0, 3, 1, 2)
    diff = float(np.abs(y - run_ort()[0]).max())
    print(f"RoIAlign {name} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ours / theirs:.2f} | "
          f"{diff:.1e}")


def bench_nms(rng, repeat, n, keep, thresh):
    from onnx import helper

    boxes = random_rois(rng, n, 800, 8, 200)
    scores = rng.random(n, dtype=F)
    order = np.argsort(-scores, kind="stable")
    ours = best_s(lambda: _boxes.nms_upright(boxes, order, thresh, keep, False), repeat)
    overlaps = _boxes.upright_overlaps(False)
    numpy = best_s(lambda: _boxes._nms_blocks(boxes[order], thresh, keep, overlaps), repeat)
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "keep", "iou"], ["sel"])
    run_ort = ort_session(node, {"boxes": boxes[None], "scores": scores[None, None],
                                 "keep": np.array([keep], np.int64),
                                 "iou": np.array([thresh], F)}, 13, np.int64)
    theirs = best_s(run_ort, repeat)
    same = np.array_equal(np.sort(_boxes.nms_upright(boxes, order, thresh, keep, False)),
                          np.sort(run_ort()[0][:, 2]))
    print(f"NMS {n} -> {keep} at {thresh} | {ours * 1e3:.2f} (NumPy engine {numpy * 1e3:.2f}) | "
          f"{theirs * 1e3:.2f} | {ours / theirs:.2f} | same kept set: {same}")


def bench_rotated_nms(rng, repeat, n, keep, thresh):
    centres = rng.uniform(0, 800, (200, 2))
    owner = rng.integers(0, 200, n)
    boxes = np.concatenate([centres[owner] + rng.normal(0, 8, (n, 2)),
                            rng.uniform(20, 120, (n, 2)), rng.uniform(-90, 90, (n, 1))],
                           axis=1).astype(F)
    order = np.argsort(-rng.random(n), kind="stable")
    seconds = best_s(lambda: _boxes.nms_rotated(boxes, order, thresh, keep), repeat)
    kept = _boxes.nms_rotated(boxes, order, thresh, keep).size
    print(f"rotated NMS {n} -> {keep} at {thresh} | {seconds * 1e3:.1f} | - | - | "
          f"kept {kept}")


def bench_faster_rcnn(rng, repeat, size):
    path = NETS / FRCNN
    if not path.exists():
        print(f"(Faster R-CNN skipped: {path} is absent)")
        return
    net = load_net(path)
    feeds = {"data": rng.uniform(0, 255, (1, 3, size, size)).astype(F),
             "im_info": np.array([[size, size, 1.0]], F), "anchor": detectron_anchors()}
    init = param_init.random_init_net(net, {k: v.shape for k, v in feeds.items()},
                                      zoo_widths.detectron_faster_rcnn_r50_c4(), seed=0)
    workspace.RunNetOnce(init)
    for k, v in feeds.items():
        workspace.FeedBlob(k, v)
    workspace.CreateNet(net, overwrite=True)
    seconds = best_s(lambda: workspace.RunNet(net.name), repeat)
    per_op = workspace.BenchmarkNet(net.name, 0, 1, True)[1:]
    types = {}
    for op, ms in zip(net.op, per_op):
        types[op.type] = types.get(op.type, 0.0) + ms
    top = ", ".join(f"{t} {ms / 1e3:.2f} s" for t, ms in
                    sorted(types.items(), key=lambda kv: -kv[1])[:6])
    rois = workspace.FetchBlob("rpn_rois").shape[0]
    print(f"Faster R-CNN R-50-C4 {size} x {size}: {seconds:.2f} s per image "
          f"({rois} RoIs, {workspace.FetchBlob('score_nms').shape[0]} detections); one "
          f"profiled run by op type: {top}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--skip-net", action="store_true")
    parser.add_argument("--rotated", action="store_true", help="rotated NMS only (no ORT)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.rotated:
        print(f"# {datetime.date.today()} {platform.machine()}, numpy {np.__version__}")
        print("case | caffe2lite ms | - | - | kept")
        bench_rotated_nms(rng, args.repeat, 6000, 1000, 0.7)
        bench_rotated_nms(rng, args.repeat, 6000, 300, 0.7)
        return
    import onnxruntime

    print(f"# {datetime.date.today()} {platform.machine()} {platform.processor() or ''}, "
          f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}")
    print("case | caffe2lite ms | ONNX Runtime ms | ratio | max |diff|")
    bench_roi_align(rng, args.repeat, "Faster R-CNN head (1000 x 1024 x 14 x 14, NCHW)",
                    (1, 1024, 50, 50), "NCHW", 1000, 14, 800)
    bench_roi_align(rng, args.repeat, "Mask R-CNN2Go head (100 x 6 x 6 x 128, NHWC)",
                    (1, 20, 20, 128), "NHWC", 100, 6, 320)
    bench_nms(rng, args.repeat, 6000, 1000, 0.7)
    bench_nms(rng, args.repeat, 300, 100, 0.5)
    bench_rotated_nms(rng, args.repeat, 6000, 1000, 0.7)
    if not args.skip_net:
        bench_faster_rcnn(rng, max(1, args.repeat // 2), args.size)


if __name__ == "__main__":
    main()
