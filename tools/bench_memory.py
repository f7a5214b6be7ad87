"""Peak memory of one forward pass: caffe2lite's Predictor against the PyTorch twin.

    PYTHONPATH=. python tools/bench_memory.py [--net resnet50] [--batch 16] [--runs 3]

Each contender runs in a fresh process of its own (so one's allocations never
count for another): it loads the net and the weights (caffe2lite's init net,
the same arrays for the PyTorch twin of tools/caffe2_torch.py), feeds one
batch, then resets the kernel's peak-RSS mark (``/proc/self/clear_refs``,
Linux) and runs ``--runs`` forward passes.  The figure is the peak resident set
during those passes (VmHWM) minus the resident set just before the first: the
memory the passes need on top of the library, the weights and the input
(allocator caches and the previous pass's blobs included, since a user pays
for those too).  RSS, not tracemalloc: PyTorch's allocations are not
Python's.  Contenders: caffe2lite's Predictor with ``reuse_memory`` (each
intermediate blob emptied after its last reader) and without, and PyTorch eager
under ``torch.inference_mode()``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = ("caffe2lite reuse_memory=True", "caffe2lite reuse_memory=False", "torch")


def _status(field: str) -> int:
    """A VmRSS / VmHWM line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(contender: str, net: str, batch: int, runs: int, threads: int) -> dict:
    """(in the child) {'peak_mb': ..., 'base_mb': ...} for one contender."""
    for var in ("OMP_NUM_THREADS", "CAFFE2LITE_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # caffe2lite's own pool splits the work
    sys.path[:0] = [str(ROOT), str(ROOT / "tools")]
    from bench_vision import load_case

    from caffe2lite import workspace

    predict, init, data, x = load_case(net, batch)
    read = {name for op in predict.op for name in op.input}
    kept = [name for name in predict.external_input if name in read]  # the zoo lists a
    del predict.external_input[:]  # data queue no op reads: the Predictor would want it fed
    predict.external_input.extend(kept)
    if contender == "torch":
        import torch
        from caffe2_torch import TorchTwin

        torch.set_num_threads(threads)
        workspace.RunNetOnce(init)
        params = {op.output[0]: workspace.FetchBlob(op.output[0]) for op in init.op
                  if op.output[0] != data}
        workspace.ResetWorkspace()
        twin = TorchTwin(predict, params)
        del params

        def run():
            twin({data: x})
    else:
        reuse = contender.endswith("True")
        predictor = workspace.Predictor(init, predict, reuse_memory=reuse)

        def run():
            predictor.run([x])
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    base = _status("VmRSS")
    for _ in range(runs):
        run()
    peak = _status("VmHWM")
    return {"peak_mb": (peak - base) / 2**20, "base_mb": base / 2**20,
            "after_mb": _status("VmRSS") / 2**20}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="resnet50")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.net, args.batch, args.runs, args.threads)))
        return 0
    print(f"{args.net} batch {args.batch}: memory the forward passes need above the "
          f"weights and input (peak RSS - RSS before; each contender in its own process)")
    for contender in CONTENDERS:
        out = subprocess.run([sys.executable, __file__, "--net", args.net, "--batch",
                              str(args.batch), "--runs", str(args.runs), "--threads",
                              str(args.threads), "--child", contender],
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"  {contender:32s} {result['peak_mb']:8.1f} MB  (resident before the passes: "
              f"{result['base_mb']:.0f} MB, after: {result['after_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
