"""The Adagrad family's engines: NATIVE (C) and NUMPY give the same bits, and both match
a plain sequential NumPy loop written here from Caffe2's documented update.

SparseAdagrad / RowWiseSparseAdagrad apply one update per index occurrence, in
index order (a repeated id is updated again from its new value), so the
reference walks the indices one by one.  Row-wise: the moment grows by the mean
of g*g over the row, which NumPy sums pairwise (np.sum of the row, as here).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import registry
from helpers import assert_unchanged, snapshot

F = np.float32


def engines():
    have = {e for (t, d, e) in registry.kernels() if t == "SparseAdagrad" and d == 0}
    native = pytest.param("NATIVE", marks=pytest.mark.skipif(
        "NATIVE" not in have, reason="the optional C library (caffe2lite/_native) is not built"))
    return ["NUMPY", native]


def ref_sparse(param, moment, indices, grad, lr, eps, wd, row_wise):
    """Caffe2's CPU loop over the occurrences, in the table's float type."""
    T = param.dtype.type
    p = param.reshape(param.shape[0], -1).copy()
    m = moment.reshape(param.shape[0], -1).copy() if not row_wise else moment.copy()
    g_rows = grad.reshape(indices.size, p.shape[1])
    for i, r in enumerate(indices.reshape(-1)):
        g = g_rows[i] + T(wd) * p[r] if wd else g_rows[i]
        if row_wise:
            if p.shape[1] == 1:
                m[r] = m[r] + g[0] * g[0]
                p[r] = p[r] + lr * g / (np.sqrt(m[r]) + T(eps))
            else:
                m[r] = m[r] + np.sum(g * g) / T(p.shape[1])
                p[r] = p[r] + g * (lr / (np.sqrt(m[r]) + T(eps)))
        else:
            m[r] = m[r] + g * g
            p[r] = p[r] + lr * g / (np.sqrt(m[r]) + T(eps))
    return p.reshape(param.shape), m.reshape(moment.shape)


def run(op_type, engine, inputs, **args):
    workspace.ResetWorkspace()
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), ["param", "moment"],
                                                  engine=engine, **args))
    return workspace.FetchBlob("param"), workspace.FetchBlob("moment")


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def cases(draw):
    rows = draw(st.integers(1, 40))
    block = draw(st.sampled_from([1, 2, 3, 8, 16, 31, 32, 33, 64, 129]))
    n = draw(st.integers(0, 80))
    zipf = draw(st.booleans())  # Zipf ids: a few rows repeated many times
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.3, n) - 1) % rows if zipf else rng.integers(0, rows, n)
    return (rng, rows, block, ids.astype(draw(st.sampled_from([np.int32, np.int64]))),
            draw(st.sampled_from([0.0, 0.01])))


@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_engines_agree_bit_for_bit_and_match_the_loop(op_type, case):
    rng, rows, block, ids, wd = case
    row_wise = op_type == "RowWiseSparseAdagrad"
    param = rng.standard_normal((rows, block)).astype(F)
    moment = rng.random(rows if row_wise else (rows, block)).astype(F)
    grad = rng.standard_normal((ids.size, block)).astype(F)
    inputs = {"param": param, "moment": moment, "indices": ids, "grad": grad,
              "lr": np.array([-0.3], F)}
    want = ref_sparse(param, moment, ids, grad, F(-0.3), 1e-4, wd, row_wise)
    results = [run(op_type, engine, inputs, epsilon=1e-4, weight_decay=wd)
               for engine in ("NUMPY", "NATIVE")]
    for got in results:
        for g, w in zip(got, want):
            assert same_bits(g, w)


@pytest.mark.parametrize("engine", engines())
def test_zipf_batch_with_a_dominant_id(engine):
    """One id in half the positions (the NumPy engine's running-sum path) and many pairs."""
    rng = np.random.default_rng(3)
    ids = np.concatenate([np.full(300, 7), rng.integers(0, 50, 300)])
    rng.shuffle(ids)
    param = rng.standard_normal((50, 16)).astype(F)
    for op_type, moment in (("SparseAdagrad", rng.random((50, 16)).astype(F)),
                            ("RowWiseSparseAdagrad", rng.random(50).astype(F))):
        grad = rng.standard_normal((ids.size, 16)).astype(F)
        inputs = {"param": param, "moment": moment, "indices": ids, "grad": grad,
                  "lr": np.array([-0.05], F)}
        got = run(op_type, engine, inputs, epsilon=1e-6)
        want = ref_sparse(param, moment, ids, grad, F(-0.05), 1e-6, 0.0,
                          op_type.startswith("RowWise"))
        assert all(same_bits(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
@pytest.mark.parametrize("bad", [np.array([0, 5, 1]), np.array([2, -1]), np.array([9] * 3)])
def test_bad_ids_leave_table_and_moment_bit_identical(engine, op_type, bad):
    rng = np.random.default_rng(0)
    moment = rng.random(5 if op_type.startswith("RowWise") else (5, 4)).astype(F)
    inputs = {"param": rng.standard_normal((5, 4)).astype(F), "moment": moment,
              "indices": bad.astype(np.int64), "grad": np.ones((bad.size, 4), F),
              "lr": np.array([0.1], F)}
    workspace.ResetWorkspace()
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    first_bad = int(np.flatnonzero((bad < 0) | (bad >= 5))[0])
    with pytest.raises(EnforceError, match=f"index {bad[first_bad]} at position {first_bad}"):
        workspace.RunOperatorOnce(core.CreateOperator(
            op_type, list(inputs), ["param", "moment"], engine=engine))
    assert_unchanged(before)


@pytest.mark.parametrize("engine", engines())
def test_empty_batch_changes_nothing(engine):
    param, moment = np.ones((3, 2), F), np.full((3, 2), 0.5, F)
    got = run("SparseAdagrad", engine, {"param": param, "moment": moment,
                                        "indices": np.zeros(0, np.int32),
                                        "grad": np.zeros((0, 2), F), "lr": np.array([1.0], F)})
    assert same_bits(got[0], param) and same_bits(got[1], moment)


@pytest.mark.parametrize("engine", engines())
def test_what_c_does_not_take_runs_on_numpy_with_the_same_result(engine):
    """Rows wider than the C row-wise buffer, a table blob that is a view."""
    rng = np.random.default_rng(5)
    ids = np.array([1, 0, 1, 2], np.int64)
    for op_type, shape, dtype in (("RowWiseSparseAdagrad", (3, 1500), F),):
        param = rng.standard_normal(shape).astype(dtype)
        row_wise = op_type.startswith("RowWise")
        moment = rng.random(3 if row_wise else shape).astype(dtype)
        grad = rng.standard_normal((4, shape[1])).astype(dtype)
        lr = np.array([-0.1], dtype)
        got = run(op_type, engine, {"param": param, "moment": moment, "indices": ids,
                                    "grad": grad, "lr": lr})
        want = ref_sparse(param, moment, ids, grad, lr[0], 1e-5, 0.0, row_wise)
        assert all(same_bits(g, w) for g, w in zip(got, want))
    view = np.arange(24, dtype=F).reshape(6, 4)[::2]  # not C-contiguous: copied, not written
    got = run("SparseAdagrad", engine, {"param": view, "moment": np.zeros((3, 4), F),
                                        "indices": ids[:2], "grad": np.ones((2, 4), F),
                                        "lr": np.array([1.0], F)})
    want = ref_sparse(view.copy(), np.zeros((3, 4), F), ids[:2], np.ones((2, 4), F), F(1.0),
                      1e-5, 0.0, False)
    assert all(same_bits(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("wd", [0.0, 0.05])
@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_dense_adagrad_engines_agree_bit_for_bit(decay, wd):
    rng = np.random.default_rng(9)
    param, grad = rng.standard_normal((2, 33, 7)).astype(F)
    moment = rng.random((33, 7)).astype(F)
    inputs = {"param": param, "moment": moment, "grad": grad, "lr": np.array([-0.2], F)}
    g = grad + F(wd) * param if wd else grad
    m = F(decay) * moment + g * g
    want = (param + F(-0.2) * g / (np.sqrt(m) + F(1e-6)), m)
    engines_here = ["NUMPY"] + (["NATIVE"] if ("Adagrad", 0, "NATIVE") in registry.kernels()
                                else [])
    for engine in engines_here:
        got = run("Adagrad", engine, inputs, epsilon=1e-6, decay=decay, weight_decay=wd)
        assert all(same_bits(a, b) for a, b in zip(got, want)), engine


def ref_half(param, moment, indices, grad, lr, eps, wd, row_wise):
    """A float16 table with float32 moments: float32 arithmetic, the row rounded to
    float16 after every occurrence (the table is what the next occurrence reads)."""
    p, m = param.copy(), moment.copy()
    h = m if row_wise else m.reshape(p.shape[0], -1)
    rows = p.reshape(p.shape[0], -1)
    g_rows = grad.reshape(indices.size, rows.shape[1]).astype(F)
    for i, r in enumerate(indices.reshape(-1)):
        row = rows[r].astype(F)
        g = g_rows[i] + F(wd) * row if wd else g_rows[i]
        if row_wise:
            h[r] = h[r] + np.sum(g * g) / F(g.size)
            rows[r] = (row + g * (lr / (np.sqrt(h[r]) + F(eps)))).astype(np.float16)
        else:
            h[r] = h[r] + g * g
            rows[r] = (row + (g * lr) / (np.sqrt(h[r]) + F(eps))).astype(np.float16)
    return p, m


@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("wd", [0.0, 0.02])
def test_float16_tables_with_float32_moments(op_type, grad_dtype, wd):
    rng = np.random.default_rng(8)
    ids = ((rng.zipf(1.4, 200) - 1) % 30).astype(np.int64)  # many repeats: rounding matters
    row_wise = op_type.startswith("RowWise")
    param = rng.standard_normal((30, 24)).astype(np.float16)
    moment = rng.random(30 if row_wise else (30, 24)).astype(F)
    grad = rng.standard_normal((ids.size, 24)).astype(grad_dtype)
    inputs = {"param": param, "moment": moment, "indices": ids, "grad": grad,
              "lr": np.array([-0.2], F)}
    want = ref_half(param, moment, ids, grad, F(-0.2), 1e-5, wd, row_wise)
    have = {e for (t, d, e) in registry.kernels() if t == op_type and d == 0}
    for engine in ["NUMPY"] + (["NATIVE"] if "NATIVE" in have else []):
        got = run(op_type, engine, inputs, weight_decay=wd)
        assert got[0].dtype == np.float16 and got[1].dtype == F
        assert all(same_bits(g, w) for g, w in zip(got, want)), engine


def test_float16_table_needs_float32_moments():
    ok = {"param": np.ones((3, 2), np.float16), "moment": np.zeros((3, 2), np.float16),
          "indices": np.array([1], np.int64), "grad": np.ones((1, 2), F),
          "lr": np.array([0.1], F)}
    for engine in ("NUMPY", "NATIVE"):
        workspace.ResetWorkspace()
        for name, value in ok.items():
            workspace.FeedBlob(name, value)
        before = snapshot()
        with pytest.raises(EnforceError, match="'moment'.*float16: a float16 table keeps "
                                               "float32 moments"):
            workspace.RunOperatorOnce(core.CreateOperator(
                "SparseAdagrad", list(ok), ["param", "moment"], engine=engine))
        assert_unchanged(before)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
def test_float64_tables_are_refused_on_every_engine(op_type, engine):
    """Caffe2 registered these ops for float only: a float64 table is an error naming
    the table, not a silent NumPy update, and nothing is written."""
    d = np.float64
    row_wise = op_type.startswith("RowWise")
    inputs = {"param": np.ones((3, 4), d), "moment": np.ones(3 if row_wise else (3, 4), d),
              "indices": np.array([0, 2]), "grad": np.ones((2, 4), d),
              "lr": np.array([-0.1], d)}
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    op = core.CreateOperator(op_type, list(inputs), ["param", "moment"], engine=engine)
    with pytest.raises(EnforceError, match=r"input 0 'param' \(blob 'param'\) has dtype "
                                           r"float64, expected float32"):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)
