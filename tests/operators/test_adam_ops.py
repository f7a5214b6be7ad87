"""Adam, SparseAdam (with RAdam), RowWiseSparseAdam and SmartDecaySparseAdam against
NumPy loops written from Caffe2's documented update (adam_op.cc's schema docs)."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import run_op

RNG = np.random.default_rng(7)
B1, B2, EPS = 0.8, 0.95, 0.01


def adam_reference(p, m1, m2, g, lr, it):
    """One Adam step of one element/row: (param, m1, m2, grad_o)."""
    t = it + 1
    corr = np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
    m1 = B1 * m1 + (1 - B1) * g
    m2 = B2 * m2 + (1 - B2) * g * g
    step = corr * m1 / (np.sqrt(m2) + EPS)
    return p + lr * step, m1, m2, step


def arrays(*shape, positive=False):
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) if positive else a


@pytest.mark.parametrize("outputs", [3, 4])
def test_dense_adam(outputs):
    p, m1, g = arrays(3, 4), arrays(3, 4), arrays(3, 4)
    m2 = arrays(3, 4, positive=True)
    lr, it = np.array([-0.1], np.float32), np.array([4], np.int64)
    names = ["p_out", "m1_out", "m2_out", "g_out"][:outputs]
    got = run_op("Adam", dict(p=p, m1=m1, m2=m2, g=g, lr=lr, it=it), names, beta1=B1, beta2=B2,
                 epsilon=EPS)
    want = adam_reference(p.astype(np.float64), m1, m2, g, -0.1, 4)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def sparse_reference(p, m1, m2, idx, g, lr, it, row_wise=False, radam=False):
    p, m1, m2 = p.astype(np.float64), m1.astype(np.float64), m2.astype(np.float64)
    steps = np.zeros_like(g, dtype=np.float64)
    t = it + 1
    rho_inf = 2 / (1 - B2) - 1
    rho_t = rho_inf - 2 * t * B2 ** t / (1 - B2 ** t)
    for i, r in enumerate(idx):  # one index at a time, as Caffe2's loop
        gi = g[i].astype(np.float64)
        m1[r] = B1 * m1[r] + (1 - B1) * gi
        if row_wise:
            m2[r] = B2 * m2[r] + (1 - B2) * np.mean(gi * gi)
        else:
            m2[r] = B2 * m2[r] + (1 - B2) * gi * gi
        corr = np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        if radam and rho_t < 5:
            step = m1[r] / (1 - B1 ** t)
        else:
            r_t = 1.0
            if radam:
                r_t = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                              / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            step = r_t * corr * m1[r] / (np.sqrt(m2[r]) + EPS)
        p[r] += lr * step
        steps[i] = step
    return p, m1, m2, steps


@pytest.mark.parametrize("op_type,radam,it", [("SparseAdam", False, 3),
                                              ("SparseAdam", True, 2),    # rho_t < 5
                                              ("SparseAdam", True, 50),   # rectified
                                              ("RowWiseSparseAdam", False, 9)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_adams_follow_the_indices_in_order(op_type, radam, it, index_dtype):
    row_wise = op_type == "RowWiseSparseAdam"
    p, m1 = arrays(5, 3), arrays(5, 3)
    m2 = arrays(5, positive=True) if row_wise else arrays(5, 3, positive=True)
    idx = np.array([3, 0, 3, 4, 3], index_dtype)  # row 3 three times
    g = arrays(5, 3)
    lr, t = np.array([-0.05], np.float32), np.array([it], np.int64)
    args = dict(beta1=B1, beta2=B2, epsilon=EPS)
    if radam:
        args["enableRAdam"] = True
    got = run_op(op_type, dict(p=p, m1=m1, m2=m2, idx=idx, g=g, lr=lr, it=t),
                 ["p", "m1", "m2", "g_out"], **args)
    want = sparse_reference(p, m1, m2, idx, g, -0.05, it, row_wise, radam)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_smart_decay_sparse_adam_catches_rows_up():
    p, m1, g = arrays(4, 2), arrays(4, 2), arrays(3, 2)
    m2 = arrays(4, 2, positive=True)
    last_seen = np.array([0, 7, 3, 8], np.int64)
    idx = np.array([1, 2, 0], np.int64)
    lr, it = 0.3, 8  # t = 9
    got = run_op("SmartDecaySparseAdam",
                 dict(p=p, m1=m1, m2=m2, last=last_seen, idx=idx, g=g,
                      lr=np.array([lr], np.float32), it=np.array([it], np.int64)),
                 ["p", "m1", "m2", "last"], beta1=B1, beta2=B2, epsilon=EPS)
    want_p, want_m1, want_m2 = (a.astype(np.float64) for a in (p, m1, m2))
    want_last = last_seen.copy()
    t = it + 1
    for i, r in enumerate(idx):
        k = t - last_seen[r]
        want_m2[r] = B2 ** k * want_m2[r] + (1 - B2) * g[i] * g[i]
        for step in range(k):  # the k missed steps, the gradient only in the last
            want_m1[r] *= B1
            if step == k - 1:
                want_m1[r] += (1 - B1) * g[i]
            want_p[r] += lr * want_m1[r] / (np.sqrt(want_m2[r]) + EPS)
        want_last[r] = t
    for a, b in zip(got, (want_p, want_m1, want_m2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[3], want_last)


def test_adam_refusals_leave_blobs_unchanged():
    base = dict(p=arrays(4, 2), m1=arrays(4, 2), m2=arrays(4, 2, positive=True))
    sparse = core.CreateOperator("SparseAdam", ["p", "m1", "m2", "idx", "g", "lr", "it"],
                                 ["p", "m1", "m2"])
    good = dict(g=arrays(2, 2), lr=np.array([0.1], np.float32), it=np.array([1], np.int64))
    assert_fails_unchanged(sparse, {**base, "idx": np.array([1, 4]), **good}, EnforceError,
                           "outside")
    assert_fails_unchanged(sparse, {**base, "idx": np.array([1, 2]), **good,
                                    "it": np.array([1.0], np.float32)}, EnforceError,
                           "iteration counter")
    dense = core.CreateOperator("Adam", ["p", "m1", "m2", "g", "lr", "it"], ["p", "m1", "m2"])
    assert_fails_unchanged(dense, {**base, **good, "g": arrays(3, 2)}, EnforceError,
                           "elements")
    workspace.ResetWorkspace()
    smart = core.CreateOperator("SmartDecaySparseAdam",
                                ["p", "m1", "m2", "last", "idx", "g", "lr", "it"],
                                ["p", "m1", "m2", "last"])
    assert_fails_unchanged(smart, {**base, "last": np.array([0, 5, 0, 0], np.int64),
                                   "idx": np.array([1, 2]), **good}, EnforceError,
                           "seen at an iteration after")
