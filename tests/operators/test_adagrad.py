"""Adagrad, SparseAdagrad, RowWiseSparseAdagrad against sequential NumPy references."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged, sparse_case
from hypothesis import given

from caffe2lite import core
from caffe2lite.errors import EnforceError, SchemaError
from helpers import run_op

F = np.float32


def ref_adagrad(param, moment, grad, lr, eps, decay=1.0, wd=0.0):
    """Caffe2's dense adagrad_update, elementwise."""
    g = grad + F(wd) * param
    m = F(decay) * moment + g * g
    denom = np.sqrt(m) + F(eps)
    return param + lr * g / denom, m, lr / denom, (lr / denom) * g


def ref_sparse_adagrad(param, moment, indices, grad, lr, eps, wd=0.0):
    """SparseAdagrad's CPU loop: one index after another, duplicates re-read updated rows."""
    p, m = param.copy(), moment.copy()
    rows = p.reshape(p.shape[0], -1)
    hist = m.reshape(p.shape[0], -1)
    g_rows = grad.reshape(indices.size, rows.shape[1])
    for i, r in enumerate(indices.reshape(-1)):
        g = g_rows[i] + F(wd) * rows[r]
        hist[r] = hist[r] + g * g
        rows[r] = rows[r] + lr * g / (np.sqrt(hist[r]) + F(eps))
    return p, m


def ref_row_wise(param, moment, indices, grad, lr, eps):
    p, m = param.copy(), moment.copy()
    rows = p.reshape(p.shape[0], -1)
    g_rows = grad.reshape(indices.size, rows.shape[1])
    for i, r in enumerate(indices.reshape(-1)):
        g = g_rows[i]
        acc = F(0)
        for v in g:
            acc = F(acc + v * v)
        m[r] = m[r] + acc / F(g.size)
        rows[r] = rows[r] + g * (lr / (np.sqrt(m[r]) + F(eps)))
    return p, m


@pytest.mark.parametrize("n_out", [2, 3, 4])
@pytest.mark.parametrize("decay,wd", [(1.0, 0.0), (0.9, 0.0), (1.0, 0.01)])
def test_adagrad_matches_reference(n_out, decay, wd):
    rng = np.random.default_rng(0)
    param, grad = rng.standard_normal((2, 4, 3)).astype(F)
    moment = rng.random((4, 3)).astype(F)
    lr = np.array([-0.1], F)
    outs = ["param", "moment", "eff", "upd"][:n_out]
    got = run_op("Adagrad", {"param": param, "moment": moment, "grad": grad, "lr": lr}, outs,
                 epsilon=1e-4, decay=decay, weight_decay=wd)
    want = ref_adagrad(param, moment, grad, lr[0], 1e-4, decay, wd)
    if n_out == 4:  # Caffe2 adds the precomputed update: param + eff * g
        want = (param + want[3],) + want[1:]
    for g, w in zip(got, want):
        assert g.dtype == F and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_adagrad_out_of_place_keeps_inputs():
    param, moment, grad = np.ones(3, F), np.zeros(3, F), np.full(3, 2.0, F)
    run_op("Adagrad", {"param": param, "moment": moment, "grad": grad,
                       "lr": np.array([1.0], F)}, ["p2", "m2"])
    from caffe2lite import workspace
    np.testing.assert_array_equal(workspace.FetchBlob("param"), param)
    np.testing.assert_array_equal(workspace.FetchBlob("m2"), [4, 4, 4])


def test_adagrad_bad_inputs_leave_blobs():
    ok = {"param": np.ones((2, 3), F), "moment": np.zeros((2, 3), F),
          "grad": np.ones((2, 3), F), "lr": np.array([0.1], F)}
    op = core.CreateOperator("Adagrad", list(ok), ["param", "moment"])
    assert_fails_unchanged(op, {**ok, "grad": np.ones(5, F)}, EnforceError, "'grad'.*5 elements")
    assert_fails_unchanged(op, {**ok, "lr": np.ones(2, F)}, EnforceError, "'lr'.*exactly 1")
    assert_fails_unchanged(op, {**ok, "moment": np.zeros((2, 3))}, EnforceError,
                           "'moment'.*float64, expected float32")


@given(sparse_case())
def test_sparse_adagrad_matches_sequential_reference(case):
    rows, block, indices, seed = case
    rng = np.random.default_rng(seed)
    param = rng.standard_normal((rows,) + block).astype(F)
    moment = rng.random((rows,) + block).astype(F)
    grad = rng.standard_normal(indices.shape + block).astype(F)
    lr = np.array([-0.5], F)
    got = run_op("SparseAdagrad", {"param": param, "moment": moment, "indices": indices,
                                   "grad": grad, "lr": lr}, ["param", "moment"], epsilon=1e-3)
    want = ref_sparse_adagrad(param, moment, indices, grad, lr[0], 1e-3)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # same float32 operations, same order


