"""EnsureClipped, SparseLpRegularizer, ScaleBlobs and MergeIdLists against references
written here from Caffe2's loops."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, EnforceError
from caffe2lite.testing import check_reference
from helpers import assert_unchanged, snapshot

F = np.float32


def test_ensure_clipped_dense_and_sparse():
    x = np.random.default_rng(0).uniform(-2, 2, (5, 3)).astype(F)
    check_reference(core.CreateOperator("EnsureClipped", ["p"], ["o"], min=-0.5, max=1.0), [x],
                    lambda x: [np.clip(x, -0.5, 1.0)])
    check_reference(core.CreateOperator("EnsureClipped", ["p"], ["o"], min=0.0), [x],
                    lambda x: [np.maximum(x, 0)])
    idx = np.array([3, 0, 3], np.int64)

    def sparse(x, idx, grad):
        out = x.copy()
        out[idx] = np.clip(x[idx], 0, None)
        return [out]

    check_reference(core.CreateOperator("EnsureClipped", ["p", "i", "g"], ["p"], min=0.0),
                    [x, idx, np.zeros((3, 3))], sparse)
    for name, value in (("p", x), ("i", idx), ("g", np.zeros((3, 3)))):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="works in place"):
        workspace.RunOperatorOnce(core.CreateOperator("EnsureClipped", ["p", "i", "g"], ["o"]))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_sparse_lp_regularizer_repeats_rows_as_caffe2s_loop(p):
    x = np.random.default_rng(1).uniform(-0.2, 0.2, (6, 4)).astype(F)
    idx = np.array([[2, 5], [2, 0]], np.int32)  # row 2 twice
    lam = F(0.03)

    def ref(x, idx):
        out = x.copy()
        for r in idx.reshape(-1):
            for j in range(out.shape[1]):
                v = out[r, j]
                if p == 2.0:
                    out[r, j] = v * (F(1) - lam)
                else:
                    out[r, j] = v + lam if v < -lam else (v - lam if v > lam else F(0))
        return [out]

    check_reference(core.CreateOperator("SparseLpRegularizer", ["x", "i"], ["x"], p=p,
                                        reg_lambda=float(lam)), [x, idx], ref, threshold=0)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("i", idx)
    with pytest.raises(ArgumentError, match="only L1"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseLpRegularizer", ["x", "i"], ["x"],
                                                      p=3.0))


def test_scale_blobs():
    xs = [np.random.default_rng(k).standard_normal((k + 1, 2)).astype(F) for k in range(3)]
    names = [f"s{k}" for k in range(3)]
    check_reference(core.CreateOperator("ScaleBlobs", names, ["o0", "s1", "o2"], scale=2.5),
                    xs, lambda *xs: [x * F(2.5) for x in xs])
    workspace.FeedBlob("s0", xs[0])
    workspace.FeedBlob("bad", np.zeros(2))
    before = snapshot()
    with pytest.raises(EnforceError, match="float32"):
        workspace.RunOperatorOnce(core.CreateOperator("ScaleBlobs", ["s0", "bad"], ["a", "b"]))
    assert_unchanged(before)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_merge_id_lists(dtype):
    lengths = [np.array([3, 0, 4], np.int32), np.array([3, 2, 1], np.int32)]
    values = [np.array([1, 5, 6, 2, 4, 5, 6], dtype), np.array([5, 8, 9, 14, 9, 5], dtype)]

    def ref(*args):
        out_lengths, out_values, offsets = [], [], [0] * (len(args) // 2)
        for example in range(len(args[0])):
            ids = set()
            for k in range(0, len(args), 2):
                n = int(args[k][example])
                ids |= set(args[k + 1][offsets[k // 2]:offsets[k // 2] + n].tolist())
                offsets[k // 2] += n
            out_lengths.append(len(ids))
            out_values.extend(sorted(ids))
        return [np.array(out_lengths, np.int32), np.array(out_values, dtype)]

    inputs = [lengths[0], values[0], lengths[1], values[1]]
    out = check_reference(core.CreateOperator("MergeIdLists", ["l0", "v0", "l1", "v1"],
                                              ["ml", "mv"]), inputs, ref)
    assert out[0].tolist() == [5, 2, 4] and out[1].dtype == dtype
    for name, value in zip(["l0", "v0", "l1", "v1"], [lengths[0], values[0],
                                                       np.array([1, 1], np.int32), values[1]]):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="LENGTHS should be equal"):
        workspace.RunOperatorOnce(core.CreateOperator("MergeIdLists", ["l0", "v0", "l1", "v1"],
                                                      ["ml", "mv"]))
