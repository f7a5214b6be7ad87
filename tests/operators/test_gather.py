"""Gather: against a loop reference, Caffe2's golden test, its gradient maker and bad input."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparse_testing import check_gradient, gradient_ops

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError
from helpers import assert_unchanged, load_golden, run_op, snapshot


def ref_gather(data, indices, axis=0, match_outer=False, wrap=None):
    """Element-by-element Gather as Caffe2 documents it."""
    axis = axis + data.ndim if axis < 0 else axis
    wrap = axis == 0 if wrap is None else wrap
    dim = data.shape[axis]
    if dim == 0:
        return np.empty(data.shape, data.dtype)
    outer, inner = data.shape[:axis], data.shape[axis + 1:]
    idx_shape = indices.shape[axis:] if match_outer else indices.shape
    out = np.empty(outer + idx_shape + inner, data.dtype)
    for o in np.ndindex(*outer):
        for p in np.ndindex(*idx_shape):
            i = int(indices[o + p] if match_outer else indices[p])
            if wrap and i < 0:
                i += dim
            out[o + p] = data[o + (i,)]
    return out


@st.composite
def gather_case(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    dim = shape[axis]
    idx_shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    lo = -dim if axis == 0 else 0
    idx = np.array(draw(st.lists(st.integers(lo, dim - 1), min_size=int(np.prod(idx_shape)),
                                 max_size=int(np.prod(idx_shape))))).reshape(idx_shape)
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 0.5 - 3
    return data, idx.astype(dtype), axis


@given(gather_case())
def test_gather_matches_reference(case):
    data, idx, axis = case
    (out,) = run_op("Gather", {"data": data, "idx": idx}, "out", axis=axis)
    np.testing.assert_array_equal(out, ref_gather(data, idx, axis))
    assert out.dtype == data.dtype


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.bool_])
def test_gather_any_dtype_duplicates_and_negative_wrap(dtype):
    data = (np.arange(15).reshape(5, 3) % 2).astype(dtype)
    idx = np.array([[4, -1], [0, 0]], np.int64)
    (out,) = run_op("Gather", {"data": data, "idx": idx}, "out")
    np.testing.assert_array_equal(out, ref_gather(data, idx))
    assert out.shape == (2, 2, 3)


def test_gather_match_outer():
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    idx = np.array([[2, 0, 2], [1, 1, 0]], np.int32)
    axis2 = np.array([[[3, 0], [1, 1], [2, 2]], [[0, 1], [2, 3], [3, 3]]], np.int32)
    for axis, ind in ((1, idx), (2, axis2)):
        (out,) = run_op("Gather", {"data": data, "idx": ind}, "out", axis=axis, match_outer=True)
        np.testing.assert_array_equal(out, ref_gather(data, ind, axis, match_outer=True))


def test_gather_empty_cases():
    data = np.ones((4, 2), np.float32)
    (out,) = run_op("Gather", {"data": data, "idx": np.zeros(0, np.int32)}, "out")
    assert out.shape == (0, 2)
    # Caffe2's empty-batch rule: an empty gathered axis gives DATA's shape, whatever INDICES is.
    (out,) = run_op("Gather", {"data": np.ones((0, 2), np.float32),
                               "idx": np.array([[3, 1]], np.int32)}, "out")
    assert out.shape == (0, 2)


def test_gather_caffe2_golden(nets_dir):
    """Caffe2's own serialized test (gather_ops_test.test_gather_ops), read in place."""
    path = nets_dir / "yakov-helm__pytorch_exp__serialized_gather_ops_test.test_gather_ops.zip"
    op, inputs, outputs, _, _ = load_golden(path)
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(op)
    got = workspace.FetchBlob(op.output[0])
    assert got.shape == outputs[0].shape
    np.testing.assert_allclose(got, outputs[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_gradient_by_finite_differences(axis):
    data = np.random.default_rng(1).standard_normal((4, 3, 2)).astype(np.float32)
    idx = np.array([[1, 0], [1, 1], [2, 0]], np.int64) if axis != -1 else np.array([1, 1, 0])
    _, g_input = check_gradient("Gather", {"data": data, "idx": idx}, ["data"], {"axis": axis})
    assert g_input[1] is None
    if axis == 0:
        assert isinstance(g_input[0], core.GradientSlice)
        assert (str(g_input[0].indices), str(g_input[0].values)) == ("idx", "out_grad")


def test_gather_gradient_ops_as_caffe2_made_them():
    fwd = core.CreateOperator("Gather", ["D", "I"], ["O"])
    assert gradient_ops(fwd, ["O_grad"]) == ([], [core.GradientSlice("I", "O_grad"), None])
    fwd = core.CreateOperator("Gather", ["D", "I"], ["O"], dense_gradient=True)
    ops, g = gradient_ops(fwd, ["O_grad"])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("SparseToDense", ["I", "O_grad", "D"], ["D_grad"])]
    assert g == ["D_grad", None]
    fwd = core.CreateOperator("Gather", ["D", "I"], ["O"], axis=2)
    ops, g = gradient_ops(fwd, ["O_grad"])
    assert [(o.type, list(o.input)) for o in ops] == [("BatchGatherGradient", ["D", "I", "O_grad"])]
    assert {a.name: a.i for a in ops[0].arg} == {"axis": 2}
    with pytest.raises(GradientError, match="must use dense_gradient"):
        gradient_ops(core.CreateOperator("Gather", ["D", "I"], ["O"], axis=1, dense_gradient=False),
                     ["O_grad"])


def test_gather_dense_gradient_matches_finite_differences():
    data = np.random.default_rng(2).standard_normal((5, 2)).astype(np.float32)
    idx = np.array([[4, 0], [4, 4]], np.int32)
    check_gradient("Gather", {"data": data, "idx": idx}, ["data"], {"dense_gradient": True})


@pytest.mark.parametrize("idx, args, match", [
    (np.array([0, 4]), {}, r"input 1 'INDICES' \(blob 'idx'\): element 1 is 4, out of range"),
    (np.array([-5]), {}, r"element 0 is -5.*-4 <= index < 4"),
    (np.array([-1]), {"wrap_indices": False}, r"element 0 is -1.*0 <= index < 4"),
    (np.array([[0, 1]]), {"axis": 1, "match_outer": True}, r"must start with DATA's outer dims"),
    (np.array([0.0]), {}, r"must be int32 or int64, got dtype float64"),
    (np.array([0]), {"axis": 2}, r"argument 'axis' is 2.*rank 2"),
])
def test_gather_bad_input_names_blob_and_leaves_blobs(idx, args, match):
    workspace.FeedBlob("data", np.ones((4, 3), np.float32))
    workspace.FeedBlob("idx", idx)
    before = snapshot()
    with pytest.raises(EnforceError, match=match) as info:
        workspace.RunOperatorOnce(core.CreateOperator("Gather", ["data", "idx"], ["out"], **args))
    assert "Gather" in str(info.value)
    assert_unchanged(before)


def test_makers_need_a_dense_output_gradient():
    for fwd in (core.CreateOperator("Gather", ["D", "I"], ["O"]),
                core.CreateOperator("SparseLengthsSum", ["D", "I", "L"], ["O"])):
        with pytest.raises(GradientError, match=r"gradient of output 0 \('O'\) must be a dense"):
            gradient_ops(fwd, [core.GradientSlice("i", "v")])


def test_sparse_to_dense_output_too_large_names_where_its_size_came_from():
    workspace.FeedBlob("i", np.array([0, 2], np.int32))
    workspace.FeedBlob("v", np.ones(2, np.int32))
    before = snapshot()
    with pytest.raises(EnforceError, match=r"output of shape \(1000000000000000,\).*argument "
                                           r"'output_first_dim'\) does not fit in memory"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseToDense", ["i", "v"], ["out"],
                                                      output_first_dim=10**15))
    assert_unchanged(before)


def test_batch_gather_of_an_empty_batch():
    # Caffe2's BatchGather output is DATA.shape[:1] + INDICES.shape + DATA.shape[2:],
    # empty batch included (the reshape of no rows once raised NumPy's ValueError).
    data = np.ones((0, 3), np.float32)
    for idx_shape in ((0,), (0, 2)):
        (out,) = run_op("BatchGather", {"data": data, "idx": np.zeros(idx_shape, np.int32)},
                        "out")
        assert out.shape == (0,) + idx_shape
