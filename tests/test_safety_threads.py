"""caffe2lite under threads: the registry's first load, workspaces per thread, background
plans and concurrent substeps (issue 13, item 1).

A first call racing the registry's load can only be seen in a fresh process,
so those tests run a short script in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, OperatorNotRegistered

FIRST_CALLS = textwrap.dedent("""
    import json, threading, numpy as np
    from caffe2lite import workspace

    N = 8
    gate = threading.Barrier(N)
    results = {}

    def work(k):
        gate.wait()  # every thread makes its first caffe2lite call at once
        try:
            workspace.SwitchWorkspace(f"w{k}", True)
            workspace.FeedBlob("x", np.full(3, k, np.float32))
            workspace.RunNetOnce('name:"n%d" op{input:"x" output:"y" type:"Scale" '
                                 'arg{name:"scale" f:2.0}}' % k)
            y = workspace.FetchBlob("y").tolist()
            try:  # then an op that fails: its error must name this thread's net
                workspace.RunNetOnce('name:"bad%d" op{input:"x" output:"z" '
                                     'type:"NoSuchOp%d"}' % (k, k))
                error = None
            except Exception as e:
                error = [type(e).__name__, str(e)]
            results[k] = {"y": y, "error": error, "ws": workspace.CurrentWorkspace()}
        except Exception as e:
            results[k] = {"raised": f"{type(e).__name__}: {e}"}

    threads = [threading.Thread(target=work, args=(k,)) for k in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"results": results, "main": workspace.CurrentWorkspace()}))
""")


@pytest.mark.parametrize("attempt", range(2))
def test_first_calls_from_many_threads_in_a_fresh_process(attempt):
    """Eight threads' first calls at once: every net runs in its own workspace with its
    own result, and each thread's error names its own net (not another thread's)."""
    out = subprocess.run([sys.executable, "-c", FIRST_CALLS], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    results = {int(k): v for k, v in report["results"].items()}
    assert sorted(results) == list(range(8))
    for k, r in results.items():
        assert "raised" not in r, f"thread {k}: {r.get('raised')}"
        assert r["y"] == [2.0 * k] * 3, f"thread {k} got another thread's result: {r}"
        assert r["ws"] == f"w{k}"
        kind, message = r["error"]
        assert kind == "OperatorNotRegistered"
        assert f'in net "bad{k}"' in message and f"'NoSuchOp{k}'" in message, message
    assert report["main"] == "default"  # threads' switches did not move the main thread


def test_many_threads_each_in_its_own_workspace():
    """Threads that switch to their own workspaces feed, run and fetch only there, many
    times over, while the main thread stays where it was."""
    workspace.FeedBlob("mine", np.ones(1, np.float32))
    failures = []

    def work(k):
        try:
            workspace.SwitchWorkspace(f"thread_ws_{k}", True)
            net = core.Net(f"count_{k}")
            net.Scale("x", "x", scale=1.0)
            net.Add(["x", "one"], "x")
            workspace.FeedBlob("x", np.zeros(2, np.float32))
            workspace.FeedBlob("one", np.ones(2, np.float32))
            workspace.CreateNet(net)
            for _ in range(40):
                workspace.RunNet(net.Name())
            got = workspace.FetchBlob("x")
            if not np.array_equal(got, [40.0, 40.0]) or workspace.HasBlob("mine"):
                failures.append((k, got.tolist(), workspace.Blobs()))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append((k, repr(e)))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert workspace.CurrentWorkspace() == "default" and workspace.Blobs() == ["mine"]


def test_threads_that_never_switch_follow_the_main_threads_workspace():
    """Caffe2's process-wide current workspace, kept for threads that do not switch."""
    workspace.SwitchWorkspace("main_choice", True)
    try:
        workspace.FeedBlob("v", np.arange(3, dtype=np.float32))
        seen = []
        t = threading.Thread(target=lambda: seen.append(
            (workspace.CurrentWorkspace(), workspace.FetchBlob("v").tolist())))
        t.start()
        t.join()
        assert seen == [("main_choice", [0.0, 1.0, 2.0])]
    finally:
        workspace.SwitchWorkspace("default")


def _counting_plan(name, blob, num_iter):
    net = core.Net(f"{name}_net")
    net.Add([blob, "one"], blob)
    return core.Plan(core.execution_step(f"{name}_step", net, num_iter=num_iter))


def test_background_plans_in_several_workspaces_at_once():
    handles = {}
    for k in range(4):
        workspace.SwitchWorkspace(f"bg_{k}", True)
        workspace.FeedBlob("c", np.zeros(1, np.float32))
        workspace.FeedBlob("one", np.ones(1, np.float32))
        handles[k] = workspace.RunPlanInBackground(_counting_plan(f"bg{k}", "c", 50 * (k + 1)))
    workspace.SwitchWorkspace("default")
    for k, handle in handles.items():
        assert handle.wait(60)
        assert handle.is_succeeded(), handle.error
    for k in range(4):
        workspace.SwitchWorkspace(f"bg_{k}")
        assert workspace.FetchBlob("c").tolist() == [50.0 * (k + 1)]
    workspace.SwitchWorkspace("default")


def _failing_concurrent_plan(long_iters):
    """Two substeps counting for long_iters iterations and one that fails at once."""
    workspace.FeedBlob("one", np.ones(1, np.float32))
    workspace.FeedBlob("a", np.zeros(1, np.float32))
    workspace.FeedBlob("b", np.zeros(1, np.float32))
    workspace.FeedBlob("bad_x", np.ones(3, np.float32))
    workspace.FeedBlob("bad_y", np.ones(4, np.float32))
    count_a, count_b, bad = core.Net("count_a"), core.Net("count_b"), core.Net("fails")
    count_a.Add(["a", "one"], "a")
    count_b.Add(["b", "one"], "b")
    bad.Sum(["bad_x", "bad_y"], "bad_sum")  # shapes differ: fails when it runs
    step = core.execution_step("together", [
        core.execution_step("a", count_a, num_iter=long_iters),
        core.execution_step("b", count_b, num_iter=long_iters),
        core.execution_step("bad", bad, num_iter=1)], concurrent_substeps=True)
    return core.Plan(step)


def test_a_failing_concurrent_substep_stops_the_others_at_their_next_iteration():
    plan = _failing_concurrent_plan(10**7)
    start = time.monotonic()
    with pytest.raises(EnforceError, match='Sum in net "fails'):
        workspace.RunPlan(plan)
    assert time.monotonic() - start < 30
    for blob in ("a", "b"):  # stopped long before 10**7
        assert workspace.FetchBlob(blob)[0] < 10**6


def test_a_failing_concurrent_substep_ends_a_background_plan_with_its_error():
    handle = workspace.RunPlanInBackground(_failing_concurrent_plan(10**7))
    assert handle.wait(60)
    assert not handle.is_succeeded()
    assert isinstance(handle.error, EnforceError) and 'Sum in net "fails' in str(handle.error)
    assert workspace.FetchBlob("a")[0] < 10**6


def test_unknown_operator_errors_name_their_own_nets_under_threads():
    """In-process variant of the fresh-process check: errors raised at once on many
    threads each name the net that thread created."""
    errors = {}

    def work(k):
        try:
            workspace.RunNetOnce(f'name:"own_{k}" op{{type:"Missing{k}"}}')
        except OperatorNotRegistered as e:
            errors[k] = str(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(errors) == list(range(8))
    for k, message in errors.items():
        assert f'in net "own_{k}"' in message and f"Missing{k}" in message
