"""TTSparseLengthsSum (+ gradient) against the embedding table multiplied out in full
here (row by row from the three cores) and summed bag by bag."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

CASES = [([2, 3, 2], [2, 2, 3], [1, 2, 3, 1]), ([3, 1, 2], [1, 4, 2], [1, 1, 2, 1])]


def _cores(rng, factor_i, factor_j, ranks):
    return [rng.standard_normal((factor_i[k], ranks[k], factor_j[k], ranks[k + 1]))
            .astype(np.float32) for k in range(3)]


def _table(cores, factor_i, factor_j):
    """Row i0 + f0 * (i1 + f1 * i2): the product of the three slices as matrices."""
    rows = []
    for index in range(int(np.prod(factor_i))):
        i0, rest = index % factor_i[0], index // factor_i[0]
        i1, i2 = rest % factor_i[1], rest // factor_i[1]
        m0 = cores[0][i0].astype(np.float64).reshape(factor_j[0], -1)
        m1 = cores[1][i1].astype(np.float64).reshape(m0.shape[1], -1)
        m2 = cores[2][i2].astype(np.float64).reshape(-1, factor_j[2])
        rows.append((m0 @ m1).reshape(-1, m2.shape[0]) @ m2)
    return np.array([r.ravel() for r in rows])


@pytest.mark.parametrize("factor_i, factor_j, ranks", CASES)
def test_bags_of_the_multiplied_out_table(factor_i, factor_j, ranks):
    rng = np.random.default_rng(0)
    cores = _cores(rng, factor_i, factor_j, ranks)
    table = _table(cores, factor_i, factor_j)
    indices = rng.integers(0, table.shape[0], 7).astype(np.int64)
    lengths = np.array([2, 0, 4, 1], np.int32)
    op = core.CreateOperator("TTSparseLengthsSum", ["c0", "c1", "c2", "idx", "len"],
                             ["out", "c0_out", "c1_out", "parts"], factor_i=factor_i,
                             factor_j=factor_j, ranks=ranks, emb_size=int(np.prod(factor_j)))

    def ref(c0, c1, c2, idx, lens):
        bags = np.split(table[idx], np.cumsum(lens)[:-1])
        return [np.array([b.sum(axis=0) for b in bags], np.float32)]

    outs = check_reference(op, cores + [indices, lengths], ref, threshold=1e-4, atol=1e-5)
    parts = outs[3]
    np.testing.assert_array_equal(parts[:, 0] + factor_i[0] * (parts[:, 1] + factor_i[1]
                                                                * parts[:, 2]), indices)
    for k in range(3):
        check_gradient(op, cores + [indices, lengths], k)


@pytest.mark.parametrize("kwargs, index, match", [
    ({"emb_size": 64}, 0, "emb_size \\(64\\) must be the product"),
    ({}, 12, "index 12, outside the table's \\[0, 12\\)"),
    ({"ranks": [2, 2, 3, 1]}, 0, "must start and end with 1")])
def test_errors(kwargs, index, match):
    factor_i, factor_j, ranks = CASES[0]
    cores = _cores(np.random.default_rng(1), factor_i, factor_j, ranks)
    args = {"factor_i": factor_i, "factor_j": factor_j, "ranks": ranks, "emb_size": 12}
    args.update(kwargs)
    for name, value in zip(["c0", "c1", "c2"], cores):
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("idx", np.array([index], np.int64))
    workspace.FeedBlob("len", np.array([1], np.int32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(
            "TTSparseLengthsSum", ["c0", "c1", "c2", "idx", "len"], ["o", "a", "b", "p"],
            **args))
    assert not workspace.HasBlob("o")
