"""Sharded tables on one machine: what the remote calls cost against one process.

    PYTHONPATH=. python tools/bench_sharded.py [--rows 100000] [--dim 32]
        [--batch 512] [--steps 100] [--shards 1 2 4] [--calls 300]

One step is the embedding part of the main job on one table: SparseLengthsSum
of ``--batch`` one-id bags (a lookup per id), then SparseAdagrad on the same
ids (an update per id), on Zipf-popular ids as in examples/demo.py.  It runs in
one process, then with the table on 1, 2 and 4 shard actors of a local Ray
cluster (127.0.0.1, as many CPUs as the machine has; the shards and the driver
share them).  Then the cost of one remote call on its own: an empty call, and a
gather of one row, round trip from the driver.  Prints markdown for
BENCHMARKS.md, with the bytes and calls per step the sharded step moved.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caffe2lite import core, workspace  # noqa: E402


def nets(rows: int, dim: int):
    init = core.Net("init")
    init.GaussianFill([], "emb", shape=[rows, dim], std=0.05)
    init.ConstantFill(["emb"], "emb_moment", value=0.0)
    init.ConstantFill([], "lr", shape=[1], value=-0.1)
    step = core.Net("step")
    step.SparseLengthsSum(["emb", "ids", "lengths"], "pooled")
    step.SparseAdagrad(["emb", "emb_moment", "ids", "grad", "lr"], ["emb", "emb_moment"],
                       epsilon=1e-6)
    return init, step


def batches(rows: int, dim: int, batch: int, n: int):
    rng = np.random.default_rng(0)
    return [((rng.zipf(1.3, batch) - 1) % rows, rng.normal(size=(batch, dim)).astype(np.float32))
            for _ in range(n)]


def time_steps(net_def, data, batch) -> float:
    """Seconds per step, best of three rounds over ``data``."""
    workspace.FeedBlob("lengths", np.ones(batch, np.int32))
    workspace.FeedBlob("ids", data[0][0])
    workspace.FeedBlob("grad", data[0][1])
    workspace.CreateNet(net_def, overwrite=True)
    name = net_def.name
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for ids, grad in data:
            workspace.FeedBlob("ids", ids)
            workspace.FeedBlob("grad", grad)
            workspace.RunNet(name)
        best = min(best, (time.perf_counter() - start) / len(data))
    return best


def call_latency(tables, calls: int):
    """Median seconds of an empty remote call and of a one-row gather, round trip."""
    import ray

    actor = tables.shards.actors[0]
    out = []
    for method, args in (("ping", ()), ("gather", ("emb", np.array([0], np.int64)))):
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            ray.get(getattr(actor, method).remote(*args))
            times.append(time.perf_counter() - start)
        out.append(float(np.median(times)))
    return out


def wire(data, dim, shards, table_rows):
    """Mean bytes and calls per step: ids and rows each way, one call per owning shard."""
    from caffe2lite.distributed.layout import RowLayout

    layout = RowLayout(table_rows, shards)
    total_bytes = total_calls = 0
    for ids, _ in data:
        uniq = np.unique(ids)
        total_bytes += uniq.size * 8 + uniq.size * dim * 4          # lookup: ids out, rows back
        total_bytes += ids.size * 8 + ids.size * dim * 4 + 4        # update: ids, grads, lr
        total_calls += 2 * np.unique(layout.owner(uniq)).size
    return total_bytes / len(data), total_calls / len(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    from caffe2lite import distributed

    init, step = nets(args.rows, args.dim)
    data = batches(args.rows, args.dim, args.batch, args.steps)
    workspace.ResetWorkspace()
    workspace.RunNetOnce(init)
    single = time_steps(step.Proto(), data, args.batch)
    rows = [("one process", single, 0, 0)]
    latency = None
    for n in args.shards:
        workspace.ResetWorkspace()
        tables = distributed.shard(step, init, {"emb": n}, num_cpus=args.num_cpus)
        seconds = time_steps(tables.net.Proto(), data, args.batch)
        nbytes, calls = wire(data, args.dim, n, args.rows)
        rows.append((f"{n} shard{'s' if n > 1 else ''}", seconds, nbytes, calls))
        if latency is None:
            latency = call_latency(tables, args.calls)
        tables.shards.kill()
    import ray

    ray.shutdown()

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, Ray {ray.__version__}")
    print(f"Table {args.rows} x {args.dim} float32, {args.batch} ids per step "
          f"(Zipf 1.3), {args.steps} steps, best of 3\n")
    print("| run | ms / step | lookups + updates / s | vs one process | bytes / step on the "
          "wire | remote calls / step |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds, nbytes, calls in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {2 * args.batch / seconds:,.0f} | "
              f"{seconds / single:.1f}x | {nbytes / 1024:.1f} KiB | {calls:.1f} |")
    print(f"\nOne remote call, round trip (median of {args.calls}): empty "
          f"{latency[0] * 1e6:.0f} us, one-row gather {latency[1] * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
