"""BatchSparseToDense and BatchDenseToSparse against NumPy loops, and their gradients."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import registry
from helpers import run_op

F = np.float32


@st.composite
def batch_case(draw):
    width = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(0, 4), max_size=5))
    indices = draw(st.lists(st.integers(0, width - 1), min_size=sum(lengths),
                            max_size=sum(lengths)))
    dtypes = draw(st.tuples(st.sampled_from([np.int32, np.int64]),
                            st.sampled_from([np.int32, np.int64])))
    return (width, np.array(lengths, dtypes[0]), np.array(indices, dtypes[1]),
            draw(st.integers(0, 1000)))


def rows_of(lengths):
    return [i for i, n in enumerate(lengths) for _ in range(n)]


@given(batch_case(), st.booleans())
def test_batch_sparse_to_dense(case, shape_input):
    width, lengths, indices, seed = case
    values = np.random.default_rng(seed).standard_normal(indices.size).astype(F)
    want = np.full((lengths.size, width), 2.5, F)
    for k, r in enumerate(rows_of(lengths)):
        want[r, indices[k]] = values[k]  # sequential: a repeated column keeps the last value
    inputs = {"L": lengths, "I": indices, "V": values}
    args = dict(default_value=2.5)
    if shape_input:
        inputs["S"] = np.zeros((lengths.size, width), F)
    else:
        args["dense_last_dim"] = width
    got, = run_op("BatchSparseToDense", inputs, ["O"], **args)
    assert got.dtype == F
    np.testing.assert_array_equal(got, want)
    back, = run_op("BatchDenseToSparse", {"L": lengths, "I": indices, "O": got}, ["V2"])
    np.testing.assert_array_equal(back, [want[r, indices[k]]
                                         for k, r in enumerate(rows_of(lengths))])


def test_documented_example():
    lengths, indices = np.array([2, 3, 1], np.int32), np.arange(6, dtype=np.int64)
    values = np.arange(6, 12, dtype=F)
    dense, = run_op("BatchSparseToDense", {"L": lengths, "I": indices, "V": values}, ["O"],
                    dense_last_dim=6)
    np.testing.assert_array_equal(dense, [[6, 7, 0, 0, 0, 0], [0, 0, 8, 9, 10, 0],
                                          [0, 0, 0, 0, 0, 11]])


def test_gradients_are_each_other():
    fwd = core.CreateOperator("BatchSparseToDense", ["L", "I", "V", "S"], ["O"])
    ops, g_input = registry.get_schema("BatchSparseToDense").gradient(fwd, ["O_grad"])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("BatchDenseToSparse", ["L", "I", "O_grad"], ["V_grad"])]
    assert g_input == [None, None, "V_grad", None]
    inv = core.CreateOperator("BatchDenseToSparse", ["L", "I", "D"], ["V"])
    ops, g_input = registry.get_schema("BatchDenseToSparse").gradient(inv, ["V_grad"])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("BatchSparseToDense", ["L", "I", "V_grad", "D"], ["D_grad"])]
    assert g_input == [None, None, "D_grad"]


def test_bad_inputs_and_arguments():
    ok = {"L": np.array([1, 1], np.int32), "I": np.array([0, 2], np.int64),
          "V": np.ones(2, F)}
    op = core.CreateOperator("BatchSparseToDense", list(ok), ["O"], dense_last_dim=3)
    assert_fails_unchanged(op, {**ok, "I": np.array([0, 3], np.int64)}, EnforceError,
                           "'I'.*index 3 at position 1.*\\[0, 3\\)")
    assert_fails_unchanged(op, {**ok, "L": np.array([1, 2], np.int32)}, EnforceError,
                           "'L'.*sums to 3.*2 entries")
    assert_fails_unchanged(op, {**ok, "V": np.ones(3, F)}, EnforceError, "'V'")
    assert_fails_unchanged(op, {**ok, "L": np.array([3, -1], np.int32)}, EnforceError,
                           "negative")
    no_dim = core.CreateOperator("BatchSparseToDense", list(ok), ["O"])
    assert_fails_unchanged(no_dim, ok, EnforceError, "'dense_last_dim' must be >= 1")
    clash = core.CreateOperator("BatchSparseToDense", list(ok) + ["S"], ["O"],
                                dense_last_dim=4)
    assert_fails_unchanged(clash, {**ok, "S": np.zeros((2, 3), F)}, EnforceError,
                           "not aligned")
    op = core.CreateOperator("BatchDenseToSparse", ["L", "I", "D"], ["V"])
    assert_fails_unchanged(op, {**ok, "D": np.zeros((3, 3), F)}, EnforceError,
                           "'D'.*2 rows")
