"""The zoo classifiers: caffe2lite against ONNX Runtime on the exported model, one process.

    PYTHONPATH=. python tools/bench_onnx.py [--threads N] [--batch 1 16] [--runs 3]
        [--repeat 3] [--nets alexnet inception_v1 resnet50 squeezenet]

Each model-zoo predict net of the corpus (../shared/nets, or
$CAFFE2LITE_NETS) gets seeded random weights from ``caffe2lite.param_init``
(the published widths), is exported with ``caffe2lite.onnx.frontend`` and run
by ONNX Runtime (CPUExecutionProvider) -- what an inference user leaving
Caffe2 would pick.  Both get ``--threads`` threads (set before NumPy loads;
ORT's intra-op threads).  The outputs are compared first; then ``--repeat``
rounds of ``--runs`` forward passes per contender, interleaved, best round
kept.  Prints ms per batch and the ratio caffe2lite / ORT.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from benchtime import set_threads

ROOT = Path(__file__).resolve().parent.parent
NETS = Path(os.environ.get("CAFFE2LITE_NETS") or ROOT.parent / "shared" / "nets")
ZOO = {"alexnet": ("facebookarchive__models__bvlc_alexnet_predict_net.pbtxt", 227),
       "inception_v1": ("facebookarchive__models__inception_v1_predict_net.pbtxt", 224),
       "resnet50": ("facebookarchive__models__resnet50_predict_net.pbtxt", 224),
       "squeezenet": ("lupotto__Object-detection-Caffe2__predict_net.pb", 227)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="threads per BLAS call (caffe2lite runs its convolutions on "
                             "--threads threads of its own; see bench_vision)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nets", nargs="+", default=list(ZOO), choices=list(ZOO))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    set_threads(args.threads, args.blas_threads)
    import numpy as np
    import onnx
    import onnxruntime as ort

    from caffe2lite import param_init, zoo_widths
    from caffe2lite.onnx import frontend
    from caffe2lite.protoio import load_net
    from caffe2lite.runtime.workspaces import Workspace

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads; onnxruntime {ort.__version__}, onnx {onnx.__version__}, "
          f"numpy {np.__version__}; {time.strftime('%Y-%m-%d')}")
    print(f"{'net':14s} {'batch':>5s} {'caffe2lite ms':>14s} {'ORT ms':>9s} {'ratio':>6s} "
          f"{'max |diff|':>10s}")
    for name in args.nets:
        file, side = ZOO[name]
        predict = load_net(NETS / file)
        data = predict.op[0].input[0]
        for batch in args.batch:
            x = np.random.default_rng(0).random((batch, 3, side, side), dtype=np.float32)
            init = param_init.random_init_net(predict, {data: x.shape},
                                              getattr(zoo_widths, name)(), seed=0)
            model = frontend.caffe2_net_to_onnx_model(predict, init, {data: (1, x.shape)})
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.log_severity_level = 3  # no notes on the unused outputs Caffe2 nets carry
            session = ort.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
            ws = Workspace()
            ws.run_net_once(init)
            ws.feed_blob(data, x)
            ws.create_net(predict, overwrite=True)
            out = predict.external_output[0]

            def run_caffe2lite():
                ws.run_net(predict.name)
                return ws.fetch_blob(out)

            def run_ort():
                return session.run(None, {data: x})[0]

            diff = float(np.max(np.abs(run_caffe2lite() - run_ort())))
            best = {run_caffe2lite: float("inf"), run_ort: float("inf")}
            for _ in range(args.repeat):
                for fn in best:
                    start = time.perf_counter()
                    for _ in range(args.runs):
                        fn()
                    best[fn] = min(best[fn], (time.perf_counter() - start) / args.runs)
            ours, theirs = best[run_caffe2lite] * 1e3, best[run_ort] * 1e3
            print(f"{name:14s} {batch:5d} {ours:14.1f} {theirs:9.1f} {ours / theirs:6.2f} "
                  f"{diff:10.2e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
