"""RmsProp, Adadelta, SparseAdadelta, Wngrad, SparseWngrad, Storm, SparseStorm,
DecayAdagrad and LearningRateAdaption against NumPy loops written from the update
rules Caffe2's schemas document."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op

RNG = np.random.default_rng(11)


def rand(*shape, positive=False):
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.1 if positive else a


def close(got, want):
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rmsprop():
    g, ms, mom = rand(2, 3), rand(2, 3, positive=True), rand(2, 3)
    decay, momentum, eps, lr = 0.8, 0.5, 1e-3, 0.1
    got = run_op("RmsProp", dict(g=g, ms=ms, mom=mom, lr=np.array([lr], np.float32)),
                 ["g_o", "ms", "mom"], decay=decay, momentum=momentum, epsilon=eps)
    new_ms = ms + (1 - decay) * (g * g - ms)
    new_mom = momentum * mom + lr * g / np.sqrt(eps + new_ms)
    close(got, (new_mom, new_ms, new_mom))


def adadelta_step(w, g, h, d, lr, eps=1e-4, decay=0.9):
    h = decay * h + (1 - decay) * g * g
    step = np.sqrt(d + eps) / np.sqrt(h + eps) * g
    return w + lr * step, h, decay * d + (1 - decay) * step * step


def test_adadelta_dense_and_sparse():
    w, h, d, g = rand(4, 2), rand(4, 2, positive=True), rand(4, 2, positive=True), rand(4, 2)
    lr = np.array([0.5], np.float32)
    got = run_op("Adadelta", dict(w=w, h=h, d=d, g=g, lr=lr), ["w2", "h2", "d2"],
                 epsilon=1e-4, decay=0.9)
    close(got, adadelta_step(w.astype(np.float64), g, h, d, 0.5))
    idx = np.array([2, 0, 2], np.int32)
    gs = rand(3, 2)
    got = run_op("SparseAdadelta", dict(w=w, h=h, d=d, idx=idx, g=gs, lr=lr), ["w", "h", "d"],
                 epsilon=1e-4, decay=0.9)
    ww, hh, dd = (a.astype(np.float64) for a in (w, h, d))
    for i, r in enumerate(idx):
        ww[r], hh[r], dd[r] = adadelta_step(ww[r], gs[i], hh[r], dd[r], 0.5)
    close(got, (ww, hh, dd))


@pytest.mark.parametrize("outputs", [2, 3, 4])
def test_wngrad(outputs):
    w, g, b, eps, lr = rand(3, 2), rand(3, 2), np.array([2.0], np.float32), 1e-3, -0.2
    names = ["w2", "b2", "eff", "upd"][:outputs]
    got = run_op("Wngrad", dict(w=w, b=b, g=g, lr=np.array([lr], np.float32)), names,
                 epsilon=eps)
    effective = lr / (2.0 + eps)
    want = [w + effective * g, [2.0 + (g * g).sum() / (2.0 + eps)], [effective], effective * g]
    close(got, want[:outputs])


def test_sparse_wngrad_uses_the_old_seq_b_for_every_row():
    w, b, eps, lr = rand(4, 2), np.array([3.0], np.float32), 1e-3, -0.1
    idx, g = np.array([1, 3, 1], np.int64), rand(3, 2)
    got = run_op("SparseWngrad", dict(w=w, b=b, idx=idx, g=g, lr=np.array([lr], np.float32)),
                 ["w", "b"], epsilon=eps)
    want = w.astype(np.float64)
    for i, r in enumerate(idx):
        want[r] += lr * g[i] / (3.0 + eps)
    close(got, (want, [3.0 + (g * g).sum() / 3.0]))  # Caffe2: no epsilon in this division


def storm_rates(g, sq, lr, momentum, beta):
    new_sq = sq + (g * g).sum()
    nlr = lr * (beta + new_sq) ** (-1 / 3)
    return new_sq, nlr, momentum * nlr * nlr


def test_storm_dense_and_sparse():
    w, m, g, sq, lr, c, beta = rand(3, 3), rand(3, 3), rand(3, 3), 0.5, 0.2, 2.0, 0.3
    got = run_op("Storm", dict(w=w, m=m, sq=np.array([sq], np.float32), g=g,
                               lr=np.array([lr], np.float32)), ["w2", "m2", "sq2"],
                 momentum=c, beta=beta)
    new_sq, nlr, alpha = storm_rates(g, sq, lr, c, beta)
    new_m = g + (1 - alpha) * (m - g)
    close(got, (w + nlr * new_m, new_m, [new_sq]))
    idx, gs = np.array([2, 2, 0], np.int64), rand(3, 3)
    got = run_op("SparseStorm", dict(w=w, m=m, sq=np.array([sq], np.float32), g=gs, idx=idx,
                                     lr=np.array([lr], np.float32)), ["w", "m", "sq"],
                 momentum=c, beta=beta)
    new_sq, nlr, alpha = storm_rates(gs, sq, lr, c, beta)
    ww, mm = w.astype(np.float64), m.astype(np.float64)
    for i, r in enumerate(idx):
        mm[r] = gs[i] + (1 - alpha) * (mm[r] - gs[i])
        ww[r] += nlr * mm[r]
    close(got, (ww, mm, [new_sq]))


@pytest.mark.parametrize("bias_correction_first", [True, False])
def test_decay_adagrad(bias_correction_first):
    w, m1, m2, g = rand(2, 3), rand(2, 3), rand(2, 3, positive=True), rand(2, 3)
    lr, it, b1, eps, wd = -0.1, 3, 0.7, 0.01, 0.02
    got = run_op("DecayAdagrad", dict(w=w, m1=m1, m2=m2, g=g, lr=np.array([lr], np.float32),
                                      it=np.array([it], np.int64)), ["w", "m1", "m2"],
                 beta1=b1, epsilon=eps, weight_decay=wd,
                 bias_correction_first=bias_correction_first)
    c = 1 - b1 ** (it + 1) if bias_correction_first else 1.0
    new_m1 = b1 * m1 + (1 - b1) * g
    new_m2 = m2 + g * g
    close(got, (w + lr * (new_m1 / c / (np.sqrt(new_m2) + eps) + wd * w), new_m1, new_m2))


@pytest.mark.parametrize("normalized", [True, False])
def test_learning_rate_adaption(normalized):
    g, e, lr, alpha = rand(5), rand(5), -0.3, 0.05
    got, = run_op("LearningRateAdaption", dict(lr=np.array([lr], np.float32), g=g, e=e), "lr",
                  lr_alpha=alpha, normalized_lr_adaption=normalized)
    dot = float(np.dot(g, e))
    if normalized:
        want = lr * (1 - alpha * dot / (np.linalg.norm(g) * np.linalg.norm(e)))
    else:
        want = lr - alpha * dot
    np.testing.assert_allclose(got, [want], rtol=1e-5)


def test_refusals_leave_blobs_unchanged():
    op = core.CreateOperator("Adadelta", ["w", "h", "d", "g", "lr"], ["w", "h", "d"], decay=1.5)
    blobs = dict(w=rand(2), h=rand(2), d=rand(2), g=rand(2), lr=np.array([0.1], np.float32))
    assert_fails_unchanged(op, blobs, EnforceError, "decay")
    op = core.CreateOperator("SparseStorm", ["w", "m", "sq", "g", "idx", "lr"], ["w", "m", "sq"])
    assert_fails_unchanged(op, dict(w=rand(3, 2), m=rand(3, 2), sq=np.array([1.0], np.float32),
                                    g=rand(1, 2), idx=np.array([3]),
                                    lr=np.array([0.1], np.float32)), EnforceError, "outside")
