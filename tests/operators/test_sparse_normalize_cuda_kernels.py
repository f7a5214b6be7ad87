"""The fused SparseNormalize CUDA kernels, run on the host (tests/cuda_emulation.py).

The exact CUDA C++ the operator compiles with NVRTC is built here by the host
compiler with CUDA stand-ins and launched the way the operator launches it
(claim, then rows), on small grids so the grid-stride loops wrap.  Checked
against a NumPy reference written from the documented semantics: duplicates
normalised once, both index types, both table types, the vector and scalar
paths, rows longer than the register cache, the claim scratch left free, and
a bad index leaving the table untouched.  Skips without a C++20 compiler.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from cuda_emulation import RawModule, compiler

from caffe2lite.operators.sparse_normalize import _FREE, cuda_source

pytestmark = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler (g++/clang++)")

SPECS = [(np.float32, np.int64, 4), (np.float32, np.int32, 1),
         (np.float16, np.int32, 8), (np.float16, np.int64, 1)]
TOL = {np.float32: 1e-6, np.float16: 1e-3}


def reference(param, indices, use_max_norm, norm):
    out = param.copy()
    norm = np.float32(norm)
    for r in np.unique(indices):
        row = out[r].astype(np.float32)
        n = np.sqrt(np.sum(row * row, dtype=np.float32))
        if not (use_max_norm and n <= norm):
            out[r] = (row * (norm / (n + np.float32(1e-12)))).astype(out.dtype)
    return out


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: f"{np.dtype(s[0])}-"
                                                           f"{np.dtype(s[1])}-vec{s[2]}")
def kernels(request):
    table_dtype, index_dtype, vec = request.param
    module = RawModule(code=cuda_source(table_dtype, index_dtype, vec))
    return module, table_dtype, index_dtype, vec


def launch(kernels, param, indices, use_max_norm=True, norm=1.0, grid=(3, 2), block=64,
           bad_before=5):
    """The operator's two launches; returns (bad count of this call, owner scratch after).

    The bad counter starts at ``bad_before``, as after earlier failed calls.
    """
    module, _, _, vec = kernels
    n_rows, width = param.shape[0], int(np.prod(param.shape[1:], dtype=np.int64))
    owner = np.full(n_rows + 1, _FREE, np.int32)
    bad = np.full(1, bad_before, np.uint64)
    k = np.int64(indices.size)
    module.get_function("sparse_normalize_claim")(
        (grid[0],), (256,), (indices, k, np.int64(n_rows), owner, bad))
    module.get_function("sparse_normalize_rows")(
        (grid[1],), (block,), (param, indices, k, np.int64(n_rows), np.int64(width // vec),
                               owner, bad, np.uint64(bad_before), np.float32(norm),
                               np.int32(use_max_norm)))
    return int(bad[0]) - bad_before, owner


@pytest.mark.parametrize("width", [16, 64, 1024])  # 1024: beyond the registers' cache
@pytest.mark.parametrize("use_max_norm", [True, False])
def test_kernels_match_reference(kernels, width, use_max_norm):
    _, table_dtype, index_dtype, vec = kernels
    if width % vec:
        pytest.skip("the operator picks the vector kernel only when rows divide into packs")
    rng = np.random.default_rng(width)
    param = (rng.standard_normal((37, width)) * rng.uniform(0.02, 0.3, (37, 1))
             * np.sqrt(64 / width)).astype(table_dtype)
    indices = rng.integers(0, 37, 90).astype(index_dtype)  # many duplicates
    expected = reference(param, indices, use_max_norm, 0.9)
    before = param.copy()
    bad, owner = launch(kernels, param, indices, use_max_norm, 0.9)
    assert bad == 0
    assert (owner == _FREE).all(), "claims must be freed for the next call"
    np.testing.assert_allclose(param.astype(np.float64), expected.astype(np.float64),
                               rtol=TOL[table_dtype], atol=TOL[table_dtype])
    untouched = np.setdiff1d(np.arange(37), indices)
    np.testing.assert_array_equal(param[untouched], before[untouched])
    if use_max_norm:  # some rows were within the bound: bit-identical
        within = [r for r in np.unique(indices)
                  if np.linalg.norm(before[r].astype(np.float32)) <= np.float32(0.9)]
        assert within, "the case should hold rows within the bound"
        np.testing.assert_array_equal(param[within], before[within])


def test_rank3_rows_and_edge_values(kernels):
    _, table_dtype, index_dtype, vec = kernels
    param = np.zeros((5, 2, 4), table_dtype)
    param[0, 0, 0] = 2.0  # exactly at the bound
    param[1, 0, :2] = [3.0, 4.0]
    param[3, 1, 0] = np.nan
    indices = np.array([3, 1, 0, 2, 1], index_dtype)
    bad, _ = launch(kernels, param, indices, True, 2.0)
    assert bad == 0
    assert param[0, 0, 0] == 2.0
    np.testing.assert_allclose(param[1, 0, :2].astype(np.float32), [1.2, 1.6],
                               rtol=TOL[table_dtype])
    assert not param[2].any() and np.isnan(param[3, 1]).all()


def test_bad_index_counts_and_writes_nothing(kernels):
    _, table_dtype, index_dtype, _ = kernels
    param = np.random.default_rng(3).standard_normal((10, 8)).astype(table_dtype) * 5
    before = param.copy()
    indices = np.array([2, 9, -1, 4, 10, 2], index_dtype)
    bad, owner = launch(kernels, param, indices)
    assert bad == 2
    np.testing.assert_array_equal(param, before)
    assert (owner == _FREE).all()


def test_empty_table_rows_and_single_warp(kernels):
    _, table_dtype, index_dtype, vec = kernels
    param = np.full((4, 8), 3.0, table_dtype)
    indices = np.array([1, 1, 1], index_dtype)
    bad, _ = launch(kernels, param, indices, False, 0.5, grid=(1, 1), block=32)
    assert bad == 0
    np.testing.assert_allclose(np.linalg.norm(param[1].astype(np.float32)), 0.5,
                               rtol=TOL[table_dtype])
    np.testing.assert_array_equal(param[[0, 2, 3]], 3.0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc (CUDA toolkit) on PATH")
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_cuda_source_compiles_without_spills(spec, tmp_path):
    """What NVRTC compiles on a GPU, compiled here by nvcc (no GPU needed): no errors,
    and the row cache stays in registers (no local-memory spills)."""
    source = tmp_path / "kernels.cu"
    source.write_text(cuda_source(*spec))
    done = subprocess.run(["nvcc", "-std=c++14", "-arch=sm_80", "-cubin", "-Xptxas", "-v",
                           "-o", str(tmp_path / "kernels.cubin"), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spills = [line for line in done.stderr.splitlines() if "spill stores" in line]
    assert len(spills) == 2, done.stderr  # one line per kernel
    assert all(re.search(r"(?<!\d)0 bytes spill stores, 0 bytes spill loads", line)
               for line in spills), done.stderr
