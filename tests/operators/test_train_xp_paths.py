"""The training kernels' non-NumPy code paths, exercised with a CuPy-like array module.

No GPU is needed: the CPU context's ``xp`` is swapped for a proxy that is not
``numpy`` and whose ``argsort`` refuses ``kind=`` (as CuPy's does), so the
branches written for CuPy run and must give the NumPy results.
"""

import types

import numpy as np
import pytest

from caffe2lite.runtime.devices import cpu
from helpers import run_op

F = np.float32


def _argsort(a, axis=-1, kind=None):
    assert kind is None, "CuPy's argsort takes no kind"
    return np.argsort(a, axis=axis, kind="stable")  # CuPy's sort is stable


@pytest.fixture
def cupy_like(monkeypatch):
    names = [n for n in dir(np) if not n.startswith("_")]
    proxy = types.SimpleNamespace(**{n: getattr(np, n) for n in names})
    proxy.argsort = _argsort
    monkeypatch.setattr(cpu.DeviceContext, "xp", proxy)


def sparse_adagrad(indices):
    param = np.arange(12, dtype=F).reshape(4, 3)
    return run_op("SparseAdagrad", {"p": param, "m": np.ones((4, 3), F), "i": indices,
                                    "g": np.ones((indices.size, 3), F), "lr": np.ones(1, F)},
                  ["p", "m"])


def gather_to_dense():
    data = np.arange(1, 9, dtype=F)
    ranges = np.array([[[2, 4], [0, 2]], [[0, 0], [6, 2]]], np.int64)
    key = np.array([0, 1, 3, 2, 1, 0, 1, 0], np.int64)
    return run_op("GatherRangesToDense", {"d": data, "r": ranges, "k": key}, ["a", "b"],
                  lengths=[4, 2])


def scatter_assign():
    return run_op("ScatterAssign", {"d": np.zeros(3, F), "i": np.array([2, 0, 2], np.int32),
                                    "s": np.array([1, 2, 3], F)}, ["d"])


@pytest.mark.parametrize("case", [lambda: sparse_adagrad(np.array([1, 3, 1, 1], np.int64)),
                                  gather_to_dense, scatter_assign])
def test_cupy_like_paths_match_numpy(case, request):
    want = case()
    request.getfixturevalue("cupy_like")
    got = case()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