def test_sparse_adagrad_weight_decay_and_2d_indices():
    rng = np.random.default_rng(1)
    param, moment = rng.standard_normal((5, 2)).astype(F), rng.random((5, 2)).astype(F)
    indices = np.array([[1, 3], [1, 0]], np.int64)
    grad = rng.standard_normal((2, 2, 2)).astype(F)
    lr = np.array([0.3], F)
    got = run_op("SparseAdagrad", {"param": param, "moment": moment, "indices": indices,
                                   "grad": grad, "lr": lr}, ["param", "moment"],
                 weight_decay=0.1)
    want = ref_sparse_adagrad(param, moment, indices, grad, lr[0], 1e-5, wd=0.1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def sparse_inputs():
    return {"param": np.arange(8, dtype=F).reshape(4, 2), "moment": np.ones((4, 2), F),
            "indices": np.array([0, 3], np.int64), "grad": np.ones((2, 2), F),
            "lr": np.array([0.1], F)}


@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
def test_sparse_adagrad_bad_inputs_leave_blobs(op_type):
    ok = sparse_inputs()
    if op_type == "RowWiseSparseAdagrad":
        ok["moment"] = np.ones(4, F)
    op = core.CreateOperator(op_type, list(ok), ["param", "moment"])
    bad = [({"indices": np.array([0, 4], np.int64)},
            "'indices'.*index 4 at position 1.*\\[0, 4\\)"),
           ({"indices": np.array([-1, 2], np.int32)}, "index -1 at position 0"),
           ({"indices": np.array([0.0, 1.0], F)}, "'indices'.*int32 or int64"),
           ({"lr": np.array([0.1, 0.2], F)}, "'lr'.*exactly 1 element"),
           ({"grad": np.ones((2, 3), F)}, "'grad'.*shape \\(2, 3\\), expected.*\\(2, 2\\)"),
           ({"grad": np.ones((2, 2))}, "'grad'.*float64, expected float32"),
           ({"moment": np.ones(3, F)}, "'moment'.*3 elements")]
    for change, match in bad:
        assert_fails_unchanged(op, {**ok, **change}, EnforceError, match)


def test_sparse_adagrad_must_be_in_place_and_rejects_decay():
    ok = sparse_inputs()
    with pytest.raises(SchemaError, match="must be the same blob"):
        run_op("SparseAdagrad", ok, ["param2", "moment"])
    assert_fails_unchanged(core.CreateOperator("SparseAdagrad", list(ok), ["param", "moment"],
                                               decay=0.5), ok, EnforceError, "'decay'")


def test_sparse_adagrad_empty_indices_is_a_no_op():
    ok = sparse_inputs()
    ok.update(indices=np.zeros(0, np.int32), grad=np.zeros((0, 2), F))
    got = run_op("SparseAdagrad", ok, ["param", "moment"])
    np.testing.assert_array_equal(got[0], sparse_inputs()["param"])
    np.testing.assert_array_equal(got[1], sparse_inputs()["moment"])


@given(sparse_case())
def test_row_wise_sparse_adagrad_matches_sequential_reference(case):
    rows, block, indices, seed = case
    rng = np.random.default_rng(seed)
    param = rng.standard_normal((rows,) + block).astype(F)
    moment = rng.random(rows).astype(F)
    grad = rng.standard_normal(indices.shape + block).astype(F)
    lr = np.array([-0.5], F)
    got = run_op("RowWiseSparseAdagrad", {"param": param, "moment": moment,
                                          "indices": indices, "grad": grad, "lr": lr},
                 ["param", "moment"], epsilon=1e-3)
    want = ref_row_wise(param, moment, indices, grad, lr[0], 1e-3)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)


def test_row_wise_sparse_adagrad_rejects_counter_halflife():
    ok = sparse_inputs()
    ok["moment"] = np.ones(4, F)
    op = core.CreateOperator("RowWiseSparseAdagrad", list(ok), ["param", "moment"],
                             counter_halflife=10)
    assert_fails_unchanged(op, ok, EnforceError, "counter_halflife")


def test_optimizers_should_not_do_gradient():
    from caffe2lite.runtime import registry
    from caffe2lite.runtime.op_schema import SHOULD_NOT_DO_GRADIENT
    for t in ("Adagrad", "SparseAdagrad", "RowWiseSparseAdagrad"):
        assert registry.get_schema(t).gradient == SHOULD_NOT_DO_GRADIENT


def test_much_repeated_row_takes_the_running_sum_path_exactly():
    """A row named more than sqrt(len(indices)) times is done with cumulative sums."""
    rng = np.random.default_rng(7)
    indices = np.array([2] * 9 + [0, 1, 2, 4], np.int64)
    param = rng.standard_normal((5, 3)).astype(F)
    grad = rng.standard_normal((indices.size, 3)).astype(F)
    lr = np.array([-0.5], F)
    for op_type, moment, ref in (("SparseAdagrad", rng.random((5, 3)).astype(F),
                                  lambda p, m: ref_sparse_adagrad(p, m, indices, grad, lr[0],
                                                                  1e-5)),
                                 ("RowWiseSparseAdagrad", rng.random(5).astype(F),
                                  lambda p, m: ref_row_wise(p, m, indices, grad, lr[0], 1e-5))):
        got = run_op(op_type, {"param": param, "moment": moment, "indices": indices,
                               "grad": grad, "lr": lr}, ["param", "moment"])
        for g, w in zip(got, ref(param, moment)):
            if op_type == "SparseAdagrad":
                np.testing.assert_array_equal(g, w)
            else:  # the reference sums each row's squares sequentially, NumPy pairwise
                np.testing.assert_allclose(g, w, rtol=2e-6)
