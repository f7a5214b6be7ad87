"""Reduce{Min,Max,Sum,Mean,L1,L2}, ReduceFront/Back{Sum,Mean,Max}, SumElements(Int),
SumSqrElements, Rowwise/ColwiseMax against NumPy references written here."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

NORMS = {"ReduceMin": np.min, "ReduceMax": np.max, "ReduceSum": np.sum, "ReduceMean": np.mean,
         "ReduceL1": lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims),
         "ReduceL2": lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims))}


def distinct(shape, seed, dtype=np.float64):
    """Values without ties (min/max gradients) and away from 0 (L1's kink)."""
    rng = np.random.default_rng(seed)
    x = (rng.permutation(int(np.prod(shape))) + 0.5) * rng.choice([-1, 1], int(np.prod(shape)))
    return (x / 4).reshape(shape).astype(dtype)


@settings(max_examples=25)
@given(op_type=st.sampled_from(sorted(NORMS)), shape=st.sampled_from([(3,), (2, 3), (2, 3, 2)]),
       axes=st.sampled_from([None, [0], [-1], [0, -1]]), keepdims=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_reduce_matches_numpy(op_type, shape, axes, keepdims, dtype, seed):
    x = distinct(shape, seed, dtype)
    args = {} if axes is None else {"axes": axes}
    op = core.CreateOperator(op_type, ["X"], ["Y"], keepdims=keepdims, **args)
    ref_axes = None if axes is None else tuple(sorted({a % x.ndim for a in axes}))
    (y,) = check_reference(op, [x], lambda x: (NORMS[op_type](x, axis=ref_axes,
                                                               keepdims=keepdims),), 1e-5)
    assert y.dtype == dtype


@pytest.mark.parametrize("op_type", sorted(NORMS))
@pytest.mark.parametrize("axes", [[1], [0, 2]])
def test_reduce_gradient(op_type, axes):
    op = core.CreateOperator(op_type, ["X"], ["Y"], axes=axes, keepdims=0)
    check_gradient(op, [distinct((2, 3, 2), 1)], 0)


def test_reduce_gradient_op_is_caffe2s():
    ops, grads = gradient_ops(core.CreateOperator("ReduceL2", ["X"], ["Y"], axes=[1]))
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        ("ReduceL2Gradient", ["Y_grad", "X", "Y"], ["X_grad"])]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op_type", ["ReduceSum", "ReduceMin", "ReduceMax"])
def test_integer_reductions(op_type, dtype):
    x = np.array([[3, -1, 4], [1, 5, -9]], dtype)
    (y,) = check_reference(core.CreateOperator(op_type, ["X"], ["Y"], axes=[1], keepdims=0),
                           [x], lambda x: (NORMS[op_type](x, axis=1, keepdims=False),))
    assert y.dtype == dtype


def test_min_max_over_nothing_start_from_the_dtype_extremes():
    x = np.zeros((2, 0), np.float32)
    (y,) = check_reference(core.CreateOperator("ReduceMax", ["X"], ["Y"], axes=[1]), [x],
                           lambda x: (np.full((2, 1), np.finfo(np.float32).min),))
    (y,) = check_reference(core.CreateOperator("ReduceMin", ["X"], ["Y"], axes=[1]), [x],
                           lambda x: (np.full((2, 1), np.finfo(np.float32).max),))


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_shape_inference(keepdims):
    assert_inference_matches_run(core.CreateOperator("ReduceSum", ["X"], ["Y"], axes=[-1, 0],
                                                     keepdims=keepdims),
                                 [np.ones((2, 3, 4), np.float32)])
    assert_inference_matches_run(core.CreateOperator("ReduceMean", ["X"], ["Y"],
                                                     keepdims=keepdims),
                                 [np.ones((2, 3), np.float32)])


def test_reduce_bad_input():
    op = core.CreateOperator("ReduceMean", ["X"], ["Y"], axes=[2])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32)], EnforceError,
                           r"axis 2 in 'axes' \[2\] is out of range .* rank 2")
    assert_fails_unchanged(core.CreateOperator("ReduceL1", ["X"], ["Y"]),
                           [np.ones(3, np.int32)], EnforceError, "supports float32 and float64")


# -- ReduceFront* / ReduceBack* ------------------------------------------------------
def front_back_ref(kind, front, k, lengths=None):
    def ref(x, *_):
        ndim = x.ndim
        split = k if front else ndim - k
        rows, cols = int(np.prod(x.shape[:split])), int(np.prod(x.shape[split:]))
        m = x.reshape(rows, cols) if front else x.reshape(rows, cols).T  # reduce axis 0
        kept = x.shape[split:] if front else x.shape[:split]
        out = []
        for j in range(m.shape[1]):
            col = m[:(m.shape[0] if lengths is None else lengths[j]), j]
            out.append({"Sum": np.sum, "Mean": np.mean, "Max": np.max}[kind](col))
        return (np.array(out, x.dtype).reshape(kept),)
    return ref


