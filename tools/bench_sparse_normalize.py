"""Benchmark SparseNormalize (CPU) against its peers and the memory bound.

Side by side, in one process, for N x D float32 tables (``--dtype float16``:
float16 tables and Float16SparseNormalize) and n random int64
indices, every touched row above the bound (max-norm, norm=1):

* caffe2lite, each registered CPU engine (NATIVE when the C library is built,
  NUMPY), run as a created net (``RunNet``);
* a plain NumPy implementation with ``np.unique``;
* ``torch.embedding_renorm_`` on CPU (bench-only dependency);
* the memory bound: bytes of the touched rows read and written, over the copy
  bandwidth measured here with a large ``np.copyto`` (read + write bytes / s).

Every repetition starts from a fresh copy of the table (made outside the
timed region).  Each time is reported as best / median of the repetitions;
ratios (vs torch, vs the bound, which uses the best copy) use the best, which
is what a shared machine lets through most faithfully; the medians show the
noise.  Peak extra memory is measured in separate runs with tracemalloc
(NumPy allocations are traced; torch's are not).

    python tools/bench_sparse_normalize.py [--repeat 5] [--quick] [--dtype float16]
                                           [--plot FILE]
    python tools/bench_sparse_normalize.py --device cuda [--quick]   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.runtime import registry

SHAPES = [(1_000_000, 64, 100_000), (1_000_000, 128, 200_000), (100_000, 32, 1_000_000)]
QUICK_SHAPES = [(100_000, 64, 10_000), (10_000, 32, 100_000)]
NORM = 1.0
TARGET_VS_TORCH = 10.0
TARGET_VS_BOUND = 8.0
OP_TYPES = {"float32": "SparseNormalize", "float16": "Float16SparseNormalize"}


def copy_bandwidth(nbytes=512 * 2**20, repeat=5):
    """Read + write bytes per second of np.copyto on arrays far larger than the caches."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return 2 * nbytes / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def numpy_unique(table, indices):
    """The obvious NumPy version: unique rows, norms, scale those above the bound."""
    rows = np.unique(indices)
    values = table[rows].astype(np.float32, copy=False)
    norms = np.linalg.norm(values, axis=1)
    over = norms > NORM
    table[rows[over]] = values[over] * (NORM / (norms[over] + 1e-12))[:, None]


def caffe2lite_runner(op_type, engine):
    """A net holding one ``op_type`` op with ``engine``; returns run(table, indices)."""
    net = core.Net(f"bench_{engine}")
    net.Proto().op.extend([core.CreateOperator(op_type, ["w", "idx"], ["w"],
                                               engine=engine, use_max_norm=True, norm=NORM)])
    created = []

    def run(table, indices):
        blobs = workspace.current().blob_dict
        blobs["w"], blobs["idx"] = table, indices  # the table itself, not a copy
        if not created:
            workspace.CreateNet(net)
            created.append(True)
        workspace.RunNet(net.Name())
        assert blobs["w"] is table

    return run


def torch_runner():
    try:
        import torch
    except ImportError:
        return None

    def run(table, indices):
        torch.embedding_renorm_(torch.from_numpy(table), torch.from_numpy(indices), NORM, 2.0)

    return run


def measure(fn, table0, indices, repeat, trace=True, evict=None):
    """(best, median) seconds over fresh copies; peak traced bytes; the last result.

    ``evict``: (src, dst) arrays copied before each timed run, so that the
    table starts out of the caches whatever its size.
    """
    times = []
    for _ in range(repeat):
        table = table0.copy()
        if evict is not None:
            np.copyto(*evict)
        times.append(_timed(lambda: fn(table, indices)))
    peak = None
    if trace:
        table = table0.copy()
        tracemalloc.start()
        fn(table, indices)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return (min(times), statistics.median(times)), peak, table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--torch-repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--dtype", choices=sorted(OP_TYPES), default="float32",
                        help="table dtype (float16: Float16SparseNormalize)")
    parser.add_argument("--plot", metavar="FILE", help="save a bar chart (matplotlib)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the GPU benchmark (tools/bench_sparse_normalize_cuda.py)")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        from bench_sparse_normalize_cuda import main as cuda_main

        return cuda_main((["--quick"] if args.quick else [])
                         + ([f"--repeat={args.repeat}"] if args.repeat != 5 else []))

    op_type, dtype = OP_TYPES[args.dtype], np.dtype(args.dtype)
    engines = sorted({e for (t, d, e) in registry.kernels()
                      if t == op_type and d == 0 and e}, reverse=True)
    impls = {f"caffe2lite {e}": caffe2lite_runner(op_type, e) for e in engines}
    impls["numpy np.unique"] = numpy_unique
    if torch_runner() is not None:
        import torch
        impls["torch.embedding_renorm_"] = torch_runner()
        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    else:
        torch_note = "torch not installed: no torch column"

    bandwidth = copy_bandwidth()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}, {torch_note}")
    print(f"# copy bandwidth (np.copyto, read + write): {bandwidth / 1e9:.1f} GB/s; "
          f"{op_type} on {dtype} tables")
    rng = np.random.default_rng(0)
    results = []
    for n_rows, block, n in (QUICK_SHAPES if args.quick else SHAPES):
        table0 = (rng.standard_normal((n_rows, block), dtype=np.float32) + 1.0).astype(dtype)
        indices = rng.integers(0, n_rows, n, dtype=np.int64)
        touched = np.unique(indices)
        assert (np.linalg.norm(table0[touched].astype(np.float32), axis=1) > NORM).all()
        touched_bytes = touched.size * block * dtype.itemsize
        bound = 2 * touched_bytes / bandwidth
        row = {"shape": (n_rows, block, n), "touched": touched.size, "bound": bound,
               "allowed": touched_bytes + n_rows, "times": {}, "peaks": {}}
        expected = None
        for name, fn in impls.items():
            is_torch = name.startswith("torch")
            seconds, peak, out = measure(fn, table0, indices,
                                         args.torch_repeat if is_torch else args.repeat,
                                         trace=not is_torch)
            if expected is None:
                expected = out
            else:
                tol = 1e-5 if dtype == np.float32 else 2e-3
                np.testing.assert_allclose(out.astype(np.float32), expected.astype(np.float32),
                                           rtol=tol, atol=tol)
            row["times"][name], row["peaks"][name] = seconds, peak
        results.append(row)
        print_row(row)
    print_table(results, impls)
    scaling(impls, args.repeat, dtype, quick=args.quick)
    if args.plot:
        plot(results, impls, args.plot, op_type, dtype)
    return 0


