"""ScatterWeightedSum and ScatterAssign against Caffe2's sequential loops in NumPy."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged, sparse_case
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry
from helpers import run_op

F = np.float32


def ref_scatter_weighted_sum(x0, w0, indices, updates):
    """Scale every named row by w0 once per occurrence, then add w_k * X_k[i] in order."""
    out = x0.copy()
    rows = out.reshape(out.shape[0], -1)
    flat = indices.reshape(-1)
    if w0 != 1:
        for r in flat:
            rows[r] = rows[r] * w0
    for x, w in updates:
        x_rows = x.reshape(flat.size, rows.shape[1])
        for i, r in enumerate(flat):
            rows[r] = rows[r] + w * x_rows[i]
    return out


@given(sparse_case(), st.sampled_from([1.0, 0.5, -1.25]), st.integers(1, 2))
def test_scatter_weighted_sum_matches_sequential_reference(case, w0, n_updates):
    rows, block, indices, seed = case
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((rows,) + block).astype(F)
    inputs = {"X0": x0, "W0": np.array([w0], F), "INDICES": indices}
    updates = []
    for k in range(n_updates):
        x, w = rng.standard_normal(indices.shape + block).astype(F), F(rng.standard_normal())
        inputs[f"X{k + 1}"], inputs[f"W{k + 1}"] = x, np.array(w, F)
        updates.append((x, w))
    got, = run_op("ScatterWeightedSum", inputs, ["X0"])
    np.testing.assert_array_equal(got, ref_scatter_weighted_sum(x0, F(w0), indices, updates))


def test_scatter_weighted_sum_duplicate_scaled_twice():
    got, = run_op("ScatterWeightedSum", {"d": np.array([1.0, 1.0], F), "w0": np.array([2.0], F),
                                         "i": np.array([0, 0], np.int64),
                                         "x": np.array([1.0, 3.0], F),
                                         "w1": np.array([1.0], F)}, ["d"])
    np.testing.assert_array_equal(got, [1 * 2 * 2 + 1 + 3, 1.0])


def test_scatter_weighted_sum_much_repeated_row():
    rng = np.random.default_rng(5)
    indices = np.array([1] * 10 + [0, 3], np.int32)
    x0 = rng.standard_normal((4, 2)).astype(F)
    x1, x2 = rng.standard_normal((2, 12, 2)).astype(F)
    got, = run_op("ScatterWeightedSum", {"X0": x0, "W0": np.array([0.9], F), "I": indices,
                                         "X1": x1, "W1": np.array([0.5], F),
                                         "X2": x2, "W2": np.array([-2.0], F)}, ["X0"])
    want = ref_scatter_weighted_sum(x0, F(0.9), indices, [(x1, F(0.5)), (x2, F(-2.0))])
    np.testing.assert_array_equal(got, want)


def test_scatter_weighted_sum_bad_inputs():
    ok = {"d": np.zeros((3, 2), F), "w0": np.ones(1, F), "i": np.array([0, 2], np.int32),
          "x": np.ones((2, 2), F), "w1": np.ones(1, F)}
    with pytest.raises(SchemaError, match="must be the same blob"):
        run_op("ScatterWeightedSum", ok, ["other"])
    op = core.CreateOperator("ScatterWeightedSum", list(ok), ["d"])
    assert_fails_unchanged(op, {**ok, "i": np.array([0, 3], np.int32)}, EnforceError,
                           "'i'.*index 3 at position 1.*\\[0, 3\\)")
    assert_fails_unchanged(op, {**ok, "x": np.ones((2, 3), F)}, EnforceError,
                           "'x'.*6 elements.*2 x 2")
    assert_fails_unchanged(op, {**ok, "w1": np.ones(2, F)}, EnforceError, "'w1'.*exactly 1")
    assert_fails_unchanged(op, {**ok, "w0": np.ones((1, 2), F)}, EnforceError, "'w0'")
    assert_fails_unchanged(op, {**ok, "x": np.ones((2, 2), np.float64)}, EnforceError,
                           "'x'.*float64")
    assert_fails_unchanged(op, {**ok, "d": np.zeros((0, 2), F)}, EnforceError,
                           "'d'.*empty")


@given(sparse_case(), st.sampled_from([np.float32, np.float16, np.int32, np.int64, np.uint8]))
def test_scatter_assign_last_write_wins(case, dtype):
    rows, block, indices, seed = case
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 100, (rows,) + block).astype(dtype)
    slices = rng.integers(0, 100, indices.shape + block).astype(dtype)
    want = data.copy()
    flat_rows = want.reshape(rows, -1)
    for i, r in enumerate(indices.reshape(-1)):
        flat_rows[r] = slices.reshape(indices.size, flat_rows.shape[1])[i]
    got, = run_op("ScatterAssign", {"data": data, "indices": indices, "slices": slices},
                  ["data"])
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_scatter_assign_bad_inputs():
    ok = {"data": np.zeros((3, 2), F), "indices": np.array([1], np.int64),
          "slices": np.ones((1, 2), F)}
    op = core.CreateOperator("ScatterAssign", list(ok), ["data"])
    assert_fails_unchanged(op, {**ok, "slices": np.ones((1, 2), np.float16)}, EnforceError,
                           "types must match")
    assert_fails_unchanged(op, {**ok, "indices": np.array([5], np.int64)}, EnforceError,
                           "index 5")
    assert_fails_unchanged(op, {**ok, "slices": np.ones((2, 2), F)}, EnforceError,
                           "'slices'.*4 elements")


def test_scatter_ops_should_not_do_gradient():
    for t in ("ScatterWeightedSum", "ScatterAssign"):
        assert registry.get_schema(t).gradient == SHOULD_NOT_DO_GRADIENT


def test_in_place_update_never_writes_through_a_shared_view():
    """A blob holding a view of another blob (a reshape that did not copy) is copied first."""
    from caffe2lite import workspace
    base = np.zeros((4, 2), F)
    workspace.FeedBlob("base", base)
    blobs = workspace.current().blob_dict
    blobs["view"] = blobs["base"][1:]  # what a non-copying kernel could leave behind
    workspace.FeedBlob("indices", np.array([0], np.int32))
    workspace.FeedBlob("slices", np.ones((1, 2), F))
    workspace.RunOperatorOnce(core.CreateOperator("ScatterAssign", ["view", "indices", "slices"],
                                                  ["view"]))
    np.testing.assert_array_equal(workspace.FetchBlob("view"), [[1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(workspace.FetchBlob("base"), base)
