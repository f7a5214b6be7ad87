"""A rehearsal of tools/gpu_check.sh on a machine without a GPU.

The ``cuda``-marked tests and the CUDA benchmark only meet real CuPy on a GPU
machine, which this project borrows rarely; a slip in their own Python (a
NumPy-only call, a wrong attribute) would then cost that whole borrowed
run.  Here both run against tests/fake_cupy.py (NumPy posing as two GPUs,
the CUDA kernels emulated on the host).  Passing says the code paths and the
tests hold together -- not that anything works on a GPU: that is only shown
by tools/gpu_check.sh on one.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_cupy import make_fake_cupy

from caffe2lite.runtime import devices

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_cuda_test_passes_on_the_fake_gpu():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
         "--fake-cuda", "-rs", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary  # every one ran


def _load_cuda_benchmark():
    spec = importlib.util.spec_from_file_location(
        "bench_sparse_normalize_cuda", ROOT / "tools" / "bench_sparse_normalize_cuda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_benchmark_runs_on_the_fake_gpu(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", make_fake_cupy(device_count=1))
    monkeypatch.setattr(devices, "_contexts", {})
    bench = _load_cuda_benchmark()
    # Tiny shapes and copy: the emulated kernels take seconds on real-sized tables.
    monkeypatch.setattr(bench, "QUICK_SHAPES", [(300, 8, 50), (3000, 4, 50)])
    monkeypatch.setattr(bench, "COPY_BYTES", 1 << 20)
    monkeypatch.setattr(bench, "torch_runner", lambda: (None, "torch left out"))
    assert bench.main(["--quick", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 3")]
    assert len(rows) == 2, out  # one table row per shape, engines compared inside main
    assert "caffe2lite DEFAULT us" in out and "caffe2lite CUPY us" in out
    assert np.isfinite([float(c) for c in rows[0].split("|")[4:6]]).all(), rows[0]
