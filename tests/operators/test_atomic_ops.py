"""AtomicFetchAdd(64), the atomic bool, and AtomicIter under concurrent workers."""

import sys

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError


@pytest.fixture(autouse=True)
def fresh_workspace():
    workspace.ResetWorkspace()
    yield
    workspace.ResetWorkspace()


def run(op_type, inputs, outputs, **kwargs):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **kwargs))


@pytest.mark.parametrize("op_type, dtype", [("AtomicFetchAdd", np.int32),
                                            ("AtomicFetchAdd64", np.int64)])
def test_fetch_add_returns_the_old_value_and_stores_the_sum(op_type, dtype):
    run("CreateMutex", [], ["m"])
    workspace.FeedBlob("a", np.array([7], dtype))
    workspace.FeedBlob("b", np.array(-3, dtype))
    run(op_type, ["m", "a", "b"], ["a", "fetched"])
    a, fetched = workspace.FetchBlob("a"), workspace.FetchBlob("fetched")
    assert (a.dtype, a.shape, int(a)) == (dtype, (), 4)          # Caffe2 resizes to a scalar
    assert (fetched.dtype, fetched.shape, int(fetched)) == (dtype, (), 7)
    run(op_type, ["m", "a", "b"], ["c", "d"])                    # not in place: a unchanged
    assert (int(workspace.FetchBlob("a")), int(workspace.FetchBlob("c")),
            int(workspace.FetchBlob("d"))) == (4, 1, 4)


def test_fetch_add_wraps_like_int32():
    run("CreateMutex", [], ["m"])
    top = np.iinfo(np.int32).max
    workspace.FeedBlob("a", np.array(top, np.int32))
    workspace.FeedBlob("one", np.array(1, np.int32))
    run("AtomicFetchAdd", ["m", "a", "one"], ["a", "f"])
    assert int(workspace.FetchBlob("a")) == np.iinfo(np.int32).min


@pytest.mark.parametrize("feeds, label", [
    ({"a": np.array(1, np.int64), "b": np.array(1, np.int32)}, "mut_value"),
    ({"a": np.array(1, np.int32), "b": np.array([1, 2], np.int32)}, "increment"),
])
def test_fetch_add_refuses_other_types_and_sizes_and_changes_nothing(feeds, label):
    run("CreateMutex", [], ["m"])
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    with pytest.raises(Caffe2LiteError, match=f"AtomicFetchAdd.*{label}.*one-element int32"):
        run("AtomicFetchAdd", ["m", "a", "b"], ["a", "f"])
    assert workspace.FetchBlob("a").tolist() == feeds["a"].tolist()
    assert not workspace.HasBlob("f")


def test_fetch_add_needs_a_mutex():
    workspace.FeedBlob("a", np.array(1, np.int32))
    with pytest.raises(Caffe2LiteError, match="mutex"):
        run("AtomicFetchAdd", ["a", "a", "a"], ["c", "f"])


def test_atomic_bool_is_set_once_and_read():
    run("CreateAtomicBool", [], ["flag"])
    run("CheckAtomicBool", ["flag"], ["v"])
    assert workspace.FetchBlob("v").tolist() == [False]
    workspace.FeedBlob("no", np.array([False]))
    workspace.FeedBlob("yes", np.array([True, False]))
    run("ConditionalSetAtomicBool", ["flag", "no"], [])
    run("CheckAtomicBool", ["flag"], ["v"])
    assert workspace.FetchBlob("v").tolist() == [False]
    run("ConditionalSetAtomicBool", ["flag", "yes"], [])
    run("ConditionalSetAtomicBool", ["flag", "no"], [])          # never set back
    run("CheckAtomicBool", ["flag"], ["v"])
    assert workspace.FetchBlob("v").tolist() == [True]
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    with pytest.raises(Caffe2LiteError, match="CheckAtomicBool.*CreateAtomicBool"):
        run("CheckAtomicBool", ["x"], ["v"])


@pytest.mark.parametrize("op_type, inputs", [("AtomicFetchAdd", ["m", "x", "one"]),
                                            ("AtomicIter", ["m", "x"])])
def test_in_place_counters_are_stored_into_their_own_array(op_type, inputs):
    """The store happens inside the kernel, under the lock (the executor writes a
    kernel's outputs only after it returns, when another worker may already have read
    the old value): the blob keeps its array, and that array holds the new value."""
    dtype = np.int32 if op_type == "AtomicFetchAdd" else np.int64
    run("CreateMutex", [], ["m"])
    workspace.FeedBlob("x", np.array([41], dtype))
    workspace.FeedBlob("one", np.array(1, dtype))
    stored = workspace.current().blob_dict["x"]
    run(op_type, inputs, ["x"] + (["fetched"] if op_type == "AtomicFetchAdd" else []))
    assert np.shares_memory(workspace.current().blob_dict["x"], stored)
    assert int(stored.reshape(-1)[0]) == 42


@pytest.fixture
def threads_switch_often():
    """A store made outside the lock then loses updates in practically every run."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_concurrent_workers_fetch_every_value_exactly_once(threads_switch_often):
    """Workers count a shared counter down and add what each fetched to a checksum:
    every value from 1 to N is fetched once, so the checksum is N (N + 1) / 2, and the
    AtomicIter counter saw every run -- only if each store happens under the lock."""
    workers, runs = 8, 100
    total = workers * runs
    init = core.Net("init")
    for name in ("m_count", "m_sum", "m_iter"):
        init.CreateMutex([], [name])
    init.ConstantFill([], "count", shape=[], value=total, dtype=core.DataType.INT32)
    init.ConstantFill([], "checksum", shape=[], value=0, dtype=core.DataType.INT32)
    init.ConstantFill([], "minus_one", shape=[], value=-1, dtype=core.DataType.INT32)
    init.ConstantFill([], "iter", shape=[1], value=0, dtype=core.DataType.INT64)
    steps = []
    for i in range(workers):
        net = core.Net(f"worker_{i}")
        net.AtomicFetchAdd(["m_count", "count", "minus_one"], ["count", f"fetched_{i}"])
        net.AtomicFetchAdd(["m_sum", "checksum", f"fetched_{i}"], ["checksum", f"unused_{i}"])
        net.AtomicIter(["m_iter", "iter"], ["iter"])
        steps.append(core.execution_step(f"worker_{i}", net, num_iter=runs))
    plan = core.Plan("plan")
    plan.AddStep(core.execution_step("init", init))
    plan.AddStep(core.execution_step("workers", steps, concurrent_substeps=True))
    workspace.RunPlan(plan)
    assert int(workspace.FetchBlob("count")) == 0
    assert int(workspace.FetchBlob("checksum")) == total * (total + 1) // 2
    assert workspace.FetchBlob("iter").tolist() == [total]
