"""WeightedSum and WeightedSumGradient against NumPy."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError, SchemaError
from caffe2lite.runtime import registry
from helpers import run_op

F = np.float32


@pytest.mark.parametrize("pairs", [1, 2, 4])
def test_weighted_sum(pairs):
    rng = np.random.default_rng(pairs)
    xs = [rng.standard_normal((3, 4)).astype(F) for _ in range(pairs)]
    ws = [rng.standard_normal(1).astype(F) for _ in range(pairs)]
    inputs = {}
    for i, (x, w) in enumerate(zip(xs, ws)):
        inputs[f"X{i}"], inputs[f"w{i}"] = x, w
    want = ws[0][0] * xs[0]
    if pairs > 1:  # Caffe2's order: w1*X1 + w0*X0, then + wi*Xi
        want = ws[1][0] * xs[1] + ws[0][0] * xs[0]
        for x, w in zip(xs[2:], ws[2:]):
            want = want + w[0] * x
    got, = run_op("WeightedSum", inputs, ["X0"])  # in place on X0
    np.testing.assert_array_equal(got, want)


def test_weighted_sum_sizes_not_shapes_and_scalar_weights():
    x0, x1 = np.arange(6, dtype=F).reshape(2, 3), np.ones(6, F)
    got, = run_op("WeightedSum", {"a": x0, "wa": np.array(2.0, F), "b": x1,
                                  "wb": np.array([[0.5]], F)}, ["y"])
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, 0.5 * x1.reshape(2, 3) + 2 * x0)


def test_weighted_sum_bad_inputs():
    with pytest.raises(SchemaError, match="inputs"):
        run_op("WeightedSum", {"a": np.ones(2, F), "w": np.ones(1, F), "b": np.ones(2, F)},
               ["y"])
    with pytest.raises(SchemaError, match="in-place"):
        run_op("WeightedSum", {"a": np.ones(2, F), "w": np.ones(1, F), "b": np.ones(2, F),
                               "v": np.ones(1, F)}, ["b"])
    ok = {"a": np.ones(2, F), "w": np.ones(1, F), "b": np.ones(2, F), "v": np.ones(1, F)}
    op = core.CreateOperator("WeightedSum", list(ok), ["a"])
    assert_fails_unchanged(op, {**ok, "b": np.ones(3, F)}, EnforceError, "'b'.*3 elements")
    assert_fails_unchanged(op, {**ok, "v": np.ones(2, F)}, EnforceError, "'v'.*exactly 1")
    assert_fails_unchanged(op, {**ok, "a": np.ones(0, F), "b": np.ones(0, F)}, EnforceError,
                           "'a'.*empty")
    assert_fails_unchanged(op, {**ok, "b": np.ones(2)}, EnforceError, "'b'.*float64")


@pytest.mark.parametrize("grad_on_w", [False, True])
def test_weighted_sum_gradient_maker_and_op(grad_on_w):
    fwd = core.CreateOperator("WeightedSum", ["X0", "w0", "X1", "w1"], ["Y"],
                              grad_on_w=grad_on_w)
    ops, g_input = registry.get_schema("WeightedSum").gradient(fwd, ["Y_grad"])
    assert len(ops) == 1 and ops[0].type == "WeightedSumGradient"
    assert list(ops[0].input) == ["Y_grad", "X0", "w0", "X1", "w1"]
    outs = ["X0_grad", "X1_grad"] + (["w0_grad", "w1_grad"] if grad_on_w else [])
    assert list(ops[0].output) == outs
    assert g_input == ["X0_grad", "w0_grad" if grad_on_w else None,
                       "X1_grad", "w1_grad" if grad_on_w else None]
    rng = np.random.default_rng(3)
    feeds = {"Y_grad": rng.standard_normal((2, 3)).astype(F),
             "X0": rng.standard_normal((2, 3)).astype(F), "w0": np.array([0.5], F),
             "X1": rng.standard_normal((2, 3)).astype(F), "w1": np.array([-2.0], F)}
    for k, v in feeds.items():
        workspace.FeedBlob(k, v)
    op = ops[0]
    if grad_on_w:
        op.arg.add(name="grad_on_w", i=1)  # the gradient engine copies the forward args
    workspace.RunOperatorOnce(op)
    dy = feeds["Y_grad"]
    np.testing.assert_array_equal(workspace.FetchBlob("X0_grad"), 0.5 * dy)
    np.testing.assert_array_equal(workspace.FetchBlob("X1_grad"), -2.0 * dy)
    if grad_on_w:
        for x, w in (("X0", "w0_grad"), ("X1", "w1_grad")):
            got = workspace.FetchBlob(w)
            assert got.shape == (1,)
            np.testing.assert_allclose(got[0], np.sum(dy * feeds[x]), rtol=1e-5)


def test_weighted_sum_gradient_needs_dense_output_gradient():
    fwd = core.CreateOperator("WeightedSum", ["X0", "w0"], ["Y"])
    with pytest.raises(GradientError, match="dense"):
        registry.get_schema("WeightedSum").gradient(fwd, [core.GradientSlice("i", "v")])
