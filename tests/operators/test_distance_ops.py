"""Row-wise distances (SquaredL2Distance, L1Distance, DotProduct, CosineSimilarity,
DotProductWithPadding) against NumPy references written here from Caffe2's docs."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def rows(X):
    return X.reshape(1, 1) if X.ndim == 0 else X.reshape(X.shape[0], int(np.prod(X.shape[1:])))


def l2_ref(X, Y):
    return (0.5 * ((rows(X) - rows(Y)) ** 2).sum(axis=1),)


def l1_ref(X, Y):
    return (np.array([np.abs(x - y).sum() for x, y in zip(rows(X), rows(Y))], X.dtype),)


def dot_ref(X, Y):
    return (np.array([np.dot(x, y) for x, y in zip(rows(X), rows(Y))], X.dtype),)


def cos_ref(X, Y):
    out = []
    for x, y in zip(rows(X), rows(Y)):
        nx, ny = max(np.dot(x, x), 1e-12), max(np.dot(y, y), 1e-12)
        out.append(np.dot(x, y) / np.sqrt(nx * ny))
    return (np.array(out, X.dtype),)


REFERENCES = {"SquaredL2Distance": l2_ref, "L1Distance": l1_ref, "DotProduct": dot_ref,
              "CosineSimilarity": cos_ref}


@settings(max_examples=12)
@given(op_type=st.sampled_from(sorted(REFERENCES)),
       shape=st.sampled_from([(3,), (4, 2), (2, 3, 2), (), (0, 3), (3, 0)]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_forward_matches_numpy(op_type, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    X, Y = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    op = core.CreateOperator(op_type, ["X", "Y"], ["Z"])
    (Z,) = check_reference(op, [X, Y], REFERENCES[op_type], threshold=1e-5)
    assert Z.dtype == dtype


def test_cosine_of_a_zero_row_uses_the_epsilon_norm():
    X = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    Y = np.array([[1.0, 0.0], [3.0, 4.0]], np.float32)
    (Z,) = check_reference(core.CreateOperator("CosineSimilarity", ["X", "Y"], ["Z"]),
                           [X, Y], cos_ref)
    np.testing.assert_allclose(Z, [0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("op_type", sorted(REFERENCES))
@pytest.mark.parametrize("index", [0, 1])
def test_gradient_by_finite_differences(op_type, index):
    rng = np.random.default_rng(index)
    X, Y = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 2))
    X += 0.1 * np.sign(X - Y)  # L1: away from its kink
    check_gradient(core.CreateOperator(op_type, ["X", "Y"], ["Z"]), [X, Y], index)


@pytest.mark.parametrize("op_type", sorted(REFERENCES) + ["DotProductWithPadding"])
def test_gradient_op_is_caffe2s(op_type):
    ops, grads = gradient_ops(core.CreateOperator(op_type, ["X", "Y"], ["Z"]))
    assert [(o.type, list(o.input), list(o.output)) for o in ops] == [
        (op_type + "Gradient", ["X", "Y", "Z_grad"], ["X_grad", "Y_grad"])]
    assert grads == {"X": "X_grad", "Y": "Y_grad"}


def test_l1_gradient_is_zero_where_x_equals_y():
    X = np.array([[1.0, 2.0, 3.0]], np.float32)
    Y = np.array([[1.0, 5.0, 0.0]], np.float32)
    op = core.CreateOperator("L1DistanceGradient", ["X", "Y", "dZ"], ["dX", "dY"])
    check_reference(op, [X, Y, np.array([2.0], np.float32)],
                    lambda X, Y, dZ: (np.array([[0.0, -2.0, 2.0]]), np.array([[0.0, 2.0, -2.0]])))


def padding_ref(pad_value, replicate):
    def ref(X, Y):
        out = []
        for x, y in zip(rows(X), rows(Y)):
            long_, short = (x, y) if len(x) > len(y) else (y, x)
            if replicate:
                short = np.tile(short, len(long_) // len(short))
            else:
                short = np.concatenate([short, np.full(len(long_) - len(short), pad_value)])
            out.append(np.dot(long_, short))
        return (np.array(out, X.dtype),)
    return ref


@pytest.mark.parametrize("replicate", [False, True])
@pytest.mark.parametrize("dx, dy", [(6, 2), (2, 6), (3, 3)])
def test_dot_product_with_padding(replicate, dx, dy):
    rng = np.random.default_rng(dx * 10 + dy)
    X, Y = rng.standard_normal((4, dx)), rng.standard_normal((4, dy))
    op = core.CreateOperator("DotProductWithPadding", ["X", "Y"], ["Z"], pad_value=0.5,
                             replicate=replicate)
    check_reference(op, [X, Y], padding_ref(0.5, replicate), threshold=1e-10)
    for index in (0, 1):
        check_gradient(op, [X, Y], index)


def test_replicate_needs_a_whole_multiple():
    op = core.CreateOperator("DotProductWithPadding", ["X", "Y"], ["Z"], replicate=True)
    assert_fails_unchanged(op, [np.ones((2, 5), np.float32), np.ones((2, 2), np.float32)],
                           EnforceError, "whole multiple")


def test_dot_product_cost_is_caffe2s():
    workspace.FeedBlob("X", np.ones((4, 3), np.float32))
    workspace.FeedBlob("Y", np.ones((4, 3), np.float32))
    cost = workspace.GetOperatorCost(core.CreateOperator("DotProduct", ["X", "Y"], ["Z"]),
                                     ["X", "Y"])
    assert (cost.flops, cost.bytes_written, cost.bytes_read) == (24, 16, 96)


@pytest.mark.parametrize("op_type", sorted(REFERENCES) + ["DotProductWithPadding"])
def test_shape_inference_matches_the_run(op_type):
    assert_inference_matches_run(core.CreateOperator(op_type, ["X", "Y"], ["Z"]),
                                 [np.ones((3, 2), np.float32), np.ones((3, 2), np.float32)])


def test_bad_input_fails_and_changes_nothing():
    op = core.CreateOperator("SquaredL2Distance", ["X", "Y"], ["Z"])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)],
                           EnforceError, r"\(2, 3\) and .*\(3, 2\) must have one shape")
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.ones((2, 3))],
                           EnforceError, "has dtype float64, expected float32")
    assert_fails_unchanged(op, [np.ones(3, np.int32), np.ones(3, np.int32)],
                           EnforceError, "must be float32 or float64, got int32")


@pytest.mark.parametrize("dz", [np.ones(3, np.float32), np.ones((2, 1), np.float32),
                                np.ones(2, np.float64), np.array(["a", "b"], dtype=object)])
def test_gradient_refuses_a_bad_output_gradient(dz):
    op = core.CreateOperator("DotProductGradient", ["X", "Y", "dZ"], ["dX", "dY"])
    assert_fails_unchanged(op, [np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32), dz],
                           EnforceError, "dZ")
