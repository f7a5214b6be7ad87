"""HasElements, MultiClassAccuracy, Perplexity, RowMul/ReduceTailSum, PrependDim/MergeDim
and Mish against NumPy references written here from Caffe2's documented semantics."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference, run_op


@pytest.mark.parametrize("shapes, expected", [([(0,)], False), ([(2, 0)], False),
                                              ([(0,), (3,)], True), ([(1,)], True),
                                              ([(0, 3), (0,)], False), ([()], True)])
def test_has_elements(shapes, expected):
    tensors = [np.zeros(s, np.float32) for s in shapes]
    names = [f"t{i}" for i in range(len(tensors))]
    out, = run_op(core.CreateOperator("HasElements", names, ["y"]), tensors)
    assert out.shape == () and out.dtype == np.bool_ and bool(out) is expected


def test_multi_class_accuracy():
    x = np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2],
                  [np.nan, 0.1, 0.3], [0.3, 0.3, 0.3]], np.float32)
    label = np.array([1, 1, 2, 1, 2, 0], np.int32)

    def ref(x, label):
        d = x.shape[1]
        acc, amounts = np.zeros(d), np.zeros(d, np.int32)
        for row, lab in zip(x, label):
            best = max(range(d), key=lambda j: (-np.inf if np.isnan(row[j]) else row[j], -j))
            amounts[lab] += 1
            acc[lab] += best == lab
        return [(acc / np.maximum(amounts, 1)).astype(np.float32), amounts]

    acc, amounts = check_reference(
        core.CreateOperator("MultiClassAccuracy", ["x", "label"], ["acc", "n"]), [x, label], ref)
    assert acc.dtype == np.float32 and amounts.dtype == np.int32
    np.testing.assert_allclose(acc, [1.0, 1 / 3, 1.0], rtol=1e-6)  # class 1: one of three


def test_multi_class_accuracy_rejects_labels_out_of_range():
    workspace.FeedBlob("x", np.ones((2, 3), np.float32))
    workspace.FeedBlob("label", np.array([0, 3], np.int32))
    with pytest.raises(EnforceError, match=r"input 1 'labels'.*label 3, outside \[0, 3\)"):
        workspace.RunOperatorOnce(core.CreateOperator("MultiClassAccuracy", ["x", "label"],
                                                      ["acc", "n"]))


@pytest.mark.parametrize("p", [np.array([0.5, 0.25, 0.125], np.float32),
                               np.full(5000, 0.01, np.float32), np.zeros(0, np.float32)])
def test_perplexity(p):
    def ref(p):
        value = 1.0
        for v in p.astype(np.float64):
            value *= v ** (-1.0 / len(p))
        return [np.array(value, np.float32)]

    check_reference(core.CreateOperator("Perplexity", ["p"], ["y"]), [p], ref, threshold=1e-5)


def test_row_mul_and_its_gradient():
    rng = np.random.default_rng(0)
    mat = rng.standard_normal((4, 3, 2)).astype(np.float32)
    w = rng.standard_normal(4).astype(np.float32)
    op = core.CreateOperator("RowMul", ["mat", "w"], ["y"])
    check_reference(op, [mat, w], lambda m, w: [m * w[:, None, None]])
    check_gradient(op, [mat, w], 0)
    check_gradient(op, [mat, w], 1)
    check_reference(core.CreateOperator("ReduceTailSum", ["mat"], ["s"]), [mat],
                    lambda m: [m.reshape(4, -1).sum(axis=1)], threshold=1e-5)
    empty, = run_op(core.CreateOperator("ReduceTailSum", ["mat"], ["s"]),
                    [np.zeros((0, 3), np.float32)])
    assert empty.shape == (0,)


def test_row_mul_needs_one_factor_per_row():
    workspace.FeedBlob("mat", np.ones((3, 2), np.float32))
    workspace.FeedBlob("w", np.ones(2, np.float32))
    with pytest.raises(EnforceError, match="input 1 'w'.*3 float32 factors"):
        workspace.RunOperatorOnce(core.CreateOperator("RowMul", ["mat", "w"], ["y"]))


def test_prepend_dim_merge_dim_and_gradient_through_a_net():
    x = np.arange(48, dtype=np.float32).reshape(12, 2, 2)
    out, = check_reference(core.CreateOperator("PrependDim", ["x"], ["y"], dim_size=3), [x],
                           lambda x: [x.reshape(3, 4, 2, 2)])
    check_reference(core.CreateOperator("MergeDim", ["y"], ["z"]), [out],
                    lambda y: [y.reshape(12, 2, 2)])
    ints, = run_op(core.CreateOperator("MergeDim", ["i"], ["o"]),
                   [np.arange(6, dtype=np.int64).reshape(2, 3)])
    np.testing.assert_array_equal(ints, np.arange(6))
    # Caffe2's prepend_dim test: the gradient comes back in X's shape
    rng = np.random.default_rng(1)
    workspace.FeedBlob("X", x)
    workspace.FeedBlob("Y", rng.standard_normal((3, 4, 2, 2)).astype(np.float32))
    net = core.Net("prepend")
    net.PrependDim(["X"], ["X_out"], dim_size=3)
    net.DotProduct(["X_out", "Y"], "Z")
    net.AddGradientOperators(["Z"])
    workspace.RunNetOnce(net)
    assert workspace.FetchBlob("X_grad").shape == x.shape
    inplace = core.CreateOperator("PrependDim", ["x"], ["x"], dim_size=4)
    check_reference(inplace, [x], lambda x: [x.reshape(4, 3, 2, 2)])


@pytest.mark.parametrize("op_type, shape, kwargs, match", [
    ("PrependDim", (5, 2), {"dim_size": 2}, "multiple of dim_size 2"),
    ("PrependDim", (4,), {"dim_size": 0}, "greater than zero"),
    ("MergeDim", (4,), {}, "at least 2D")])
def test_reshape_errors(op_type, shape, kwargs, match):
    workspace.FeedBlob("x", np.zeros(shape, np.float32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["x"], ["y"], **kwargs))


def test_mish_and_its_gradient():
    x = np.array([[-30.0, -2.0, -0.5, 0.0], [0.3, 1.0, 4.0, 100.0]], np.float32)
    op = core.CreateOperator("Mish", ["x"], ["y"])
    check_reference(op, [x], lambda x: [(x * np.tanh(np.log1p(np.exp(x.astype(np.float64)))))
                                        .astype(np.float32)], threshold=1e-5)
    check_gradient(op, [x[:, :3].copy()], 0)

    def caffe2_derivative(x):  # the closed form of Caffe2's MishGradient
        e = np.exp(x)
        w = np.exp(3 * x) + 4 * np.exp(2 * x) + e * (6 + 4 * x) + 4 * (1 + x)
        return e * w / ((e + 1) ** 2 + 1) ** 2

    grid = np.linspace(-8, 8, 33).astype(np.float32)
    dy = np.linspace(1, 2, 33).astype(np.float32)
    y, = run_op(op, [grid])
    dx, = run_op(core.CreateOperator("MishGradient", ["x", "y", "dy"], ["dx"]), [grid, y, dy])
    np.testing.assert_allclose(dx, dy * caffe2_derivative(grid.astype(np.float64)), rtol=1e-5,
                               atol=1e-6)