def print_row(row):
    n_rows, block, n = row["shape"]
    print(f"# {n_rows} x {block}, {n} indices done: "
          + ", ".join(f"{k} {v[0] * 1e3:.1f} ms" for k, v in row["times"].items()))


def print_table(results, impls):
    names = list(impls)
    ours = [k for k in names if k.startswith("caffe2lite")]
    head = (["table (N x D), indices", "touched rows", "bound ms"]
            + [f"{k} ms (best / median)" for k in names]
            + [f"{k}: vs torch / x bound / extra MB (allowed)" for k in ours]
            + ["numpy np.unique: x bound / extra MB"])
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in results:
        n_rows, block, n = row["shape"]
        times, peaks = row["times"], row["peaks"]
        cells = [f"{n_rows:,} x {block}, {n:,}", f"{row['touched']:,}",
                 f"{row['bound'] * 1e3:.2f}"]
        cells += [f"{times[k][0] * 1e3:.1f} / {times[k][1] * 1e3:.1f}" for k in names]
        times = {k: v[0] for k, v in times.items()}
        torch_t = times.get("torch.embedding_renorm_")
        for k in ours:
            vs_torch = f"{torch_t / times[k]:.0f}x" if torch_t else "n/a"
            ok = ((torch_t is None or torch_t / times[k] >= TARGET_VS_TORCH)
                  and times[k] / row["bound"] <= TARGET_VS_BOUND
                  and peaks[k] <= row["allowed"])
            cells.append(f"{vs_torch} / {times[k] / row['bound']:.1f}x / "
                         f"{peaks[k] / 1e6:.2f} ({row['allowed'] / 1e6:.2f})"
                         f"{'' if ok else ' MISSED'}")
        k = "numpy np.unique"
        cells.append(f"{times[k] / row['bound']:.1f}x / {peaks[k] / 1e6:.2f}")
        print("| " + " | ".join(cells) + " |")
    print(f"\nTargets: >= {TARGET_VS_TORCH:.0f}x faster than torch.embedding_renorm_, "
          f"<= {TARGET_VS_BOUND:.0f}x the memory bound, extra memory <= touched rows + "
          f"1 byte per table row ('MISSED' marks a miss).")


def scaling(impls, repeat, dtype, quick=False):
    """The same indices on a table 10x taller: the cost should not follow the table."""
    n_rows, block, n = (20_000, 32, 2_000) if quick else (200_000, 32, 20_000)
    rng = np.random.default_rng(1)
    indices = rng.integers(0, n_rows, n, dtype=np.int64)
    ours = {k: v for k, v in impls.items() if k.startswith("caffe2lite")}
    scratch = np.ones(2 ** 27, np.float32)  # 512 MB, copied between runs to flush caches
    evict = (np.empty_like(scratch), scratch)
    print(f"\nSame {n:,} indices, table {n_rows:,} x {block} vs 10x taller "
          f"(caches flushed before each run; best / median):")
    for rows in (n_rows, 10 * n_rows):
        table0 = (rng.standard_normal((rows, block), dtype=np.float32) + 1.0).astype(dtype)
        cells = []
        for name, fn in ours.items():
            seconds, peak, _ = measure(fn, table0, indices, repeat, evict=evict)
            cells.append(f"{name} {seconds[0] * 1e3:.2f} / {seconds[1] * 1e3:.2f} ms, "
                         f"extra {peak / 1e6:.2f} MB")
        print(f"  {rows:>10,} rows ({table0.nbytes / 1e6:.0f} MB): " + "; ".join(cells))


def plot(results, impls, path, op_type, dtype):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(impls) + ["memory bound"]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [(r["bound"] if name == "memory bound" else r["times"][name][0]) * 1e3
                  for r in results]
        ax.bar([x + i * width for x in range(len(results))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(results))])
    ax.set_xticklabels([f"{r['shape'][0]:,} x {r['shape'][1]}\n{r['shape'][2]:,} indices"
                        for r in results])
    ax.set_yscale("log")
    ax.set_ylabel("ms (best of the repetitions, log scale)")
    ax.set_title(f"{op_type} on CPU, {dtype} tables (max-norm, every touched row above "
                 f"the bound)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(names),
              fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


if __name__ == "__main__":
    sys.exit(main())
