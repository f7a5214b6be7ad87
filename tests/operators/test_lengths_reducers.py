"""Lengths*/SparseLengths* reducers and their gradient ops against loop references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparse_testing import check_gradient, gradient_ops

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, run_op, snapshot


def ref_reduce(data, lengths, indices=None, weights=None, mean=False):
    """Segment by segment, row by row, in float64."""
    out = np.zeros((len(lengths),) + data.shape[1:], np.float64)
    r = 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            row = data[indices[r] if indices is not None else r].astype(np.float64)
            out[k] += row * (weights[r] if weights is not None else 1.0)
            r += 1
        if mean and n:
            out[k] /= n
    return out


def ref_expand(grad, lengths, weights=None, mean=False):
    rows = []
    for k, n in enumerate(lengths):
        for _ in range(n):
            scale = (weights[len(rows)] if weights is not None else 1.0) / (n if mean else 1)
            rows.append(grad[k].astype(np.float64) * scale)
    return np.array(rows).reshape((len(rows),) + grad.shape[1:])


@st.composite
def sparse_case(draw):
    lengths = draw(st.lists(st.integers(0, 4), max_size=6))
    n_rows = draw(st.integers(1, 6))
    block = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    total = sum(lengths)
    # few rows and many lookups: duplicates are the rule, not the exception
    indices = np.array(draw(st.lists(st.integers(0, n_rows - 1), min_size=total,
                                     max_size=total)), dtype=draw(st.sampled_from(["i4", "i8"])))
    rng = np.random.default_rng(total + n_rows)
    data = rng.standard_normal((n_rows,) + block).astype(draw(st.sampled_from(["f4", "f2"])))
    weights = rng.standard_normal(total).astype(np.float32)
    lengths = np.array(lengths, dtype=draw(st.sampled_from(["i4", "i8"])))
    return data, indices, lengths, weights


@given(sparse_case())
def test_sparse_lengths_ops_match_reference(case):
    data, idx, lengths, w = case
    tol = dict(rtol=1e-5, atol=1e-5)
    feeds = {"data": data, "idx": idx, "len": lengths}
    (out,) = run_op("SparseLengthsSum", feeds, "out")
    assert out.dtype == np.float32 and out.shape == (len(lengths),) + data.shape[1:]
    np.testing.assert_allclose(out, ref_reduce(data, lengths, idx), **tol)
    (out,) = run_op("SparseLengthsMean", feeds, "out")
    np.testing.assert_allclose(out, ref_reduce(data, lengths, idx, mean=True), **tol)
    (out,) = run_op("SparseLengthsWeightedSum", {"data": data, "w": w, "idx": idx,
                                                 "len": lengths}, "out")
    np.testing.assert_allclose(out, ref_reduce(data, lengths, idx, w), **tol)


@given(sparse_case())
def test_lengths_ops_and_gradient_ops_match_reference(case):
    data, idx, lengths, w = case
    data = np.resize(data.astype(np.float32), (int(lengths.sum()),) + data.shape[1:])
    (out,) = run_op("LengthsSum", {"data": data, "len": lengths}, "out")
    np.testing.assert_allclose(out, ref_reduce(data, lengths), rtol=1e-5, atol=1e-5)
    (out,) = run_op("LengthsMean", {"data": data, "len": lengths}, "out")
    np.testing.assert_allclose(out, ref_reduce(data, lengths, mean=True), rtol=1e-5, atol=1e-5)
    g = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    feeds = {"g": g, "len": lengths}
    for op_type, extra, mean in (
            ("LengthsSumGradient", {}, False), ("SparseLengthsSumGradient", {}, False),
            ("LengthsIndicesInGradientSumGradient", {"data": data}, False),
            ("SparseLengthsIndicesInGradientSumGradient", {"idx": idx}, False),
            ("LengthsMeanGradient", {}, True), ("SparseLengthsMeanGradient", {}, True),
            ("LengthsIndicesInGradientMeanGradient", {"data": data}, True),
            ("SparseLengthsIndicesInGradientMeanGradient", {"idx": idx}, True)):
        (got,) = run_op(op_type, {**feeds, **extra}, "grad")
        np.testing.assert_allclose(got, ref_expand(g, lengths, mean=mean), rtol=1e-6,
                                   atol=1e-6, err_msg=op_type)
    for op_type, extra in (("SparseLengthsWeightedSumGradient", {}),
                           ("SparseLengthsIndicesInGradientWeightedSumGradient", {"idx": idx})):
        (got,) = run_op(op_type, {"w": w, **feeds, **extra}, "grad")
        np.testing.assert_allclose(got, ref_expand(g, lengths, w), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lengths", [[2, 0, 3], [0, 0], [5], [1, 1, 1, 1, 1], [0, 5, 0]])
@pytest.mark.parametrize("op_type", ["SparseLengthsSum", "SparseLengthsMean",
                                     "SparseLengthsWeightedSum"])
def test_sparse_gradients_by_finite_differences(op_type, lengths):
    rng = np.random.default_rng(len(lengths))
    data = rng.standard_normal((4, 2)).astype(np.float32)
    lengths = np.array(lengths, np.int32)
    idx = np.array([3, 1, 3, 3, 0][:lengths.sum()], np.int64)
    feeds = {"data": data, "idx": idx, "len": lengths}
    if op_type == "SparseLengthsWeightedSum":
        feeds = {"data": data, "w": rng.standard_normal(idx.size).astype(np.float32),
                 "idx": idx, "len": lengths}
    _, g = check_gradient(op_type, feeds, ["data"])
    assert isinstance(g[0], core.GradientSlice) and str(g[0].indices) == "idx"
    assert all(x is None for x in g[1:])


@pytest.mark.parametrize("lengths", [[2, 0, 3], [0, 0, 0], [5]])
def test_weighted_sum_grad_on_weights_by_finite_differences(lengths):
    rng = np.random.default_rng(11)
    lengths = np.array(lengths, np.int32)
    n = int(lengths.sum())
    feeds = {"data": rng.standard_normal((4, 3)).astype(np.float32),
             "w": rng.standard_normal(n).astype(np.float32),
             "idx": rng.integers(0, 4, n).astype(np.int32), "len": lengths}
    ops, g = check_gradient("SparseLengthsWeightedSum", feeds, ["data", "w"],
                            {"grad_on_weights": True})
    assert ops[0].type == "SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient"
    assert list(ops[0].input) == ["w", "out_grad", "len", "data", "idx"]
    assert g[1] == "w_grad" and g[2] is None and g[3] is None
    # the 1-or-2-output registration of the same gradient agrees
    (values, wg) = run_op("SparseLengthsWeightedSumWithMainInputGradient",
                          {"w": feeds["w"], "out_grad": workspace.FetchBlob("out_grad"),
                           "len": lengths, "data": feeds["data"], "idx": feeds["idx"]},
                          ["v2", "wg2"])
    np.testing.assert_array_equal(values, workspace.FetchBlob("data_grad_values"))
    np.testing.assert_array_equal(wg, workspace.FetchBlob("w_grad"))


@pytest.mark.parametrize("op_type", ["LengthsSum", "LengthsMean"])
def test_lengths_gradients_by_finite_differences(op_type):
    data = np.random.default_rng(12).standard_normal((5, 2)).astype(np.float32)
    ops, g = check_gradient(op_type, {"data": data, "len": np.array([2, 0, 3], np.int64)},
                            ["data"])
    kind = op_type[len("Lengths"):]
    assert [(o.type, list(o.input)) for o in ops] == \
        [(f"LengthsIndicesInGradient{kind}Gradient", ["out_grad", "len", "data"])]
    assert g == ["data_grad", None]


def test_makers_emit_caffe2_gradient_ops():
    cases = {
        "SparseLengthsSum": ("SparseLengthsIndicesInGradientSumGradient", ["dO", "L", "I"]),
        "SparseLengthsMean": ("SparseLengthsIndicesInGradientMeanGradient", ["dO", "L", "I"]),
    }
    for op_type, (grad_type, grad_inputs) in cases.items():
        ops, g = gradient_ops(core.CreateOperator(op_type, ["D", "I", "L"], ["O"]), ["dO"])
        assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
            [(grad_type, grad_inputs, ["D_grad_values"])]
        assert g == [core.GradientSlice("I", "D_grad_values"), None, None]
    ops, g = gradient_ops(core.CreateOperator("SparseLengthsWeightedSum", ["D", "W", "I", "L"],
                                              ["O"]), ["dO"])
    assert [(o.type, list(o.input)) for o in ops] == \
        [("SparseLengthsIndicesInGradientWeightedSumGradient", ["W", "dO", "L", "I"])]
    assert g == [core.GradientSlice("I", "D_grad_values"), None, None, None]


def test_empty_inputs():
    data = np.ones((3, 2), np.float32)
    (out,) = run_op("SparseLengthsSum", {"data": data, "idx": np.zeros(0, np.int32),
                                         "len": np.zeros(0, np.int32)}, "out")
    assert out.shape == (0, 2)
    (out,) = run_op("SparseLengthsMean", {"data": data, "idx": np.zeros(0, np.int64),
                                          "len": np.zeros(4, np.int32)}, "out")
    np.testing.assert_array_equal(out, np.zeros((4, 2), np.float32))
    (out,) = run_op("LengthsSum", {"data": np.zeros((0, 5), np.float32),
                                   "len": np.zeros(2, np.int64)}, "out")
    np.testing.assert_array_equal(out, np.zeros((2, 5), np.float32))


def test_long_segments_take_the_reduceat_path():
    rng = np.random.default_rng(13)
    lengths = np.array([0, 50, 1, 0, 1, 1], np.int32)  # padding would be 6x: reduceat
    data = rng.standard_normal((7, 3)).astype(np.float32)
    idx = rng.integers(0, 7, 53).astype(np.int64)
    (out,) = run_op("SparseLengthsSum", {"data": data, "idx": idx, "len": lengths}, "out")
    np.testing.assert_allclose(out, ref_reduce(data, lengths, idx), rtol=1e-5, atol=1e-5)


_BAD = [
    ("SparseLengthsSum", {"idx": np.array([0, 4]), "len": np.array([2], np.int32)},
     r"input 1 'INDICES' \(blob 'idx'\): element 1 is 4, out of range for DATA with 4 rows"),
    ("SparseLengthsSum", {"idx": np.array([0, -1]), "len": np.array([2], np.int32)},
     r"element 1 is -1"),
    ("SparseLengthsSum", {"idx": np.array([0, 1]), "len": np.array([1, 2], np.int32)},
     r"input 2 'LENGTHS' \(blob 'len'\) sums to 3, but must sum to 2"),
    ("SparseLengthsMean", {"idx": np.array([0, 1]), "len": np.array([3, -1], np.int64)},
     r"element 1 is -1; lengths must be non-negative"),
    ("SparseLengthsSum", {"idx": np.array([[0, 1]]), "len": np.array([2], np.int32)},
     r"'INDICES' .* must be a vector"),
    ("SparseLengthsSum", {"idx": np.array([0, 1]), "len": np.array([2.0])},
     r"'LENGTHS' .* must be int32 or int64"),
    ("SparseLengthsWeightedSum", {"w": np.ones(3, np.float32), "idx": np.array([0, 1]),
                                  "len": np.array([2], np.int32)},
     r"input 1 'SCALARS' \(blob 'w'\) has 3 weights, expected one per index \(2\)"),
    ("LengthsSum", {"len": np.array([1, 2], np.int32)},
     r"sums to 3, but must sum to 4 \(the number of DATA rows\)"),
    ("SparseLengthsIndicesInGradientSumGradient",
     {"g": np.ones((2, 3), np.float32), "len": np.array([1, 1], np.int32),
      "idx": np.array([0, 1, 2])}, r"input 2 'INDICES' \(blob 'idx'\) has shape \(3,\), expected"),
    ("SparseLengthsSumGradient", {"g": np.ones((3, 3), np.float32),
                                  "len": np.array([1, 1], np.int32)},
     r"input 0 'SEGMENT_GRADS' \(blob 'g'\) has 3 rows, expected one per segment"),
]


@pytest.mark.parametrize("op_type, feeds, match", _BAD)
def test_bad_input_names_op_blob_and_leaves_blobs(op_type, feeds, match):
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    inputs = feeds if "Gradient" in op_type else {"data": data, **feeds}
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("out", np.full(2, 7.0, np.float32))  # an existing output must survive
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as info:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), ["out"]))
    assert str(info.value).startswith(f"op {op_type}")
    assert_unchanged(before)


def test_float16_table_is_summed_in_float32():
    data = np.full((2, 4), 1000.5, np.float16)
    idx = np.zeros(64, np.int32)
    (out,) = run_op("SparseLengthsSum", {"data": data, "idx": idx,
                                         "len": np.array([64], np.int32)}, "out")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.full((1, 4), 64 * 1000.5))


class _ArrayModuleWithoutNumpyExtras:
    """NumPy minus what CuPy lacks (ufunc.reduceat, array repeat counts): the CUDA code path."""

    class add:  # noqa: N801 - mirrors xp.add
        at = staticmethod(np.add.at)

    def __getattr__(self, name):
        return getattr(np, name)


@given(sparse_case())
def test_segment_helpers_without_numpy_only_features(case):
    from caffe2lite.operators._segments import repeat_segments, segment_sum

    data, _, lengths, _ = case
    xp = _ArrayModuleWithoutNumpyExtras()
    rows = np.resize(data.astype(np.float32), (int(lengths.sum()),) + data.shape[1:])
    np.testing.assert_allclose(segment_sum(xp, rows, lengths), ref_reduce(rows, lengths),
                               rtol=1e-5, atol=1e-5)
    seg = np.arange(len(lengths) * 2, dtype=np.float32).reshape(-1, 2)
    np.testing.assert_array_equal(repeat_segments(xp, seg, lengths),
                                  np.repeat(seg, lengths.astype(np.int64), axis=0))


def test_glow_lengths_sum_net_runs(nets_dir):
    """A real Caffe2 text net (Glow's importer test) with one LengthsSum op."""
    from caffe2lite.protoio import load_net

    net = load_net(nets_dir / "pytorch__glow__lengths_sum.pbtxt")
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    lengths = np.array([1, 0, 5], np.int32)
    workspace.FeedBlob("data", data)
    workspace.FeedBlob("lengths", lengths)
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob("result"), ref_reduce(data, lengths))
