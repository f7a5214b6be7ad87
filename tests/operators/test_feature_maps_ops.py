"""Merge*FeatureTensors against a per-example Python merge of (key, value) entries."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

# per input, per example: a list of (key, [values]) entries
examples_st = st.integers(1, 3).flatmap(lambda n: st.lists(
    st.lists(st.lists(st.tuples(st.integers(1, 9), st.lists(st.integers(0, 9), max_size=3)),
                      max_size=2), min_size=n, max_size=n), min_size=1, max_size=3))


def merged(inputs):
    """Per example: the entries of input 1, then input 2, ..."""
    n = len(inputs[0])
    return [[entry for source in inputs for entry in source[e]] for e in range(n)]


def multi_list_feeds(inputs):
    feeds = {}
    for k, source in enumerate(inputs):
        feeds[f"l{k}"] = np.array([len(ex) for ex in source], np.int32)
        feeds[f"k{k}"] = np.array([key for ex in source for key, _ in ex], np.int64)
        feeds[f"vl{k}"] = np.array([len(v) for ex in source for _, v in ex], np.int32)
        feeds[f"vk{k}"] = np.array([100 + x for ex in source for _, v in ex for x in v],
                                   np.int64)
        feeds[f"vv{k}"] = np.array([x / 2 for ex in source for _, v in ex for x in v],
                                   np.float32)
    return feeds


@given(examples_st)
def test_multi_list_and_map(inputs):
    feeds = multi_list_feeds(inputs)
    want = merged(inputs)
    names = [f"{p}{k}" for k in range(len(inputs)) for p in ("l", "k", "vl", "vv")]
    lengths, keys, vlen, values = run_op("MergeMultiListFeatureTensors",
                                         {n: feeds[n] for n in names}, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(lengths, [len(ex) for ex in want])
    np.testing.assert_array_equal(keys, [key for ex in want for key, _ in ex])
    np.testing.assert_array_equal(vlen, [len(v) for ex in want for _, v in ex])
    np.testing.assert_allclose(values, [x / 2 for ex in want for _, v in ex for x in v])
    names = [f"{p}{k}" for k in range(len(inputs)) for p in ("l", "k", "vl", "vk", "vv")]
    out = run_op("MergeMultiMapFeatureTensors", {n: feeds[n] for n in names},
                 ["a", "b", "c", "d", "e"])
    np.testing.assert_array_equal(out[3], [100 + x for ex in want for _, v in ex for x in v])
    # gradient: each input gets back the gradient of its own values
    grad = np.arange(values.size, dtype=np.float32)
    names = [f"{p}{k}" for k in range(len(inputs)) for p in ("l", "vl")]
    grads = run_op("MergeMultiListFeatureTensorsGradient",
                   {**{n: feeds[n] for n in names}, "g": grad},
                   [f"d{k}" for k in range(len(inputs))])
    flat_sources = []  # (input, value index in that input) in merged order
    starts = [np.concatenate([[0], np.cumsum(feeds[f"vl{k}"])]) for k in range(len(inputs))]
    entry_no = [0] * len(inputs)
    for e in range(len(inputs[0])):
        for k, source in enumerate(inputs):
            for _key, v in source[e]:
                j = entry_no[k]
                flat_sources += [(k, starts[k][j] + i) for i in range(len(v))]
                entry_no[k] += 1
    for p, (k, idx) in enumerate(flat_sources):
        assert grads[k][idx] == grad[p]


def test_single_ops_and_dense():
    out = run_op("MergeSingleListFeatureTensors",
                 {"l1": np.array([2, 1], np.int32), "v1": np.array([1., 2., 3.], np.float32),
                  "p1": np.array([True, False]), "l2": np.array([0, 1], np.int32),
                  "v2": np.array([4.], np.float32), "p2": np.array([True, True])},
                 ["a", "b", "c", "d"], feature_ids=[7, 8])
    np.testing.assert_array_equal(out[0], [2, 1])
    np.testing.assert_array_equal(out[1], [7, 8, 8])
    np.testing.assert_array_equal(out[2], [2, 0, 1])
    np.testing.assert_array_equal(out[3], [1., 2., 4.])  # example 1's value of input 1 is absent
    out = run_op("MergeDenseFeatureTensors",
                 {"x": np.array([[1., 2.], [3., 4.]]), "p": np.array([[False, True],
                                                                      [True, True]])},
                 ["a", "b", "c"], feature_ids=[5, 6])
    np.testing.assert_array_equal(out[1], [6, 5, 6])
    np.testing.assert_array_equal(out[2], [2., 3., 4.])
    op = core.CreateOperator("MergeSingleScalarFeatureTensors", ["v", "p"], ["a", "b", "c"],
                             feature_ids=[1, 2])
    assert_fails_unchanged(op, {"v": np.ones(2), "p": np.array([True, False])}, EnforceError,
                           "feature_ids")


def test_gradient_makers_route_value_gradients():
    values = np.array([1.0, 2.0, 3.0])
    op = core.CreateOperator("MergeMultiScalarFeatureTensors",
                             ["l1", "k1", "v1", "l2", "k2", "v2"], ["a", "b", "c"])
    inputs = [np.array([1, 2], np.int32), np.array([1, 2, 3], np.int64), values,
              np.array([2, 0], np.int32), np.array([4, 5], np.int64), values[:2] * 3]
    check_gradient(op, inputs, 2, output_index=2)
    check_gradient(op, inputs, 5, output_index=2)
    op = core.CreateOperator("MergeSingleScalarFeatureTensors", ["v1", "p1", "v2", "p2"],
                             ["a", "b", "c"], feature_ids=[1, 2])
    check_gradient(op, [values[:2], np.array([True, False]), values[1:],
                        np.array([True, True])], 2, output_index=2)
