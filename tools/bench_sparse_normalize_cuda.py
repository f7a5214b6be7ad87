"""Benchmark SparseNormalize on CUDA against torch.embedding_renorm_ and the copy bandwidth.

Side by side, in one process, on GPU 0, for N x D float32 tables and n random
int64 indices (the CPU benchmark's shapes, plus each with 10x the rows: the
cost must not grow with the table), every touched row above the bound
(max-norm, norm=1):

* caffe2lite on CUDA, each engine (DEFAULT = the fused kernels, CUPY = the
  CuPy composition), run as a created net (``RunNet``) on the table in place;
* ``torch.embedding_renorm_`` on the same GPU (when torch.cuda.is_available());
* the bound: bytes of the touched rows read and written, over the
  device-to-device copy bandwidth measured here (``cupy.copyto`` of 1 GiB).

Each repetition starts from a fresh device copy of the table (made outside
the timed region); a timed call ends with a device synchronisation.  Times
are medians.  Targets: >= 3x faster than torch, >= 50% of copy bandwidth.

    python tools/bench_sparse_normalize_cuda.py [--repeat 20] [--quick]

(``tools/bench_sparse_normalize.py --device cuda`` runs this.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from bench_sparse_normalize import QUICK_SHAPES as CPU_QUICK_SHAPES  # noqa: E402
from bench_sparse_normalize import SHAPES as CPU_SHAPES  # noqa: E402

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.proto import caffe2_pb2  # noqa: E402

# The CPU benchmark's shapes, and each with 10x the rows (same indices count).
SHAPES = CPU_SHAPES + [(10 * n, d, k) for n, d, k in CPU_SHAPES]
QUICK_SHAPES = CPU_QUICK_SHAPES + [(10 * n, d, k) for n, d, k in CPU_QUICK_SHAPES]
NORM = 1.0
TARGET_VS_TORCH = 3.0
TARGET_OF_BANDWIDTH = 0.5
CUDA0 = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA, device_id=0)


def timed(cp, fn):
    cp.cuda.Device(0).synchronize()
    start = time.perf_counter()
    fn()
    cp.cuda.Device(0).synchronize()
    return time.perf_counter() - start


COPY_BYTES = 1 << 30  # far larger than any GPU's L2


def copy_bandwidth(cp, repeat=10):
    """Read + write bytes per second of a device-to-device copy of COPY_BYTES."""
    src = cp.ones(COPY_BYTES // 4, cp.float32)
    dst = cp.empty_like(src)
    cp.copyto(dst, src)
    best = min(timed(cp, lambda: cp.copyto(dst, src)) for _ in range(repeat))
    return 2 * COPY_BYTES / best


def caffe2lite_runner(engine):
    net = core.Net(f"bench_cuda_{engine or 'default'}")
    net.Proto().op.extend([core.CreateOperator(
        "SparseNormalize", ["w", "idx"], ["w"], engine=engine or None, use_max_norm=True,
        norm=NORM, device_option=CUDA0)])
    created = []

    def run(table, indices):
        blobs = workspace.current().blob_dict
        blobs["w"], blobs["idx"] = table, indices  # the device table itself
        if not created:
            workspace.CreateNet(net)
            created.append(True)
        workspace.RunNet(net.Name())

    return run


def torch_runner():
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} without CUDA"

    def run(table, indices):
        torch.embedding_renorm_(torch.from_dlpack(table), torch.from_dlpack(indices), NORM, 2.0)

    return run, f"torch {torch.__version__}"


def measure(cp, fn, table0, indices, repeat):
    fn(table0.copy(), indices)  # warm-up: kernel compilation, allocator
    times = []
    for _ in range(repeat):
        table = table0.copy()
        times.append(timed(cp, lambda: fn(table, indices)))
    return statistics.median(times), table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    args = parser.parse_args(argv)
    try:
        import cupy as cp
    except ImportError:
        print("CuPy is not installed: pip install 'caffe2lite[cuda]'", file=sys.stderr)
        return 2
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    impls = {"caffe2lite DEFAULT": caffe2lite_runner(""),
             "caffe2lite CUPY": caffe2lite_runner("CUPY")}
    torch_run, torch_note = torch_runner()
    if torch_run is not None:
        impls["torch.embedding_renorm_"] = torch_run
    bandwidth = copy_bandwidth(cp)
    print(f"# {name}, CuPy {cp.__version__}, CUDA runtime "
          f"{cp.cuda.runtime.runtimeGetVersion()}, {torch_note}")
    print(f"# device-to-device copy bandwidth (read + write): {bandwidth / 1e9:.0f} GB/s")
    rng, device_rng = np.random.default_rng(0), cp.random.default_rng(0)
    rows = []
    for n_rows, block, n in (QUICK_SHAPES if args.quick else SHAPES):
        try:  # drawn on the device: a 10M x 128 table would take a minute on the host
            table0 = device_rng.standard_normal((n_rows, block), dtype=cp.float32) + 1.0
        except cp.cuda.memory.OutOfMemoryError:
            print(f"# {n_rows} x {block}: skipped, not enough GPU memory")
            continue
        host_indices = rng.integers(0, n_rows, n, dtype=np.int64)
        indices = cp.asarray(host_indices)
        touched = np.unique(host_indices).size
        bound = 2 * touched * block * 4 / bandwidth
        row = {"shape": (n_rows, block, n), "touched": touched, "bound": bound, "times": {}}
        expected = None
        for label, fn in impls.items():
            seconds, out = measure(cp, fn, table0, indices, args.repeat)
            row["times"][label] = seconds
            if expected is None:
                expected = out
            else:
                cp.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        del table0, out, expected
        cp.get_default_memory_pool().free_all_blocks()
        rows.append(row)
        print(f"# {n_rows} x {block}, {n} indices: " + ", ".join(
            f"{k} {v * 1e6:.0f} us" for k, v in row["times"].items()))
    print_table(rows, list(impls))
    return 0


def print_table(rows, names):
    ours = [k for k in names if k.startswith("caffe2lite")]
    head = (["table (N x D), indices", "touched rows", "bound us"]
            + [f"{k} us" for k in names]
            + [f"{k}: vs torch / of copy bandwidth" for k in ours])
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        n_rows, block, n = row["shape"]
        times = row["times"]
        torch_t = times.get("torch.embedding_renorm_")
        cells = [f"{n_rows:,} x {block}, {n:,}", f"{row['touched']:,}",
                 f"{row['bound'] * 1e6:.0f}"] + [f"{times[k] * 1e6:.0f}" for k in names]
        for k in ours:
            share = row["bound"] / times[k]
            ok = share >= TARGET_OF_BANDWIDTH and (torch_t is None
                                                   or torch_t / times[k] >= TARGET_VS_TORCH)
            vs = f"{torch_t / times[k]:.1f}x" if torch_t else "n/a"
            cells.append(f"{vs} / {share:.0%}{'' if ok else ' MISSED'}")
        print("| " + " | ".join(cells) + " |")
    print(f"\nTargets: >= {TARGET_VS_TORCH:.0f}x faster than torch.embedding_renorm_ on CUDA, "
          f">= {TARGET_OF_BANDWIDTH:.0%} of the copy bandwidth on the touched bytes "
          f"('MISSED' marks a miss).")


if __name__ == "__main__":
    sys.exit(main())
