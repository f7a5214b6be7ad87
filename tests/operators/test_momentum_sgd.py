"""MomentumSGD, MomentumSGDUpdate, SparseMomentumSGDUpdate against NumPy references."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged, sparse_case
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry
from helpers import run_op

F = np.float32


def ref_step(g, m, lr, momentum, nesterov):
    """Caffe2's momentum_sgd_update for one element or row: (adjusted grad, new momentum)."""
    if not nesterov:
        adjusted = lr * g + momentum * m
        return adjusted, adjusted
    m_new = momentum * m + lr * g
    return (F(1) + momentum) * m_new - momentum * m, m_new


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_and_update(nesterov):
    rng = np.random.default_rng(0)
    grad, moment, param = rng.standard_normal((3, 2, 5)).astype(F)
    lr = np.array([0.05], F)
    adjusted, m_new = ref_step(grad, moment, lr[0], F(0.9), nesterov)
    got = run_op("MomentumSGD", {"grad": grad, "moment": moment, "lr": lr}, ["g2", "m2"],
                 momentum=0.9, nesterov=nesterov)
    np.testing.assert_array_equal(got[0], adjusted)
    np.testing.assert_array_equal(got[1], m_new)
    got = run_op("MomentumSGDUpdate", {"grad": grad, "moment": moment, "lr": lr,
                                       "param": param}, ["grad", "moment", "param"],
                 momentum=0.9, nesterov=nesterov)
    for g, w in zip(got, (adjusted, m_new, param - adjusted)):
        np.testing.assert_array_equal(g, w)


def test_momentum_sgd_update_defaults_and_errors():
    g, m, p = np.ones(4, F), np.full(4, 3.0, F), np.zeros(4, F)
    got = run_op("MomentumSGDUpdate", {"grad": g, "moment": m, "lr": np.array([0.5], F),
                                       "param": p}, ["grad", "moment", "param"])
    np.testing.assert_array_equal(got[2], -0.5 * np.ones(4, F))  # momentum defaults to 0
    ok = {"grad": g, "moment": m, "lr": np.array([0.5], F), "param": p}
    op = core.CreateOperator("MomentumSGDUpdate", list(ok), ["grad", "moment", "param"])
    assert_fails_unchanged(op, {**ok, "param": np.zeros(3, F)}, EnforceError,
                           "'param'.*3 elements")
    assert_fails_unchanged(op, {**ok, "lr": np.zeros((1, 2), F)}, EnforceError, "'lr'")
    assert_fails_unchanged(op, {**ok, "moment": np.zeros(5, F)}, EnforceError, "'grad'")


def ref_sparse(grad, moment, lr, param, indices, momentum, nesterov):
    m, p = moment.copy(), param.copy()
    mr, pr = m.reshape(p.shape[0], -1), p.reshape(p.shape[0], -1)
    g_rows = grad.reshape(indices.size, pr.shape[1])
    adjusted = np.empty_like(g_rows)
    for i, r in enumerate(indices.reshape(-1)):
        adjusted[i], mr[r] = ref_step(g_rows[i], mr[r], lr, momentum, nesterov)
        pr[r] = pr[r] - adjusted[i]
    return adjusted.reshape(grad.shape), m, p


@given(sparse_case(), st.booleans())
def test_sparse_momentum_sgd_matches_sequential_reference(case, nesterov):
    rows, block, indices, seed = case
    rng = np.random.default_rng(seed)
    param = rng.standard_normal((rows,) + block).astype(F)
    moment = rng.standard_normal((rows,) + block).astype(F)
    grad = rng.standard_normal(indices.shape + block).astype(F)
    lr = np.array([0.1], F)
    got = run_op("SparseMomentumSGDUpdate", {"grad": grad, "m": moment, "lr": lr,
                                             "param": param, "indices": indices},
                 ["adjusted_grad", "m", "param"], momentum=0.7, nesterov=nesterov)
    want = ref_sparse(grad, moment, lr[0], param, indices, F(0.7), nesterov)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_sparse_momentum_sgd_in_place_rules_and_bad_inputs():
    ok = {"grad": np.ones((2, 3), F), "m": np.zeros((4, 3), F), "lr": np.array([0.1], F),
          "param": np.ones((4, 3), F), "indices": np.array([1, 1], np.int32)}
    with pytest.raises(SchemaError, match="must be the same blob"):
        run_op("SparseMomentumSGDUpdate", ok, ["g", "m", "param_out"])
    op = core.CreateOperator("SparseMomentumSGDUpdate", list(ok), ["grad", "m", "param"])
    assert_fails_unchanged(op, {**ok, "indices": np.array([1, 7], np.int32)}, EnforceError,
                           "'indices'.*index 7.*\\[0, 4\\)")
    assert_fails_unchanged(op, {**ok, "grad": np.ones((2, 2), F)}, EnforceError, "'grad'")
    assert_fails_unchanged(op, {**ok, "m": np.zeros((4, 2), F)}, EnforceError, "'m'")
    assert_fails_unchanged(op, {**ok, "lr": np.array([1, 2], F)}, EnforceError, "'lr'")
    for name, value in ok.items():  # the valid case works, param and moment in place
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(op)
    np.testing.assert_allclose(workspace.FetchBlob("param")[1], [0.8, 0.8, 0.8], rtol=1e-6)


def test_momentum_ops_should_not_do_gradient():
    for t in ("MomentumSGD", "MomentumSGDUpdate", "SparseMomentumSGDUpdate"):
        assert registry.get_schema(t).gradient == SHOULD_NOT_DO_GRADIENT
