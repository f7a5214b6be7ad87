"""PairWiseLoss and LambdaRankNdcg against loop references written here from the docs."""

import math

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def sessions(lengths):
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    return [range(s, s + n) for s, n in zip(starts, lengths)]


def pairwise_ref(x, label, lengths):
    out = []
    for items in sessions(lengths):
        total, count = 0.0, 0
        for i in items:
            for j in items:
                if j < i and label[i] != label[j]:
                    s = 1 if label[i] > label[j] else -1
                    total += math.log1p(math.exp(s * (x[j] - x[i])))
                    count += 1
        out.append(total / count if count else 0.0)
    return np.array(out)


@pytest.mark.parametrize("lengths", [[3, 1, 4], [5], [0, 2]])
def test_pair_wise_loss(lengths):
    rng = np.random.default_rng(len(lengths))
    n = sum(lengths)
    x, label = rng.uniform(-2, 2, n), rng.integers(0, 3, n).astype(np.float64)
    lengths = np.array(lengths, np.int32)
    op = core.CreateOperator("PairWiseLoss", ["X", "L", "N"], ["Y"])
    check_reference(op, [x, label, lengths], lambda x, l, n: (pairwise_ref(x, l, n),))
    check_gradient(op, [x, label, lengths], 0)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [
        ("PairWiseLossGradient", ["X", "L", "Y_grad", "N"])]


def test_pair_wise_loss_without_lengths_is_one_session():
    x, label = np.array([[0.5], [2.0], [1.0]]), np.array([1.0, 0.0, 1.0])
    op = core.CreateOperator("PairWiseLoss", ["X", "L"], ["Y"])
    check_reference(op, [x, label], lambda x, l: (pairwise_ref(x.ravel(), l, [3]),))
    assert_fails_unchanged(op, [x, label[:2]], EnforceError, r"must be \(3,\) or \(3, 1\)")


def discounts(v):
    d = np.zeros(len(v))
    for rank, i in enumerate(sorted(range(len(v)), key=lambda i: -v[i])):
        d[i] = 1 / math.log2(rank + 2)
    return d


def lambda_ref(y, r, lengths, ndcg_loss, normalize, exp_gain):
    losses, dys = [], np.zeros(len(y))
    for items in sessions(lengths):
        ys, rs = y[list(items)], r[list(items)]
        if np.abs(rs).sum() < 1e-6:
            losses.append(0.0)
            continue
        g = rs if ndcg_loss and not exp_gain else 2.0 ** rs
        idcg = (g * discounts(rs)).sum()
        w = max(idcg, 1e-5) if normalize else 1.0
        d = discounts(ys)
        loss = (idcg - (g * d).sum()) / w if ndcg_loss else 0.0
        for a, i in enumerate(items):
            for b, _ in enumerate(items):
                if a == b:
                    continue
                lam = abs((g[a] - g[b]) * (d[a] - d[b]))
                v = ys[a] - ys[b] if rs[a] > rs[b] else ys[b] - ys[a]
                if not ndcg_loss:
                    loss += lam * math.log1p(math.exp(-v)) / w
                sig = 1 / (1 + math.exp(ys[a] - ys[b]))
                dys[i] += lam * ((0.0 if rs[a] > rs[b] else 1.0) - sig) / w
        losses.append(loss)
    return np.array(losses), dys


@pytest.mark.parametrize("ndcg_loss, normalize, exp_gain",
                         [(False, True, True), (True, True, False), (True, False, True)])
def test_lambda_rank_ndcg(ndcg_loss, normalize, exp_gain):
    rng = np.random.default_rng(7)
    lengths = np.array([4, 3, 5, 2], np.int32)
    y = rng.uniform(0, 1, lengths.sum())
    r = rng.integers(0, 4, lengths.sum()).astype(np.float64)
    r[4:7] = 0  # a session of all-zero labels: no loss, no gradient
    op = core.CreateOperator("LambdaRankNdcg", ["y", "r", "n"], ["loss", "dy"],
                             use_ndcg_as_loss=ndcg_loss, use_idcg_normalization=normalize,
                             use_exp_gain=exp_gain)
    check_reference(op, [y, r, lengths],
                    lambda y, r, n: lambda_ref(y, r, n, ndcg_loss, normalize, exp_gain),
                    threshold=1e-9)


def test_lambda_rank_ndcg_gradient_scales_by_session():
    lengths = np.array([2, 3], np.int32)
    y, dy, dloss = np.arange(5.0), np.linspace(-1, 1, 5), np.array([2.0, -3.0])
    op = core.CreateOperator("LambdaRankNdcgGradient", ["y", "n", "dy", "dl"], ["g"])
    check_reference(op, [y, lengths, dy, dloss],
                    lambda y, n, dy, dl: (dy * np.repeat(dl, n),))
    ops, _ = gradient_ops(core.CreateOperator("LambdaRankNdcg", ["y", "r", "n"], ["l", "d"]))
    assert [(o.type, list(o.input)) for o in ops] == [
        ("LambdaRankNdcgGradient", ["y", "n", "d", "l_grad"])]
