"""Quantized embedding bags vs float ones: SparseLengthsSumFused8BitRowwise vs SparseLengthsSum.

    PYTHONPATH=. python tools/bench_quantized_sls.py [--rows 500000] [--dim 64]
        [--batches 512 8192] [--bag 20] [--zipf 1.1] [--repeat 7]

One float32 table (rows x dim), quantized once with FloatToFused8BitRowwiseQuantized
(rows x (dim + 8) uint8, ~3.6x smaller at dim 64).  For each batch size, the same
Zipf-distributed ids (--bag per bag) go through SparseLengthsSum on the float
table and SparseLengthsSumFused8BitRowwise on the quantized one, with the
NATIVE (C) and the NUMPY engines.  Each time is the fastest of --repeat runs
after a warm-up (RunOperatorOnce, runtime overhead included); GB/s counts the
table bytes the looked-up rows occupy (ids x row bytes: 4 * dim for the float
table, dim + 8 for the fused one), so the ratio says how fast each op turns the
bytes it must read into sums; Mrows/s counts looked-up rows per second.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import numpy as np
from benchtime import best_s

from caffe2lite import core, workspace
from caffe2lite.runtime import registry


def zipf_ids(rng, rows, count, a):
    """Zipf ids folded into [0, rows), shuffled so hot rows are spread over the table
    (a == 0: uniform ids, every lookup a likely cache miss)."""
    if a == 0:
        return rng.integers(0, rows, count, dtype=np.int64)
    ranks = (rng.zipf(a, count) - 1) % rows
    return rng.permutation(rows)[ranks].astype(np.int64)


def run(op):
    return lambda: workspace.RunOperatorOnce(op)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[512, 8192])
    parser.add_argument("--bag", type=int, default=20)
    parser.add_argument("--zipf", type=float, nargs="+", default=[1.1, 0.0],
                        help="Zipf exponents of the ids (0: uniform)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    table = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    workspace.FeedBlob("table", table)
    workspace.RunOperatorOnce(core.CreateOperator(
        "FloatToFused8BitRowwiseQuantized", ["table"], ["qtable"]))
    engines = [e for e in ("NATIVE", "NUMPY")
               if ("SparseLengthsSumFused8BitRowwise", 0, e) in registry.kernels()]
    print(f"# {datetime.date.today()} {platform.machine()}, table {args.rows} x {args.dim}, "
          f"bag {args.bag}, engines {engines}")
    print("ids | batch | float SLS GB/s (Mrows/s) | "
          + " | ".join(f"fused8 {e} GB/s (Mrows/s) | ratio per byte" for e in engines))
    for a, batch in ((a, b) for a in args.zipf for b in args.batches):
        ids = zipf_ids(rng, args.rows, batch * args.bag, a)
        workspace.FeedBlob("ids", ids)
        workspace.FeedBlob("lengths", np.full(batch, args.bag, np.int32))
        float_s = best_s(run(core.CreateOperator(
            "SparseLengthsSum", ["table", "ids", "lengths"], ["out"])), args.repeat)
        float_gbs = ids.size * args.dim * 4 / float_s / 1e9
        cells = [f"Zipf {a}" if a else "uniform", f"{batch}",
                 f"{float_gbs:.2f} ({ids.size / float_s / 1e6:.0f})"]
        for engine in engines:
            q_s = best_s(run(core.CreateOperator(
                "SparseLengthsSumFused8BitRowwise", ["qtable", "ids", "lengths"], ["qout"],
                engine=engine)), args.repeat)
            q_gbs = ids.size * (args.dim + 8) / q_s / 1e9
            cells += [f"{q_gbs:.2f} ({ids.size / q_s / 1e6:.0f})", f"{q_gbs / float_gbs:.2f}"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
