"""The rest of Caffe2's workspace module that scripts call at their edges:
GlobalInit, GetNameScope, RunOperatorMultiple, BenchmarkNet,
RunPlanInBackground and immediate mode (see shared/reference/caffe2_facts.md, workspace table)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import (ArgumentError, BlobNotFound, EnforceError, NetError, PlanError,
                               WorkspaceError)
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import flags, minidb, workspaces
from helpers import assert_unchanged, snapshot


@pytest.fixture
def restore_flags():
    """GlobalInit changes process-wide state: put it back after each test."""
    values, level = dict(flags._values), flags.logger.level
    yield
    flags._values.clear()
    flags._values.update(values)
    flags.logger.setLevel(level)


# -- GlobalInit ------------------------------------------------------------------
def _saved_chunks(root, name):
    return [key for key, _ in minidb.read(str(root / name))
            if key != "__caffe2lite_integrity__"]  # Save's checksum record


def test_global_init_tensor_chunk_size_sets_saves_default(tmp_path, restore_flags):
    workspace.ResetWorkspace(str(tmp_path))
    workspace.FeedBlob("w", np.arange(10, dtype=np.float32))
    assert workspace.GlobalInit(["caffe2", "--caffe2_tensor_chunk_size=4"]) is None
    workspace.RunOperatorOnce(core.CreateOperator("Save", ["w"], [], db="a.minidb",
                                                  db_type="minidb"))
    assert _saved_chunks(tmp_path, "a.minidb") == ["w#%0", "w#%1", "w#%2"]  # 4 + 4 + 2
    workspace.GlobalInit(["caffe2", "--caffe2_tensor_chunk_size", "10"])  # gflags' 2-token form
    workspace.RunOperatorOnce(core.CreateOperator("Save", ["w"], [], db="b.minidb",
                                                  db_type="minidb"))
    assert _saved_chunks(tmp_path, "b.minidb") == ["w#%0"]


@pytest.mark.parametrize("severity, level", [(-1, logging.DEBUG), (0, logging.INFO),
                                             (1, logging.WARNING), (2, logging.ERROR),
                                             (3, logging.CRITICAL)])
def test_global_init_log_level_is_glog_severity(severity, level, restore_flags):
    workspace.GlobalInit(["caffe2", f"--caffe2_log_level={severity}"])
    assert logging.getLogger("caffe2lite").level == level


def test_global_init_warns_about_flags_without_effect(caplog, restore_flags):
    with caplog.at_level(logging.WARNING, logger="caffe2lite"):
        workspace.GlobalInit(["caffe2", "--caffe2_cpu_allocator_do_zero_fill=0", "positional"])
    assert caplog.messages == [
        "GlobalInit: flag --caffe2_cpu_allocator_do_zero_fill has no effect in caffe2lite"]


@pytest.mark.parametrize("args, pattern", [
    (["caffe2", "--caffe2_log_level=loud"], "--caffe2_log_level expects an integer, got 'loud'"),
    (["caffe2", "--caffe2_tensor_chunk_size=0"], "must be positive, got 0"),
    (["caffe2", "--caffe2_tensor_chunk_size"], "--caffe2_tensor_chunk_size needs a value"),
    ("--caffe2_log_level=0", "expects a list of str"),
])
def test_global_init_bad_values_raise_and_change_nothing(args, pattern, restore_flags):
    before = dict(flags._values)
    with pytest.raises(ArgumentError, match=pattern):
        # a valid flag first: nothing is applied unless every flag parses
        workspace.GlobalInit(args if isinstance(args, str)
                             else [args[0], "--caffe2_tensor_chunk_size=7", *args[1:]])
    assert flags._values == before


def test_gpu_device_type_and_hip():
    assert workspace.GpuDeviceType == caffe2_pb2.CUDA == 1
    assert workspace.has_hip_support() is False


def test_get_name_scope():
    assert workspace.GetNameScope() == ""
    with core.NameScope("tower"):
        assert workspace.GetNameScope() == "tower/"


# -- RunOperatorMultiple / BenchmarkNet -----------------------------------------------
def test_run_operator_multiple_runs_one_op_n_times():
    workspace.FeedBlob("it", np.array([5], np.int64))
    assert workspace.RunOperatorMultiple(core.CreateOperator("Iter", ["it"], ["it"]), 3)
    assert workspace.FetchBlob("it").tolist() == [8]
    workspace.FeedBlob("bad", np.array([5], np.int32))
    before = snapshot()
    with pytest.raises(EnforceError, match="int64"):
        workspace.RunOperatorMultiple(core.CreateOperator("Iter", ["bad"], ["bad"]), 3)
    assert_unchanged(before)


def test_benchmark_net_times_the_net_and_each_op():
    workspace.FeedBlob("it", np.array([0], np.int64))
    workspace.FeedBlob("x", np.ones(3, np.float32))
    net = core.Net("bench")
    net.Iter("it", "it")
    net.Scale("x", "y", scale=2.0)
    workspace.CreateNet(net)
    timings = workspace.BenchmarkNet("bench", 2, 5, True)
    assert len(timings) == 3 and all(t > 0 for t in timings)  # net, then each op
    assert workspace.FetchBlob("it").tolist() == [2 + 5 + 5]  # warm-up, main, Iter alone
    assert len(workspace.BenchmarkNet(net, 0, 1, False)) == 1
    with pytest.raises(NetError, match="main_runs > 0"):
        workspace.BenchmarkNet("bench", 0, 0, False)
    with pytest.raises(NetError, match="Can't find net nowhere"):
        workspace.BenchmarkNet("nowhere", 1, 1, False)


# -- RunPlanInBackground ----------------------------------------------------------
def _counting_plan(stop_blob=None, num_iter=None):
    net = core.Net("count")
    net.Iter("it", "it")
    step = core.ExecutionStep("count_step", net, num_iter=num_iter)
    if stop_blob is not None:
        step.SetShouldStopBlob(core.BlobReference(stop_blob))
    plan = core.Plan("background")
    plan.AddStep(step)
    return plan


def test_background_plan_runs_and_reports():
    workspace.FeedBlob("it", np.array([0], np.int64))
    handle = workspace.RunPlanInBackground(_counting_plan(num_iter=50))
    assert handle.wait(30) and handle.is_done() and handle.is_succeeded()
    assert handle.error is None
    assert workspace.FetchBlob("it").tolist() == [50]


def test_background_plan_can_be_watched_and_stopped():
    workspace.FeedBlob("it", np.array([0], np.int64))
    workspace.FeedBlob("stop", np.array(False))
    handle = workspace.RunPlanInBackground(_counting_plan(stop_blob="stop"))
    deadline = time.monotonic() + 30
    while workspace.FetchBlob("it")[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not handle.is_done()
    with pytest.raises(PlanError, match="still running"):
        handle.is_succeeded()
    workspace.FeedBlob("stop", np.array(True))
    assert handle.wait(30) and handle.is_succeeded()


def test_background_plan_failure_is_kept_and_bad_plans_raise_at_once():
    workspace.FeedBlob("it", np.array([0], np.int32))  # Iter wants int64: fails in the thread
    handle = workspace.RunPlanInBackground(_counting_plan(num_iter=3))
    assert handle.wait(30) and not handle.is_succeeded()
    assert isinstance(handle.error, EnforceError) and "int64" in str(handle.error)
    plan = caffe2_pb2.PlanDef(name="broken")
    plan.execution_step.add(name="step", network=["no_such_net"])
    with pytest.raises(PlanError, match="undefined net 'no_such_net'"):
        workspace.RunPlanInBackground(plan)


# -- immediate mode ----------------------------------------------------------------
@pytest.fixture
def immediate_off():
    yield
    workspace.StopImmediate()


def test_immediate_mode_runs_each_op_as_it_is_made(immediate_off, tmp_path):
    workspace.FeedBlob("x", np.zeros(1, np.float32))  # the current workspace: never touched
    workspace.StartImmediate(i_know=True)
    assert workspace.IsImmediate() and "_CAFFE2_IMMEDIATE" in workspace.Workspaces()
    x = np.array([-1.0, 2.0], np.float32)
    workspace.FeedImmediate("x", x)
    core.CreateOperator("Relu", ["x"], ["y"])
    np.testing.assert_array_equal(workspace.FetchImmediate("y"), np.maximum(x, 0))
    net = core.Net("immediate_sugar")
    net.Scale("y", "z", scale=3.0)  # the net sugar makes ops with CreateOperator too
    np.testing.assert_array_equal(workspace.FetchImmediate("z"), 3 * np.maximum(x, 0))
    assert workspace.ImmediateBlobs() == ["x", "y", "z"]
    assert workspace.Blobs() == ["x"] and workspace.FetchBlob("x").tolist() == [0.0]
    with pytest.raises(BlobNotFound, match="'nothing'"):  # a failing op fails at creation
        core.CreateOperator("Relu", ["nothing"], ["out"])


def test_stop_immediate_drops_the_workspace(immediate_off, caplog):
    with caplog.at_level(logging.WARNING, logger="caffe2lite"):
        workspace.StartImmediate()
    assert "immediate mode is on" in caplog.text
    folder = workspaces.get("_CAFFE2_IMMEDIATE").root_folder
    workspace.StopImmediate()
    assert not workspace.IsImmediate() and "_CAFFE2_IMMEDIATE" not in workspace.Workspaces()
    assert not os.path.exists(folder)
    core.CreateOperator("Relu", ["nothing"], ["out"])  # nothing runs now
    with pytest.raises(WorkspaceError, match="immediate mode is off"):
        workspace.FetchImmediate("y")


def test_support_flags_are_booleans_as_in_caffe2_and_still_callable():
    import unittest

    from caffe2lite.workspace import NumCudaDevices

    for flag in (workspace.has_gpu_support, workspace.has_cuda_support):
        assert bool(flag) is (NumCudaDevices() > 0) and flag() is bool(flag)
        assert (flag == (NumCudaDevices() > 0)) and repr(flag) in ("True", "False")
    assert not workspace.has_hip_support and workspace.has_hip_support() is False

    class Probe(unittest.TestCase):
        @unittest.skipIf(not workspace.has_gpu_support, "no GPU")
        def test_gpu(self):
            raise AssertionError("ran without a GPU")

    if not workspace.has_gpu_support:  # the decorator Caffe2 tests use now skips
        result = unittest.TextTestRunner(stream=open(__import__("os").devnull, "w")).run(
            unittest.defaultTestLoader.loadTestsFromTestCase(Probe))
        assert result.skipped and not result.failures


def test_root_folder_is_returned_as_given():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from caffe2lite import workspace; "
                          "print(workspace.RootFolder())"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "."  # Caffe2's default
    workspace.ResetWorkspace("relative_root_for_test")
    try:
        assert workspace.RootFolder() == "relative_root_for_test"
    finally:
        workspace.ResetWorkspace(".")
        __import__("shutil").rmtree("relative_root_for_test", ignore_errors=True)
