"""The counter ops against a Python model of Caffe2's Counter, concurrency and Save/Load."""

import threading

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError


def run(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@given(st.integers(0, 3), st.lists(st.sampled_from(["down", "up", "check", "get", "reset"]),
                                   max_size=10))
def test_counter_matches_model(start, steps):
    run("CreateCounter", [], ["c"], init_count=start)
    count = start
    for step in steps:
        if step == "down":
            (done,) = run("CountDown", ["c"], ["o"])
            assert bool(done) == (count <= 0) and done.dtype == np.bool_
            count -= 1
        elif step == "up":
            (previous,) = run("CountUp", ["c"], ["o"])
            assert previous == count and previous.dtype == np.int64
            count += 1
        elif step == "check":
            assert bool(run("CheckCounterDone", ["c"], ["o"])[0]) == (count <= 0)
        elif step == "get":
            assert run("RetrieveCount", ["c"], ["o"])[0] == count
        else:
            assert run("ResetCounter", ["c"], ["o"], init_count=2)[0] == count
            count = 2


def test_count_down_is_atomic_across_threads():
    run("CreateCounter", [], ["c"], init_count=400)
    op = core.CreateOperator("CountDown", ["c"], ["o"])
    workspace.CreateNet(_net(op, "down"))
    errors = []

    def worker():
        try:
            for _ in range(100):
                workspace.RunNet("down")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert run("RetrieveCount", ["c"], ["n"])[0] == 0  # no decrement lost


def test_save_load_roundtrip(tmp_path):
    run("CreateCounter", [], ["c"], init_count=22)
    db = str(tmp_path / "counter.minidb")
    run("Save", ["c"], [], absolute_path=1, db_type="minidb", db=db)
    run("CountDown", ["c"], ["o"])
    run("Load", [], ["c"], absolute_path=1, db_type="minidb", db=db)
    assert run("RetrieveCount", ["c"], ["n"])[0] == 22
    proto = workspace.SerializeBlob("c")
    workspace.DeserializeBlob("d", proto)
    assert run("RetrieveCount", ["d"], ["n"])[0] == 22


def test_errors():
    with pytest.raises(EnforceError, match="negative init_count"):
        run("CreateCounter", [], ["c"], init_count=-1)
    assert_fails_unchanged(core.CreateOperator("CountDown", ["x"], ["o"]),
                           {"x": np.ones(1)}, EnforceError, "counter made by CreateCounter")


def _net(op, name):
    net = core.Net(name)
    net.Proto().op.extend([op])
    return net
