"""Iter and LearningRate against hand-computed Caffe2 semantics."""

import math

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, BlobNotFound, EnforceError, SchemaError
from caffe2lite.runtime import NO_GRADIENT, registry
from helpers import run_op


def test_iter_increments_in_place():
    workspace.FeedBlob("iter", np.array([41], np.int64))
    op = core.CreateOperator("Iter", ["iter"], ["iter"])
    workspace.RunOperatorOnce(op)
    workspace.RunOperatorOnce(op)
    got = workspace.FetchBlob("iter")
    assert got.dtype == np.int64 and got.shape == (1,) and got[0] == 43


def test_iter_without_input_starts_from_zero_then_resumes():
    op = core.CreateOperator("Iter", [], ["it"])
    workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("it"), np.array([1], np.int64))
    workspace.FeedBlob("it", np.array([9], np.int64))  # resuming: an existing counter
    workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("it"), [10])


def test_iter_in_a_net_counts_runs():
    net = core.Net("iters")
    net.Iter("ITER", "ITER")
    workspace.FeedBlob("ITER", np.zeros(1, np.int64))
    workspace.CreateNet(net)
    workspace.RunNet(net.Name(), num_iter=5)
    assert workspace.FetchBlob("ITER")[0] == 5


def test_iter_bad_inputs():
    with pytest.raises(SchemaError, match="must be the same blob"):
        run_op("Iter", {"a": np.zeros(1, np.int64)}, ["b"])
    op = core.CreateOperator("Iter", ["it"], ["it"])
    workspace.CreateBlob("it")
    with pytest.raises(BlobNotFound, match=r"'it'\) is empty"):  # only Iter() starts at 0
        workspace.RunOperatorOnce(op)
    assert workspace.FetchBlob("it").endswith(b"nullptr (uninitialized).")
    assert_fails_unchanged(op, {"it": np.zeros(1, np.int32)}, EnforceError, "'it'.*int64")
    assert_fails_unchanged(op, {"it": np.zeros(2, np.int64)}, EnforceError, "exactly 1 element")
    assert_fails_unchanged(op, {"it": np.array([-3], np.int64)}, EnforceError, "negative")
    assert_fails_unchanged(op, {"it": np.array([np.iinfo(np.int64).max])}, EnforceError,
                           "overflow")


def lr_at(iteration, **args):
    workspace.FeedBlob("it", np.array([iteration], np.int64))
    workspace.RunOperatorOnce(core.CreateOperator("LearningRate", ["it"], ["lr"], **args))
    out = workspace.FetchBlob("lr")
    assert out.dtype == np.float32 and out.shape == ()
    return float(out)


@pytest.mark.parametrize("iteration", [0, 1, 7, 25, 100])
def test_learning_rate_policies(iteration):
    it = iteration
    cases = [
        (dict(policy="fixed"), 1.0),
        (dict(policy="step", stepsize=10, gamma=0.5), 0.5 ** (it // 10)),
        (dict(policy="exp", gamma=0.99), 0.99 ** it),
        (dict(policy="inv", gamma=0.1, power=0.75), (1 + 0.1 * it) ** -0.75),
        (dict(policy="poly", max_iter=200, power=2.0), (1 - it / 200) ** 2),
        (dict(policy="linearWarmup", start_multiplier=0.1, num_iter=20),
         1.0 if it >= 20 else 0.1 + 0.9 * it / 20),
        (dict(policy="constantWarmup", multiplier=0.3, num_iter=20), 0.3 if it < 20 else 1.0),
        (dict(policy="alter", active_period=5, inactive_period=3),
         1.0 if it % 8 < 5 else 0.0),
        (dict(policy="alter", active_period=5, inactive_period=3, active_first=False),
         0.0 if it % 8 < 3 else 1.0),
        (dict(policy="hill", num_iter=10, start_multiplier=0.2, gamma=0.1, power=0.5,
              end_multiplier=0.4),
         0.2 + 0.8 * it / 10 if it < 10 else max(0.4, (1 + 0.1 * (it - 10)) ** -0.5)),
    ]
    for args, multiplier in cases:
        got = lr_at(it, base_lr=-0.1, lr_scale=2.0, **args)
        assert math.isclose(got, -0.2 * multiplier, rel_tol=1e-6, abs_tol=1e-9), (args, got)


def test_learning_rate_argument_errors():
    workspace.FeedBlob("it", np.array([3], np.int64))
    with pytest.raises(SchemaError, match="'base_lr' is required"):
        workspace.RunOperatorOnce(core.CreateOperator("LearningRate", ["it"], ["lr"],
                                                      policy="fixed"))
    for args, match in [(dict(policy="bogus"), "'policy' is 'bogus'"),
                        (dict(policy="step", gamma=0.5), "'stepsize' >= 1"),
                        (dict(policy="poly", power=1.0), "'max_iter' >= 1")]:
        with pytest.raises(ArgumentError, match=match):
            workspace.RunOperatorOnce(core.CreateOperator("LearningRate", ["it"], ["lr"],
                                                          base_lr=0.1, **args))
    op = core.CreateOperator("LearningRate", ["it"], ["lr"], base_lr=0.1, policy="fixed")
    assert_fails_unchanged(op, {"it": np.array([1.0])}, EnforceError, "1-element int64")


def test_iter_and_learning_rate_have_no_gradient():
    assert registry.get_schema("Iter").gradient == NO_GRADIENT
    assert registry.get_schema("LearningRate").gradient == NO_GRADIENT


def test_learning_rate_negative_iteration_truncates_like_cpp():
    # C++ iter / stepsize truncates toward zero: -3 / 2 == -1, so gamma^-1
    assert math.isclose(lr_at(-3, base_lr=1.0, policy="step", stepsize=2, gamma=0.5), 2.0)
    # C++ -3 % 8 == -3 < 5: active
    assert lr_at(-3, base_lr=1.0, policy="alter", active_period=5, inactive_period=3) == 1.0


def test_create_mutex_and_atomic_iter_as_caffe2_optimizers_build_them():
    init = core.Net("init")
    init.CreateMutex([], ["iteration_mutex"])
    workspace.RunNetOnce(init)
    workspace.FeedBlob("iteration", np.zeros(1, np.int64))
    net = core.Net("train_iter")
    net.AtomicIter(["iteration_mutex", "iteration"], ["iteration"])
    workspace.CreateNet(net)
    workspace.RunNet(net.Name(), num_iter=3)
    assert workspace.FetchBlob("iteration").tolist() == [3]
    mutex = workspace.current().blob_dict["iteration_mutex"]
    assert mutex.acquire(blocking=False)  # released after every run
    mutex.release()
    op = core.CreateOperator("AtomicIter", ["fake", "iteration"], ["iteration"])
    assert_fails_unchanged(op, {"fake": np.zeros(1, np.int64)}, EnforceError,
                           "'fake'.*mutex made by CreateMutex")
    with pytest.raises(SchemaError, match="must be the same blob"):
        workspace.RunOperatorOnce(
            core.CreateOperator("AtomicIter", ["iteration_mutex", "iteration"], ["x"]))
    assert registry.get_schema("AtomicIter").gradient == NO_GRADIENT