@pytest.mark.parametrize("kind", ["Sum", "Mean", "Max"])
@pytest.mark.parametrize("side", ["Front", "Back"])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_front_back_match_numpy(kind, side, k):
    x = distinct((3, 2, 4), k)
    op = core.CreateOperator(f"Reduce{side}{kind}", ["X"], ["Y"], num_reduce_dim=k)
    check_reference(op, [x], front_back_ref(kind, side == "Front", k))
    check_gradient(op, [x], 0)
    assert_inference_matches_run(op, [x])


@pytest.mark.parametrize("kind", ["Sum", "Mean", "Max"])
@pytest.mark.parametrize("side", ["Front", "Back"])
def test_front_back_with_lengths(kind, side):
    x = distinct((4, 3), 7)
    lengths = np.array([2, 4, 1], np.int32) if side == "Front" else np.array([1, 3, 2, 3],
                                                                               np.int32)
    op = core.CreateOperator(f"Reduce{side}{kind}", ["X", "L"], ["Y"])
    check_reference(op, [x, lengths], front_back_ref(kind, side == "Front", 1, lengths))
    check_gradient(op, [x, lengths], 0)


def test_sum_gradient_takes_x_or_its_shape():
    dy = np.arange(4.0).reshape(2, 2)
    for second in (np.zeros((3, 2, 2)), np.array([3, 2, 2], np.int64)):
        op = core.CreateOperator("ReduceFrontMeanGradient", ["dY", "X"], ["dX"])
        check_reference(op, [dy, second], lambda dy, _: (np.broadcast_to(dy / 3, (3, 2, 2)),))


def test_front_back_gradient_ops_are_caffe2s():
    ops, _ = gradient_ops(core.CreateOperator("ReduceBackMax", ["X", "L"], ["Y"]))
    assert [(o.type, list(o.input)) for o in ops] == [
        ("ReduceBackMaxGradient", ["Y_grad", "X", "Y", "L"])]
    ops, _ = gradient_ops(core.CreateOperator("ReduceFrontSum", ["X"], ["Y"]))
    assert [(o.type, list(o.input)) for o in ops] == [("ReduceFrontSumGradient", ["Y_grad", "X"])]


def test_front_back_bad_lengths():
    op = core.CreateOperator("ReduceFrontSum", ["X", "L"], ["Y"])
    x = np.ones((4, 3), np.float32)
    assert_fails_unchanged(op, [x, np.array([1, 2], np.int32)], EnforceError, "has 2 lengths")
    assert_fails_unchanged(op, [x, np.array([1, 5, 2], np.int32)], EnforceError, r"\[0, 4\]")
    op = core.CreateOperator("ReduceFrontSum", ["X", "L"], ["Y"], num_reduce_dim=2)
    assert_fails_unchanged(op, [x, np.array([1, 1, 1], np.int32)], EnforceError,
                           "number of reduce dimensions should be one")


# -- reduction_ops: SumElements, SumSqrElements, SumElementsInt, Rowwise/ColwiseMax -----
@pytest.mark.parametrize("average", [0, 1])
def test_sum_elements(average):
    x = distinct((3, 4), 3)
    op = core.CreateOperator("SumElements", ["X"], ["S"], average=average)
    (s,) = check_reference(op, [x], lambda x: (np.mean(x) if average else np.sum(x),))
    assert s.shape == ()
    check_gradient(op, [x], 0)
    op = core.CreateOperator("SumSqrElements", ["X"], ["S"], average=average)
    check_reference(op, [x], lambda x: (np.mean(x * x) if average else np.sum(x * x),))


def test_sum_elements_int():
    x = np.array([[2**30, 2**30], [5, -3]], np.int32)  # wraps around, as int32 C++ does
    (s,) = check_reference(core.CreateOperator("SumElementsInt", ["X"], ["S"]), [x],
                           lambda x: (np.array(x.sum(dtype=np.int32)),))
    assert s.dtype == np.int32
    assert_fails_unchanged(core.CreateOperator("SumElementsInt", ["X"], ["S"]),
                           [np.ones(3, np.int64)], EnforceError, "int32 only")


@pytest.mark.parametrize("op_type, axis", [("RowwiseMax", 2), ("ColwiseMax", 1)])
def test_rowwise_colwise_max(op_type, axis):
    x = distinct((2, 3, 4), axis)
    op = core.CreateOperator(op_type, ["X"], ["Y"])
    check_reference(op, [x], lambda x: (x.max(axis=axis),))
    check_gradient(op, [x], 0)
    assert_inference_matches_run(op, [x])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32)], EnforceError, "must be 3-D")
