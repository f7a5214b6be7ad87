"""Accuracy, RowWiseCounter (and RowWiseSparseAdagrad's counter_halflife), ClipTensorByScaling,
Lars, WeightScale, FloatToHalf / HalfToFloat / Float16ConstantFill, ElementwiseLinear,
Summarize, AccumulateHistogram and EnsureDense against NumPy written from Caffe2's docs."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core, testing, workspace
from caffe2lite.errors import EnforceError
from helpers import run_op

RNG = np.random.default_rng(13)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_accuracy_counts_labels_within_top_k_ties_to_the_lower_class(top_k):
    x = RNG.integers(0, 4, (40, 5)).astype(np.float32)  # many ties
    label = RNG.integers(0, 5, 40).astype(np.int32)
    got, = run_op("Accuracy", dict(x=x, label=label), "acc", top_k=top_k)
    correct = 0
    for row, lab in zip(x, label):
        order = sorted(range(5), key=lambda j: (-row[j], j))  # stable: lower index first
        correct += lab in order[:top_k]
    assert got.shape == () and got.dtype == np.float32
    assert got == np.float32(correct) / np.float32(40)


def test_accuracy_refuses_labels_out_of_range():
    op = core.CreateOperator("Accuracy", ["x", "l"], ["acc"])
    assert_fails_unchanged(op, dict(x=np.zeros((2, 3), np.float32), l=np.array([0, 3], np.int32)),
                           EnforceError, "outside")


def test_rowwise_counter_and_frequency_weighted_row_wise_adagrad():
    prev = np.array([0, 3, 5, 2], np.int64)
    count = np.array([0.0, 1.5, 2.0, 0.0])
    idx = np.array([1, 3, 1], np.int64)
    halflife, it = 4, 9
    got_prev, got_count = run_op("RowWiseCounter",
                                 dict(prev=prev, count=count, idx=idx,
                                      it=np.array([it], np.int64)),
                                 ["prev", "count"], counter_halflife=halflife)
    want_prev, want_count = prev.copy(), count.copy()
    for r in idx:
        delta = max(0, it - want_prev[r])
        want_count[r] = 1 + 0.5 ** (delta / halflife) * want_count[r]
        want_prev[r] = max(it, want_prev[r])
    np.testing.assert_array_equal(got_prev, want_prev)
    np.testing.assert_allclose(got_count, want_count)

    # RowWiseSparseAdagrad reads the counter: weight_decay * halflife / count for counted rows
    param = RNG.standard_normal((4, 3)).astype(np.float32)
    moment = np.abs(RNG.standard_normal(4)).astype(np.float32)
    grad = RNG.standard_normal((3, 3)).astype(np.float32)
    lr, eps, wd = -0.1, 1e-4, 0.05
    got_p, got_m = run_op("RowWiseSparseAdagrad",
                          dict(p=param, m=moment, i=idx, g=grad,
                               lr=np.array([lr], np.float32), c=want_count),
                          ["p", "m"], epsilon=eps, weight_decay=wd, counter_halflife=halflife)
    p, m = param.astype(np.float64), moment.astype(np.float64)
    for i, r in enumerate(idx):
        decay = wd * halflife / want_count[r] if want_count[r] > 0 else wd
        g = grad[i] + decay * p[r]
        m[r] += np.mean(g * g)
        p[r] += lr * g / (np.sqrt(m[r]) + eps)
    np.testing.assert_allclose(got_p, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_m, m, rtol=1e-5, atol=1e-6)


def test_rowwise_counter_off_without_halflife():
    prev, count = np.array([1, 2], np.int64), np.array([0.5, 0.5])
    got = run_op("RowWiseCounter", dict(prev=prev, count=count, idx=np.array([0]),
                                        it=np.array([7], np.int64)), ["prev", "count"])
    np.testing.assert_array_equal(got[0], prev)
    np.testing.assert_array_equal(got[1], count)


@pytest.mark.parametrize("norm,extra", [(5.0, None), (0.5, None), (5.0, 2.0), (5.0, 0.1)])
def test_clip_tensor_by_scaling(norm, extra):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    inputs = dict(x=x, v=np.array([norm], np.float32))
    if extra is not None:
        inputs["a"] = np.array([extra], np.float32)
    got, = run_op("ClipTensorByScaling", inputs, "y", threshold=1.0)
    threshold = 1.0 * (extra if extra is not None else 1.0)
    np.testing.assert_allclose(got, x * threshold / norm if norm > threshold else x, rtol=1e-6)


def test_lars_rescales_and_clips():
    x, dx = RNG.standard_normal(10).astype(np.float32), RNG.standard_normal(10).astype(
        np.float32)
    one = lambda v: np.array([v], np.float32)  # noqa: E731
    for lr_max, offset, lr_min in ((100.0, 0.5, 0.0), (0.3, 0.5, 0.0), (100.0, 10.0, 0.5)):
        got, = run_op("Lars", dict(x=x, dx=dx, wd=one(0.1), trust=one(0.9), m=one(lr_max)), "lr",
                      offset=offset, lr_min=lr_min)
        local = 0.9 / (np.linalg.norm(dx) / np.linalg.norm(x) + 0.1 + offset)
        np.testing.assert_allclose(got, [min(max(local, lr_min), lr_max)], rtol=1e-5)


def test_weight_scale_every_stepsize_iterations():
    w = RNG.standard_normal(4).astype(np.float32)
    for it, scaled in ((3, True), (4, False), (7, True), (11, False)):  # i = it + 1
        got, = run_op("WeightScale", dict(w=w, it=np.array([it], np.int64)), "nw", stepsize=4,
                      upper_bound_iter=10, scale=0.5)
        np.testing.assert_array_equal(got, w * np.float32(0.5) if scaled else w)


def test_half_float_casts_and_their_gradients():
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    half, = run_op("FloatToHalf", dict(x=x), "h")
    assert half.dtype == np.float16 and np.array_equal(half, x.astype(np.float16))
    back, = run_op("HalfToFloat", dict(h=half), "f")
    assert back.dtype == np.float32 and np.array_equal(back, half.astype(np.float32))
    net = core.Net("casts")
    net.HalfToFloat(net.FloatToHalf("x", "h"), "f")
    grads = net.AddGradientOperators(["f"])
    assert [op.type for op in net.Proto().op[-2:]] == ["FloatToHalf", "HalfToFloat"]
    assert str(grads["x"]) == "x_grad"
    fill, = run_op("Float16ConstantFill", {}, "z", shape=[2, 2], value=1.5)
    assert fill.dtype == np.float16 and np.array_equal(fill, np.full((2, 2), 1.5, np.float16))


def test_elementwise_linear_and_its_gradient():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    a, b = RNG.standard_normal(12).astype(np.float32), RNG.standard_normal(12).astype(np.float32)
    got, = run_op("ElementwiseLinear", dict(x=x, a=a, b=b), "y")
    np.testing.assert_allclose(got, (x.reshape(2, 12) * a + b).reshape(x.shape), rtol=1e-6)
    op = core.CreateOperator("ElementwiseLinear", ["x", "a", "b"], ["y"], axis=2)
    a4, b4 = a[:4], b[:4]
    for i in range(3):
        testing.check_gradient(op, [x, a4, b4], i)


def test_summarize_and_accumulate_histogram():
    x = RNG.standard_normal(50).astype(np.float32)
    got, = run_op("Summarize", dict(x=x), "s")
    np.testing.assert_allclose(got, [x.min(), x.max(), x.astype(np.float64).mean(),
                                     x.astype(np.float64).std(ddof=1)], rtol=1e-6)
    op = core.CreateOperator("AccumulateHistogram", ["x"], ["cur", "acc"], lower_bound=-1.0,
                             upper_bound=1.0, num_buckets=4)
    total = np.zeros(6, np.int64)
    for _ in range(2):
        x = RNG.standard_normal(30).astype(np.float32)
        workspace.FeedBlob("x", x)
        workspace.RunOperatorOnce(op)
        edges = [-np.inf, -1.0, -0.5, 0.0, 0.5, 1.0, np.inf]
        want = np.histogram(x, bins=edges)[0]  # [a, b) buckets; the last is [1, inf)
        total += want
        np.testing.assert_array_equal(workspace.FetchBlob("cur"), want)
        np.testing.assert_array_equal(workspace.FetchBlob("acc"), total)


def test_ensure_dense_makes_a_sparse_gradient_dense():
    net = core.Net("dense")
    dense = net.EnsureDense("table", "table_dense")
    net.Gather([dense, "idx"], "rows")
    grads = net.AddGradientOperators(["rows"])
    assert str(grads["table"]) == "table_grad"
    assert net.Proto().op[-1].type == "SparseToDense"
    workspace.FeedBlob("table", np.arange(6, dtype=np.float32).reshape(3, 2))
    workspace.FeedBlob("idx", np.array([2, 0, 2]))
    workspace.RunNetOnce(net)
    np.testing.assert_array_equal(workspace.FetchBlob("table_grad"),
                                  [[1, 1], [0, 0], [2, 2]])
