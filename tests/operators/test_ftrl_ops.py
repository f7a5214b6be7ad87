"""Ftrl, SparseFtrl and GFtrl against NumPy loops of the FTRL-Proximal update
(McMahan et al. 2013) as Caffe2's ftrl_op / gftrl_op state it."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op

RNG = np.random.default_rng(3)
ALPHA, BETA, L1, L2 = 0.1, 1.0, 0.05, 0.01


def ftrl_reference(w, n, z, g, alpha=ALPHA):
    """Elementwise FTRL on float64 copies: (w', n', z')."""
    new_n = n + g * g
    new_z = z + g - (np.sqrt(new_n) - np.sqrt(n)) / alpha * w
    new_w = np.where(np.abs(new_z) > L1,
                     (L1 * np.sign(new_z) - new_z) / ((BETA + np.sqrt(new_n)) / alpha + L2), 0)
    return new_w, new_n, new_z


def state(shape):
    w = RNG.standard_normal(shape).astype(np.float32)
    nz = np.stack([np.abs(RNG.standard_normal(shape)), RNG.standard_normal(shape)],
                  axis=-1).astype(np.float32)
    return w, nz


@pytest.mark.parametrize("alpha_input", [False, True])
def test_ftrl(alpha_input):
    w, nz = state((3, 4))
    g = RNG.standard_normal((3, 4)).astype(np.float32)
    inputs = dict(w=w, nz=nz, g=g)
    args = dict(beta=BETA, lambda1=L1, lambda2=L2)
    if alpha_input:
        inputs["alpha"] = np.array([0.3], np.float32)
    else:
        args["alpha"] = ALPHA
    got_w, got_nz = run_op("Ftrl", inputs, ["w", "nz"], **args)
    want = ftrl_reference(w.astype(np.float64), nz[..., 0], nz[..., 1], g,
                          0.3 if alpha_input else ALPHA)
    np.testing.assert_allclose(got_w, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_nz[..., 0], want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_nz[..., 1], want[2], rtol=1e-5, atol=1e-6)


def test_sparse_ftrl_repeated_rows_in_order():
    w, nz = state((5, 2))
    idx = np.array([4, 1, 4], np.int64)
    g = RNG.standard_normal((3, 2)).astype(np.float32)
    got_w, got_nz = run_op("SparseFtrl", dict(w=w, nz=nz, idx=idx, g=g), ["w", "nz"],
                           alpha=ALPHA, beta=BETA, lambda1=L1, lambda2=L2)
    ww, n, z = w.astype(np.float64), nz[..., 0].astype(np.float64), nz[..., 1].astype(np.float64)
    for i, r in enumerate(idx):
        ww[r], n[r], z[r] = ftrl_reference(ww[r], n[r], z[r], g[i])
    np.testing.assert_allclose(got_w, ww, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_nz, np.stack([n, z], axis=-1), rtol=1e-5, atol=1e-6)


def test_gftrl_zeroes_whole_input_features():
    w, nz = state((3, 4))  # 3 outputs, 4 input features (groups = columns)
    g = RNG.standard_normal((3, 4)).astype(np.float32)
    g[:, 2] = 0  # feature 2 gets no gradient ...
    nz[:, 2, 1] = 0.001  # ... and a tiny z: its group norm stays under the bound
    lam1 = 0.2
    got_w, got_nz = run_op("GFtrl", dict(w=w, nz=nz, g=g), ["w", "nz"], alpha=ALPHA, beta=BETA,
                           lambda1=lam1, lambda2=L2)
    n, z = nz[..., 0].astype(np.float64), nz[..., 1].astype(np.float64)
    new_n = n + g * g
    new_z = z + g - (np.sqrt(new_n) - np.sqrt(n)) / ALPHA * w
    want = np.zeros_like(new_z)
    bound = lam1 * np.sqrt(3)
    for j in range(4):
        norm = np.linalg.norm(new_z[:, j])
        if norm > bound:
            want[:, j] = new_z[:, j] * (bound / norm - 1) / ((BETA + np.sqrt(new_n[:, j])) / ALPHA
                                                             + L2)
    np.testing.assert_allclose(got_w, want, rtol=1e-5, atol=1e-6)
    assert np.all(got_w[:, 2] == 0)
    np.testing.assert_allclose(got_nz[..., 1], new_z, rtol=1e-5, atol=1e-6)


def test_ftrl_refusals_leave_blobs_unchanged():
    w, nz = state((3, 2))
    op = core.CreateOperator("Ftrl", ["w", "nz", "g", "a"], ["w", "nz"], alpha=0.1)
    assert_fails_unchanged(op, dict(w=w, nz=nz, g=np.ones((3, 2), np.float32),
                                    a=np.array([0.2], np.float32)), EnforceError,
                           "both input and argument")
    op = core.CreateOperator("SparseFtrl", ["w", "nz", "idx", "g"], ["w", "nz"])
    assert_fails_unchanged(op, dict(w=w, nz=nz[:, :1], idx=np.array([0]),
                                    g=np.ones((1, 2), np.float32)), EnforceError,
                           "2 per weight")
