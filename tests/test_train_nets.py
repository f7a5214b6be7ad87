"""Training operators inside nets: a small optimizer loop, and Glow's Caffe2 test nets."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.protoio import load_net

F = np.float32


def test_training_loop_net_matches_numpy_simulation():
    rng = np.random.default_rng(0)
    table, dense = rng.standard_normal((6, 3)).astype(F), rng.standard_normal(4).astype(F)
    ids, g_rows = np.array([4, 1, 4], np.int64), rng.standard_normal((3, 3)).astype(F)
    g_dense = rng.standard_normal(4).astype(F)
    feeds = {"ITER": np.zeros(1, np.int64), "table": table, "table_m": np.zeros_like(table),
             "ids": ids, "g_rows": g_rows, "dense": dense, "dense_m": np.zeros_like(dense),
             "g_dense": g_dense, "ONE": np.ones(1, F)}
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    net = core.Net("train")
    net.Iter("ITER", "ITER")
    net.LearningRate("ITER", "LR", base_lr=-0.1, policy="step", stepsize=2, gamma=0.5)
    net.SparseAdagrad(["table", "table_m", "ids", "g_rows", "LR"], ["table", "table_m"])
    net.MomentumSGDUpdate(["g_dense", "dense_m", "ONE", "dense"], ["adj", "dense_m", "dense"],
                          momentum=0.9)
    net.WeightedSum(["dense", "ONE", "adj", "LR"], "dense")
    workspace.CreateNet(net)
    workspace.RunNet(net.Name(), num_iter=5)

    t, tm, d, dm = table.copy(), np.zeros_like(table), dense.copy(), np.zeros_like(dense)
    for it in range(1, 6):
        lr = F(-0.1) * F(0.5) ** F(it // 2)
        for k, r in enumerate(ids):
            tm[r] = tm[r] + g_rows[k] * g_rows[k]
            t[r] = t[r] + lr * g_rows[k] / (np.sqrt(tm[r]) + F(1e-5))
        adj = F(1) * g_dense + F(0.9) * dm
        dm, d = adj, d - adj
        d = lr * adj + F(1) * d
    assert workspace.FetchBlob("ITER")[0] == 5
    np.testing.assert_allclose(workspace.FetchBlob("table"), t, rtol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob("table_m"), tm, rtol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob("dense"), d, rtol=1e-6)
    np.testing.assert_allclose(workspace.FetchBlob("dense_m"), dm, rtol=1e-6)


GLOW_NETS = {
    "pytorch__glow__lengths_to_ranges.pbtxt":
        ({"input": np.array([1, 3, 0, 2], np.int32)},
         {"output": np.array([[0, 1], [1, 3], [4, 0], [4, 2]], np.int32)}),
    "pytorch__glow__lengths_range_fill_predict_net.pbtxt":
        ({"lengths": np.array([4, 3, 1], np.int32)},
         {"result": np.array([0, 1, 2, 3, 0, 1, 2, 0], np.int32)}),
    "pytorch__glow__gather_ranges.pbtxt":
        ({"data": np.arange(1, 7, dtype=F),
          "ranges": np.array([[[0, 1], [2, 2]], [[4, 1], [5, 1]]], np.int32)},
         {"output": np.array([1, 3, 4, 5, 6], F), "lengths": np.array([3, 2], np.int32)}),
    "pytorch__glow__batch_sparse_to_dense_last_dim_1.pbtxt":
        ({"lengths": np.array([1, 0, 2], np.int64), "indices": np.zeros(3, np.int64),
          "values": np.array([5, 6, 7], F)},
         {"output": np.array([[5], [0], [7]], F)}),
}


@pytest.mark.parametrize("name", sorted(GLOW_NETS))
def test_glow_importer_nets_run(nets_dir, name):
    feeds, expected = GLOW_NETS[name]
    net = load_net(nets_dir / name)
    for blob, value in feeds.items():
        workspace.FeedBlob(blob, value)
    workspace.RunNetOnce(net)
    for blob, want in expected.items():
        got = workspace.FetchBlob(blob)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
