"""BatchGather, BatchGatherGradient and SparseToDense against loop references."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparse_testing import check_gradient, gradient_ops

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, load_golden, run_op, snapshot


def ref_batch_gather(data, indices):
    out = np.empty(data.shape[:1] + indices.shape + data.shape[2:], data.dtype)
    for b in range(data.shape[0]):
        for p in np.ndindex(*indices.shape):
            out[(b,) + p] = data[b, indices[p]]
    return out


def ref_batch_gather_gradient(data, indices, grad):
    out = np.zeros(data.shape, data.dtype)
    for b in range(data.shape[0]):
        for p in np.ndindex(*indices.shape):
            out[b, indices[p]] += grad[(b,) + p]
    return out


@st.composite
def batch_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    idx_shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    n = int(np.prod(idx_shape))
    idx = np.array(draw(st.lists(st.integers(0, shape[1] - 1), min_size=n, max_size=n)))
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    data = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    return data, idx.reshape(idx_shape).astype(dtype)


@given(batch_case())
def test_batch_gather_and_gradient_match_reference(case):
    data, idx = case
    (out,) = run_op("BatchGather", {"data": data, "idx": idx}, "out")
    np.testing.assert_array_equal(out, ref_batch_gather(data, idx))
    grad = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    (dd,) = run_op("BatchGatherGradient", {"data": data, "idx": idx, "g": grad}, "dd")
    np.testing.assert_allclose(dd, ref_batch_gather_gradient(data, idx, grad), rtol=1e-6,
                               atol=1e-6)


def test_batch_gather_gradient_by_finite_differences():
    data = np.random.default_rng(4).standard_normal((3, 4, 2)).astype(np.float32)
    idx = np.array([[3, 3], [0, 3]], np.int32)  # duplicates add up
    ops, g = check_gradient("BatchGather", {"data": data, "idx": idx}, ["data"])
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == \
        [("BatchGatherGradient", ["data", "idx", "out_grad"], ["data_grad"])]
    assert g == ["data_grad", None]


def test_batch_gather_match_outer_gradient():
    data = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)
    idx = np.array([[1, 1, 3], [0, 2, 2]], np.int64)
    check_gradient("Gather", {"data": data, "idx": idx}, ["data"],
                   {"axis": 1, "match_outer": True})


def test_batch_gather_caffe2_golden_with_gradient(nets_dir):
    """Caffe2's gather_ops_test.test_batch_gather_ops: forward and its grad_0.pb op."""
    path = nets_dir / ("yakov-helm__pytorch_exp__serialized_gather_ops_test."
                       "test_batch_gather_ops.zip")
    op, inputs, outputs, _, grads = load_golden(path)
    grad_op = grads[0]  # grad_0.pb
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(op)
    np.testing.assert_allclose(workspace.FetchBlob("output"), outputs[0], rtol=1e-4, atol=1e-4)
    made, _ = gradient_ops(op, ["output_grad"])
    assert [(o.type, list(o.input), list(o.output)) for o in made] == \
        [(grad_op.type, list(grad_op.input), list(grad_op.output))]
    workspace.FeedBlob("output_grad", np.ones_like(outputs[0]))
    workspace.RunOperatorOnce(grad_op)
    np.testing.assert_array_equal(
        workspace.FetchBlob("data_grad"),
        ref_batch_gather_gradient(inputs[0], inputs[1], np.ones_like(outputs[0])))


@pytest.mark.parametrize("op_type, feeds, match", [
    ("BatchGather", {"data": np.ones((3,), np.float32), "idx": np.array([0])}, r"rank >= 2"),
    ("BatchGather", {"data": np.ones((2, 3), np.float32), "idx": np.array([3])},
     r"element 0 is 3.*0 <= index < 3"),
    ("BatchGather", {"data": np.ones((2, 3), np.float32), "idx": np.array([-1])},
     r"element 0 is -1"),
    ("BatchGatherGradient", {"data": np.ones((2, 3), np.float32), "idx": np.array([1]),
                             "g": np.ones((2, 2), np.float32)},
     r"input 2 'GRAD' \(blob 'g'\) has shape \(2, 2\), expected .*\(2, 1\)"),
    ("BatchGatherGradient", {"data": np.ones((2, 3), np.float32), "idx": np.array([5]),
                             "g": np.ones((2, 1), np.float32)}, r"element 0 is 5"),
])
def test_batch_gather_bad_input(op_type, feeds, match):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, list(feeds), ["out"]))
    assert_unchanged(before)


def test_sparse_to_dense_reference_and_gradient():
    idx = np.array([3, 0, 3], np.int64)
    vals = np.arange(6, dtype=np.float32).reshape(3, 2)
    (out,) = run_op("SparseToDense", {"idx": idx, "vals": vals}, "out")
    want = np.zeros((4, 2), np.float32)
    for j, i in enumerate(idx):
        want[i] += vals[j]
    np.testing.assert_array_equal(out, want)
    (out,) = run_op("SparseToDense", {"idx": idx, "vals": vals,
                                      "like": np.zeros((6, 9), np.float32)}, "out")
    assert out.shape == (6, 2)
    check_gradient("SparseToDense", {"idx": idx, "vals": vals}, ["vals"])
    with pytest.raises(EnforceError, match=r"element 0 is 3.*0 <= index < 2"):
        run_op("SparseToDense", {"idx": idx, "vals": vals}, "out", output_first_dim=2)
