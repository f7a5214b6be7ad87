"""Per-run cost of operators whose input checks are their main Python work.

Small inputs make the math negligible, so the time per run is dispatch plus
each kernel's checks -- where eagerly formatted error messages (dtype and
shape __str__, blob labels built even when the check passes) used to show.
Each op is created once and run ``--iters`` times; best of ``--repeat``,
process time (the CPU this process used, less disturbed by other jobs).

Usage: ``PYTHONPATH=. python tools/bench_checks.py [--iters 3000] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.runtime.operator import Operator  # noqa: E402

FEEDS = {"X": np.ones((4, 8), np.float32), "W": np.ones((3, 8), np.float32),
         "b": np.ones(3, np.float32), "dY": np.ones((4, 3), np.float32),
         "T": np.ones((4, 3), np.float32)}
OPS = [("FC", ["X", "W", "b"], ["Y"], {}),
       ("FCGradient", ["X", "W", "dY"], ["dW", "db", "dX"], {}),
       ("SigmoidCrossEntropyWithLogits", ["dY", "T"], ["L"], {}),
       ("Concat", ["X", "X"], ["C", "C_split"], {"axis": 1}),
       ("Reshape", ["X"], ["R", "R_old"], {"shape": [8, 4]})]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for name, value in FEEDS.items():
        workspace.FeedBlob(name, value)
    ws = workspace.current()
    for op_type, inputs, outputs, kwargs in OPS:
        op = Operator(core.CreateOperator(op_type, inputs, outputs, **kwargs), ws)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            for _ in range(args.iters):
                op.run(ws.blob_dict)
            best = min(best, (time.process_time() - start) / args.iters)
        print(f"{op_type:32s} {best * 1e6:6.1f} us/run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
