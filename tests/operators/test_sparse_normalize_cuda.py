"""SparseNormalize / Float16SparseNormalize on CUDA: the CPU contract, on the device.

Every case is checked against a plain-NumPy reference written here from the
documented semantics (shared/reference/sparse_normalize.md), and -- on a GPU
-- CPU and CUDA must agree on the same random cases (float32 1e-6, float16
1e-3), bad input included.  Both engines also run on NumPy posing as CuPy
(tests/fake_cupy.py), so the CUPY engine's logic is exercised
on every machine, and so do the fused kernels with their launch code, their
CUDA C++ run on the host by tests/cuda_emulation.py; the ``cuda``-marked
variants run everything on a real GPU.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from cuda_emulation import compiler
from device_utils import (CUDA_MARKS, TOLERANCE, assert_close, assert_devices_agree, device_option,
                          requires_cuda, run_on)
from fake_cupy import make_fake_cupy

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, EnforceError
from caffe2lite.runtime import devices

OPS = {"SparseNormalize": np.float32, "Float16SparseNormalize": np.float16}
CUDA0 = device_option("CUDA", 0)


def reference(param, indices, use_max_norm=True, norm=1.0):
    """Each distinct row once: n = ||row||_2 in float32; unless use_max_norm and
    n <= norm, row *= norm / (n + 1e-12)."""
    out = param.copy()
    norm = np.float32(norm)
    for r in np.unique(np.asarray(indices).ravel()):
        row = out[r].astype(np.float32)
        n = np.sqrt(np.sum(row * row, dtype=np.float32))
        if use_max_norm and n <= norm:
            continue
        out[r] = (row * (norm / (n + np.float32(1e-12)))).astype(out.dtype)
    return out


def random_case(seed, dtype, shape=(40, 3, 4), n_idx=30, index_dtype=np.int64):
    """A table whose rows straddle the bound, indices with duplicates."""
    rng = np.random.default_rng(seed)
    param = (rng.standard_normal(shape) * rng.uniform(0.1, 3.0, size=(shape[0],) + (1,) *
                                                      (len(shape) - 1))).astype(dtype)
    indices = rng.integers(0, shape[0], size=n_idx).astype(index_dtype)
    indices[: n_idx // 3] = indices[n_idx // 3: 2 * (n_idx // 3)]  # duplicates
    return param, indices


def _op(op_type, engine=None, **args):
    return core.CreateOperator(op_type, ["param", "indices"], ["param"], engine=engine, **args)


@pytest.fixture(params=["fake", pytest.param("real", marks=CUDA_MARKS)])
def gpu(request, monkeypatch):
    """CuPy for the CUDA device: NumPy posing as one GPU, or the real one on a GPU machine."""
    monkeypatch.setattr(devices, "_contexts", {})
    if request.param == "fake":
        monkeypatch.setitem(sys.modules, "cupy", make_fake_cupy(device_count=1))
    return request.param


def _engines(gpu):
    """DEFAULT (the fused RawKernels) and CUPY.  On the fake CuPy the fused kernels run
    through the host emulation (tests/cuda_emulation.py), which needs a C++ compiler."""
    return ["", "CUPY"] if gpu == "real" or compiler() else ["CUPY"]


@pytest.mark.parametrize("op_type", sorted(OPS))
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("use_max_norm", [True, False])
@pytest.mark.parametrize("shape", [(40, 3, 4), (25,), (64, 128), (50, 7)])
def test_matches_reference(gpu, op_type, index_dtype, use_max_norm, shape):
    dtype = OPS[op_type]
    for engine in _engines(gpu):
        for seed in range(3):
            param, indices = random_case(seed, dtype, shape, index_dtype=index_dtype)
            norm = float(np.random.default_rng(seed).uniform(0.5, 2.0))
            blobs, error = run_on(_op(op_type, engine, use_max_norm=use_max_norm, norm=norm),
                                  {"param": param, "indices": indices}, "CUDA")
            assert error is None, error
            assert_close(blobs["param"], reference(param, indices, use_max_norm, norm),
                         f"{op_type} engine {engine or 'DEFAULT'} seed {seed}")


@pytest.mark.parametrize("op_type", sorted(OPS))
def test_edge_rows(gpu, op_type):
    """A row exactly at the bound is untouched, a zero row stays zero, NaN stays NaN,
    empty indices change nothing, rank-2 indices are flattened."""
    dtype = OPS[op_type]
    param = np.zeros((6, 4), dtype)
    param[0] = [2.0, 0, 0, 0]  # norm exactly 2 = the bound
    param[1] = [3.0, 4.0, 0, 0]
    param[3] = [np.nan, 1.0, 0, 0]
    param[4] = [0.5, 0.5, 0.5, 0.5]
    for engine in _engines(gpu):
        blobs, error = run_on(_op(op_type, engine, norm=2.0),
                              {"param": param, "indices": np.array([[0, 1], [2, 3]])}, "CUDA")
        assert error is None, error
        out = blobs["param"]
        np.testing.assert_array_equal(out[0], param[0])
        np.testing.assert_allclose(out[1], [1.2, 1.6, 0, 0], rtol=TOLERANCE[np.dtype(dtype)])
        np.testing.assert_array_equal(out[2], 0)
        assert np.isnan(out[3]).all()
        np.testing.assert_array_equal(out[4:], param[4:])
        blobs, error = run_on(_op(op_type, engine), {"param": param,
                                                     "indices": np.zeros(0, np.int32)}, "CUDA")
        assert error is None and np.array_equal(blobs["param"], param, equal_nan=True)


@pytest.mark.parametrize("indices, match", [
    (np.array([0, 5, -1]), r"holds -1 at flat position 2, outside \[0, 10\)"),
    (np.array([10, 3], np.int32), r"holds 10 at flat position 0, outside \[0, 10\)"),
    (np.array([1.0, 2.0]), r"'indices'.*must be an int32 or int64 array, got float64"),
])
def test_bad_indices_leave_table_untouched(gpu, indices, match):
    param = np.arange(40, dtype=np.float32).reshape(10, 4)
    for engine in _engines(gpu):
        blobs, error = run_on(_op("SparseNormalize", engine),
                              {"param": param, "indices": indices}, "CUDA")
        assert type(error) is EnforceError, error
        assert "op SparseNormalize" in str(error)
        assert re.search(match, str(error)), str(error)
        np.testing.assert_array_equal(blobs["param"], param)


def test_calls_after_a_failed_call_still_write(gpu):
    """The fused engine keeps its scratch (and bad counter) between calls."""
    workspace.FeedBlob("param", np.full((6, 4), 2.0, np.float32), CUDA0)
    for engine in _engines(gpu):
        for indices, fails in (([1, 7], True), ([2, 2], False), ([9], True), ([3], False)):
            workspace.FeedBlob("indices", np.array(indices, np.int32), CUDA0)
            op = _op("SparseNormalize", engine, device_option=CUDA0)
            if fails:
                with pytest.raises(EnforceError, match="outside"):
                    workspace.RunOperatorOnce(op)
            else:
                workspace.RunOperatorOnce(op)
        out = workspace.FetchBlob("param")
        np.testing.assert_allclose(out[[2, 3]], 0.5, rtol=1e-6)
        np.testing.assert_array_equal(out[[0, 1, 4, 5]], 2.0)
        workspace.FeedBlob("param", np.full((6, 4), 2.0, np.float32), CUDA0)


def test_bad_arguments_and_dtypes(gpu):
    param = np.ones((4, 2), np.float32)
    idx = np.array([1])
    for engine in _engines(gpu):
        _, error = run_on(_op("SparseNormalize", engine, norm=0.0),
                          {"param": param, "indices": idx}, "CUDA")
        assert isinstance(error, ArgumentError) and "'norm' must be > 0" in str(error)
        blobs, error = run_on(_op("Float16SparseNormalize", engine),
                              {"param": param, "indices": idx}, "CUDA")
        assert isinstance(error, EnforceError) and "must be a float16 array" in str(error)
        np.testing.assert_array_equal(blobs["param"], param)


def test_host_table_on_cuda_op_is_refused(gpu):
    workspace.FeedBlob("param", np.ones((4, 2), np.float32))
    workspace.FeedBlob("indices", np.array([1]), CUDA0)
    op = _op("SparseNormalize", device_option=CUDA0)
    with pytest.raises(EnforceError, match=r"input 0 \('param'\) is on CPU"):
        workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("param"), 1.0)


def test_updates_the_blob_in_place(gpu):
    workspace.FeedBlob("param", np.full((5, 3), 2.0, np.float32), CUDA0)
    workspace.FeedBlob("indices", np.array([4, 0, 4], np.int32), CUDA0)
    before = workspace.current().blob_dict["param"]
    for engine in _engines(gpu):
        workspace.RunOperatorOnce(_op("SparseNormalize", engine, device_option=CUDA0))
        assert workspace.current().blob_dict["param"] is before
    out = workspace.FetchBlob("param")
    np.testing.assert_allclose(out[[0, 4]], 1 / np.sqrt(3), rtol=1e-6)
    np.testing.assert_array_equal(out[1:4], 2.0)


@pytest.mark.parametrize("op_type", sorted(OPS))
@pytest.mark.parametrize("engine", ["", "CUPY"])
@pytest.mark.parametrize("seed", range(6))
def test_cpu_and_cuda_agree(gpu, op_type, engine, seed):
    if engine not in _engines(gpu):
        pytest.skip("the fused kernels' host emulation needs a C++ compiler")
    rng = np.random.default_rng(seed)
    shape = [(30, 8), (17,), (12, 3, 5), (64, 256), (9, 33)][seed % 5]
    param, indices = random_case(seed, OPS[op_type], shape, n_idx=int(rng.integers(0, 50)),
                                 index_dtype=[np.int32, np.int64][seed % 2])
    if seed == 5:
        indices[-1] = shape[0]  # out of range: both fail, tables untouched
    op = _op(op_type, engine, use_max_norm=bool(seed % 3), norm=float(rng.uniform(0.3, 3)))
    assert_devices_agree(op, {"param": param, "indices": indices}, needs_real_cuda=False)


# -- real GPU only -------------------------------------------------------------
@requires_cuda
def test_fused_kernel_is_deterministic_and_handles_big_rows():
    # block 1000 floats: 250 float4 packs, beyond the 4*32 cached in registers
    param, indices = random_case(7, np.float32, (300, 1000), n_idx=2000)
    results = [run_on(_op("SparseNormalize", use_max_norm=False), {"param": param,
                                                                   "indices": indices},
                      "CUDA")[0]["param"] for _ in range(2)]
    np.testing.assert_array_equal(results[0].view(np.uint32), results[1].view(np.uint32))
    assert_close(results[0], reference(param, indices, False))


@requires_cuda
@pytest.mark.slow
def test_table_over_2_pow_31_elements():
    """64-bit row offsets: rows past element 2**31 of a float16 table (4 GiB)."""
    import cupy

    rows, block = (1 << 31) // 64 + 8, 64
    try:
        table = cupy.zeros((rows, block), dtype=cupy.float16)
    except cupy.cuda.memory.OutOfMemoryError:
        pytest.skip("needs 4.3 GB of free GPU memory")
    written = np.array([rows - 1, 3, rows - 5, rows - 2], np.int64)
    values = np.random.default_rng(0).standard_normal((4, block)).astype(np.float16) * 4
    table[cupy.asarray(written)] = cupy.asarray(values)
    workspace.current().blob_dict["param"] = table
    workspace.FeedBlob("indices", np.array([rows - 1, 3, rows - 5, rows - 1]), CUDA0)
    workspace.RunOperatorOnce(_op("Float16SparseNormalize", device_option=CUDA0))
    got = cupy.asnumpy(table[cupy.asarray(written)])
    assert_close(got[:3], reference(values[:3], np.arange(3)), "rows beyond 2**31 elements")
    np.testing.assert_array_equal(got[3], values[3])  # not named: untouched
    del table
    workspace.ResetWorkspace()
    cupy.get_default_memory_pool().free_all_blocks()
