"""Sparse ops through net.AddGradientOperators: an embedding model's backward pass.

Needs the gradient engine and AveragedLoss (branch gradients); until they are in
this checkout the tests skip with that reason.
"""

import numpy as np
import pytest

from caffe2lite import core, workspace


def _require_engine():
    if not hasattr(core.Net, "AddGradientOperators") or not core.IsOperator("AveragedLoss"):
        pytest.skip("needs net.AddGradientOperators and AveragedLoss (branch gradients)")


def _bags(table, ids, lengths, weights=None):
    out = np.zeros((len(lengths), table.shape[1]))
    r = 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            out[k] += table[ids[r]] * (1.0 if weights is None else weights[r])
            r += 1
    return out


def test_embedding_bag_model_gets_sparse_table_gradients():
    _require_engine()
    rng = np.random.default_rng(0)
    table = rng.standard_normal((6, 3)).astype(np.float32)
    ids = np.array([5, 1, 5, 0, 2], np.int64)
    lengths = np.array([2, 0, 3], np.int32)
    weights = rng.standard_normal(5).astype(np.float32)
    for name, value in (("emb", table), ("ids", ids), ("lengths", lengths), ("w", weights)):
        workspace.FeedBlob(name, value)
    net = core.Net("embedding_model")
    a = net.SparseLengthsSum(["emb", "ids", "lengths"], "a")
    b = net.SparseLengthsWeightedSum(["emb", "w", "ids", "lengths"], "b", grad_on_weights=1)
    g = net.Gather(["emb", "ids"], "g")
    s = net.LengthsSum([g, "lengths"], "s")
    total = net.Sum([a, b, s], "total")
    net.AveragedLoss(total, "loss")
    grads = net.AddGradientOperators(["loss"])
    workspace.RunNetOnce(net)

    # d loss / d total = 1 / total.size everywhere; sum the table's three sparse partials.
    seed = np.full((3, 3), 1.0 / 9)
    want_table = np.zeros_like(table, dtype=np.float64)
    r = 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            want_table[ids[r]] += seed[k] * (2.0 + weights[r])  # SLS + Gather/LengthsSum + WSum
            r += 1
    got = grads["emb"]
    assert isinstance(got, core.GradientSlice)
    dense = np.zeros_like(want_table)
    np.add.at(dense, workspace.FetchBlob(str(got.indices)),
              workspace.FetchBlob(str(got.values)).reshape(-1, 3))
    np.testing.assert_allclose(dense, want_table, rtol=1e-5, atol=1e-6)
    want_w = [(table[ids[r]].astype(np.float64) * seed[k]).sum()
              for k, n in enumerate(lengths) for r in range(sum(lengths[:k]), sum(lengths[:k]) + n)]
    np.testing.assert_allclose(workspace.FetchBlob(str(grads["w"])), want_w, rtol=1e-5,
                               atol=1e-6)
    assert grads.get("ids") is None and grads.get("lengths") is None
    np.testing.assert_allclose(workspace.FetchBlob("loss"),
                               (_bags(table, ids, lengths) * 2
                                + _bags(table, ids, lengths, weights)).mean(), rtol=1e-5)
