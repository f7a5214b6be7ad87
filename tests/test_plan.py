"""Plans: Caffe2's execution-step semantics (caffe2/core/plan_executor.cc).

Counting and blocking ops are registered here, so these tests depend on no
other operator module.
"""

import io
import threading
import time

import numpy as np
import pytest

from caffe2lite import cli, core, workspace
from caffe2lite.errors import BlobNotFound, Caffe2LiteError, EnforceError, PlanError, SchemaError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, plan, registry

BARRIERS: dict[str, threading.Barrier] = {}
LOG: list[str] = []


def _register_test_ops():
    if registry.get_schema("TestPlanCount") is not None:
        return
    registry.register_schema(OpSchema(
        "TestPlanCount", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
        doc="Y = X + 1 (test-only counter)", gradient=NO_GRADIENT))
    registry.register_kernel("TestPlanCount")(lambda ctx, x: (x + 1,))
    registry.register_schema(OpSchema(
        "TestPlanAtLeast", num_inputs=1, num_outputs=1, args=[Arg("limit", "int", 0)],
        doc="Y = np.array(X.item() >= limit) (test-only stop condition)"))
    registry.register_kernel("TestPlanAtLeast")(
        lambda ctx, x: (np.array(x.item() >= ctx.args["limit"]),))
    registry.register_schema(OpSchema(
        "TestPlanBarrier", num_inputs=0, num_outputs=0, args=[Arg("key", "string", "")],
        doc="wait on the test's barrier BARRIERS[key] (test-only)"))

    @registry.register_kernel("TestPlanBarrier")
    def barrier(ctx):
        BARRIERS[ctx.args["key"]].wait()
        return ()

    registry.register_schema(OpSchema(
        "TestPlanFail", num_inputs=0, num_outputs=0, doc="always fails (test-only)"))

    @registry.register_kernel("TestPlanFail")
    def fail(ctx):
        ctx.enforce(False, "TestPlanFail failed on purpose")

    registry.register_schema(OpSchema(
        "TestPlanLog", num_inputs=0, num_outputs=0,
        args=[Arg("tag", "string", ""), Arg("sleep", "float", 0.0)],
        doc="append tag to the test's LOG, after sleeping (test-only)"))

    @registry.register_kernel("TestPlanLog")
    def log(ctx):
        time.sleep(ctx.args["sleep"])
        LOG.append(ctx.args["tag"])
        return ()


_register_test_ops()


@pytest.fixture(autouse=True)
def _clean():
    LOG.clear()
    BARRIERS.clear()
    yield


def counter(name, start=0):
    workspace.FeedBlob(name, np.array(start, np.int64))


def count_net(name, *blobs):
    net = core.Net(name)
    for blob in blobs:
        net.TestPlanCount([blob], [blob])
    return net


def value(name):
    return int(workspace.FetchBlob(name))


# -- iteration ---------------------------------------------------------------
@pytest.mark.parametrize("num_iter, expected", [(None, 1), (0, 0), (1, 1), (7, 7)])
def test_num_iter(num_iter, expected):
    counter("c")
    step = core.ExecutionStep("s", count_net("n", "c"), num_iter=num_iter)
    assert workspace.RunPlan(core.Plan(step)) is True
    assert value("c") == expected


def test_nested_steps_and_order():
    counter("a")
    counter("b")
    inner = core.execution_step("inner", count_net("na", "a"), num_iter=2)
    after = core.execution_step("after", count_net("nb", "b"))
    outer = core.execution_step("outer", [inner, after], num_iter=3)
    workspace.RunPlan(outer)
    assert (value("a"), value("b")) == (6, 3)


def test_nets_created_once_and_left_in_the_workspace(monkeypatch):
    net = count_net("n", "c")
    old = caffe2_pb2.NetDef(name=net.Name())  # same name, different ops
    old.op.add().CopyFrom(core.CreateOperator("Relu", ["x"], ["unused"]))
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    workspace.CreateNet(old)
    counter("c")
    ws = workspace.current()
    created = []
    real = ws.create_net
    monkeypatch.setattr(ws, "create_net", lambda net, overwrite=False, input_blobs=None:
                        created.append(net.name) or real(net, overwrite, input_blobs))
    workspace.RunPlan(core.Plan(core.ExecutionStep("s", net, num_iter=4)))
    assert created == [net.Name()] and value("c") == 4
    workspace.RunNet(net.Name())  # the plan's net replaced the old one of the same name
    assert value("c") == 5


# -- should_stop_blob / only_once --------------------------------------------
def stopper(name, blob, limit):
    net = core.Net(name)
    net.TestPlanAtLeast([blob], ["stop"], limit=limit)
    return net


def test_stop_blob_checked_after_every_net():
    counter("c")
    counter("d")
    workspace.FeedBlob("stop", np.array(False))
    step = core.execution_step(
        "s", [count_net("nc", "c"), stopper("st", "c", 3), count_net("nd", "d")],
        should_stop_blob=core.BlobReference("stop"))
    workspace.RunPlan(step)
    assert (value("c"), value("d")) == (3, 2)


def test_stop_blob_after_every_substep_and_only_in_its_step():
    counter("a")
    counter("b")
    workspace.FeedBlob("stop", np.array(False))
    stop = core.BlobReference("stop")
    body = core.execution_step("body", [core.execution_step("count", count_net("na", "a")),
                                        core.execution_step("check", stopper("st", "a", 2))],
                               should_stop_blob=stop)
    then = core.execution_step("then", count_net("nb", "b"))
    workspace.RunPlan(core.execution_step("all", [body, then]))
    assert value("a") == 2  # stopped right after the substep that set it
    assert value("b") == 1  # the parent goes on with its next substep


def test_only_once_and_uninitialised_stop_blob():
    counter("c")
    workspace.CreateBlob("stop")  # empty: does not stop (Caffe2)
    step = core.execution_step("s", count_net("n", "c"),
                               should_stop_blob=core.BlobReference("stop"), only_once=True)
    workspace.RunPlan(step)
    assert value("c") == 1


def test_stop_blob_must_be_a_scalar_bool():
    counter("c")
    workspace.FeedBlob("stop", np.array([1, 0], np.int32))
    step = core.execution_step("s", count_net("n", "c"),
                               should_stop_blob=core.BlobReference("stop"))
    with pytest.raises(EnforceError, match="'stop' must hold a scalar bool, got int32 \\[2\\]"):
        workspace.RunPlan(step)


# -- concurrency -------------------------------------------------------------
def barrier_step(name, key):
    net = core.Net(name)
    net.TestPlanBarrier([], [], key=key)
    return core.execution_step(name, net)


def test_concurrent_substeps_really_run_at_once():
    BARRIERS["k"] = threading.Barrier(2, timeout=10)
    step = core.execution_step("both", [barrier_step("b1", "k"), barrier_step("b2", "k")],
                               concurrent_substeps=True, num_iter=3)
    workspace.RunPlan(step)  # a sequential run would wait forever on the barrier

    BARRIERS["k"] = threading.Barrier(2, timeout=0.2)
    seq = core.execution_step("seq", [barrier_step("s1", "k"), barrier_step("s2", "k")])
    with pytest.raises(Caffe2LiteError, match="BrokenBarrierError"):
        workspace.RunPlan(seq)


def test_num_concurrent_instances():
    BARRIERS["k"] = threading.Barrier(3, timeout=10)
    step = core.execution_step("inst", [barrier_step("b", "k")], num_concurrent_instances=3)
    workspace.RunPlan(step)


def test_concurrent_failure_stops_siblings_and_propagates():
    counter("c")
    fail = core.Net("fail")
    fail.TestPlanFail([], [])
    busy = core.execution_step("busy", count_net("n", "c"), num_iter=10**7)
    step = core.execution_step("par", [core.execution_step("bad", fail), busy],
                               concurrent_substeps=True)
    with pytest.raises(EnforceError, match="TestPlanFail failed on purpose") as info:
        workspace.RunPlan(step)
    assert value("c") < 10**7  # the sibling stopped early
    assert any('step "par/bad"' in note for note in info.value.__notes__)


# -- report nets -------------------------------------------------------------
def test_report_net_and_run_every_ms():
    report = core.Net("report")
    report.TestPlanLog([], [], tag="report")
    work = core.Net("work")
    work.TestPlanLog([], [], tag="work", sleep=0.3)
    every = core.execution_step("every", report)
    every.RunEveryMillis(20)
    workspace.RunPlan(core.execution_step("main", [core.execution_step("w", work), every]))
    assert LOG.count("work") == 1 and LOG[-1] == "report" and LOG.count("report") >= 3

    LOG.clear()
    step = core.execution_step("r", work, report_net=report, report_interval=60)
    workspace.RunPlan(step)
    assert LOG == ["work", "report"]  # a report net always runs once when its step ends


# -- bad plans fail before anything runs ---------------------------------------
def two_step_plan(make_second):
    """Plan: step 1 counts 'c' with net N, step 2 is make_second(N's name) (a proto)."""
    net = count_net("n1", "c")
    p = core.Plan("p")
    p.AddStep(core.execution_step("first", net))
    p.Proto().execution_step.add().CopyFrom(make_second(net.Name()))
    return p


def _both(n1):
    both = caffe2_pb2.ExecutionStep(name="s2", network=[n1])
    both.substep.add(name="sub", network=[n1])
    return both


def _nested(n1):
    nested = caffe2_pb2.ExecutionStep(name="s2")
    nested.substep.add(name="deep").substep.add(name="deeper", network=["ghost"])
    return nested


Step = caffe2_pb2.ExecutionStep
BAD_STEPS = {
    "unknown_net": (lambda n1: Step(name="s2", network=["nope"]),
                    "uses undefined net 'nope'"),
    "both": (_both, "either have substep or networks but not both"),
    "missing_stop": (lambda n1: Step(name="s2", network=[n1], should_stop_blob="no_such"),
                     "should_stop_blob 'no_such' does not exist"),
    "stop_and_iter": (lambda n1: Step(name="s2", network=[n1], num_iter=2,
                                      should_stop_blob="c"), "Must not specify num_iter"),
    "only_once": (lambda n1: Step(name="s2", network=[n1], only_once=True),
                  "only_once needs a should_stop_blob"),
    "nested_unknown": (_nested, 'step "s2/deep/deeper".*undefined net \'ghost\''),
    "report_interval": (lambda n1: Step(name="s2", network=[n1], report_net=n1),
                        "report_interval"),
    "stop_no_work": (lambda n1: Step(name="s2", should_stop_blob="c"), "never stop"),
    "create_workspace": (lambda n1: Step(name="s2", network=[n1], create_workspace=True),
                         "create_workspace"),
}


@pytest.mark.parametrize("case", list(BAD_STEPS))
def test_bad_plans_fail_before_anything_runs(case):
    make_second, message = BAD_STEPS[case]
    counter("c")
    with pytest.raises(PlanError, match=message):
        workspace.RunPlan(two_step_plan(make_second))
    assert value("c") == 0 and workspace.current().nets == {}
    assert workspace.Blobs() == ["c"]


def test_bad_operator_in_a_later_step_fails_before_anything_runs():
    counter("c")
    workspace.FeedBlob("x", np.ones(2, np.float32))
    bad = core.Net("bad")
    bad.Relu(["x", "x"], ["y"])  # Relu takes one input
    p = core.Plan("p")
    p.AddStep(core.execution_step("first", count_net("n1", "c")))
    p.AddStep(core.execution_step("second", bad))
    with pytest.raises(SchemaError, match="Relu"):
        workspace.RunPlan(p)
    typo = core.Net("typo")
    typo.Relu(["x_typo"], ["y"])
    p = core.Plan("p2")
    p.AddStep(core.execution_step("first", count_net("n2", "c")))
    p.AddStep(core.execution_step("second", typo))
    with pytest.raises(BlobNotFound, match="x_typo"):
        workspace.RunPlan(p)
    typo.Save(["x"], [], db="never_written.minidb", db_type="minidb")  # still checked
    p = core.Plan("p3")
    p.AddStep(core.execution_step("first", count_net("n3", "c")))
    p.AddStep(core.execution_step("second", typo))
    with pytest.raises(BlobNotFound, match="x_typo"):
        workspace.RunPlan(p)
    assert value("c") == 0 and workspace.current().nets == {}


def test_duplicate_net_names():
    counter("c")
    p = core.Plan("p")
    p.AddStep(core.execution_step("first", count_net("dup", "c")))
    p.Proto().network.add().CopyFrom(p.Proto().network[0])
    with pytest.raises(PlanError, match='networks of the same name "dup"'):
        workspace.RunPlan(p)


def test_blobs_made_by_an_earlier_step_feed_a_later_net(tmp_path):
    """Nets are created when their top-level step starts (Load load_all makes 'w' first)."""
    workspace.ResetWorkspace(str(tmp_path))
    workspace.FeedBlob("w", np.array([-1.0, 3.0], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("Save", ["w"], [], db="w.minidb",
                                                  db_type="minidb"))
    workspace.ResetWorkspace()
    load = core.Net("load")
    load.Load([], [], db="w.minidb", db_type="minidb", load_all=1)
    use = core.Net("use")
    use.Relu(["w"], ["r"])
    p = core.Plan("p")
    p.AddStep(core.execution_step("init", load))
    p.AddStep(core.execution_step("train", use))
    workspace.RunPlan(p)
    np.testing.assert_array_equal(workspace.FetchBlob("r"), [0.0, 3.0])


# -- inputs RunPlan accepts ----------------------------------------------------
def test_run_plan_accepts_protos_text_and_objects():
    counter("c")
    p = core.Plan(core.execution_step("s", count_net("n", "c"), num_iter=2))
    proto = p.Proto()
    from google.protobuf import text_format

    for form in (p, proto, proto.SerializeToString(), text_format.MessageToString(proto)):
        workspace.RunPlan(form)
    assert workspace.current().run(proto) is True
    assert value("c") == 10
    with pytest.raises(PlanError, match="got int"):
        workspace.RunPlan(3)


def test_empty_plan_is_legal():
    assert workspace.RunPlan(core.Plan("nothing")) is True


# -- the Python builder (Caffe2's core.py API) ---------------------------------
def test_builder_api():
    n1, n2 = count_net("b1", "c"), count_net("b2", "c")
    inner = core.ExecutionStep("inner", [n2])
    outer = core.ExecutionStep("outer")
    outer.AddSubstep(core.ExecutionStep("first", n1)).AddSubstep(inner)
    outer.SetIter(2)
    outer.SetConcurrentSubsteps(False)
    with pytest.raises(AssertionError, match="both network and substeps"):
        outer.AddNet(n1)
    with pytest.raises(AssertionError, match="BlobReference"):
        outer.SetShouldStopBlob("stop")
    p = core.Plan("p")
    p.AddStep(outer)
    assert [n.name for n in p.Proto().network] == [n1.Name(), n2.Name()]
    assert p.Steps() == [outer] and p.Nets() == [n1, n2]
    with pytest.raises(AssertionError, match="already been added"):
        outer.SetIter(3)
    with pytest.raises(AssertionError, match="Cannot set both"):
        core.execution_step("x", n1, num_iter=2, should_stop_blob=core.BlobReference("s"))
    p.AddStep(core.ExecutionStep("empty"))  # a step with nothing to run is dropped
    assert len(p.Proto().execution_step) == 1
    with core.NameScope("scope"):
        assert core.scoped_execution_step("s", n1).Name() == "scope/s"
    counter("c")
    workspace.RunPlan(p)
    assert value("c") == 4


# -- progress ------------------------------------------------------------------
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("quiet, tty, shown", [(None, True, True), (True, True, False),
                                               (None, False, False)])
def test_progress_bar_only_on_terminals_unless_quiet(monkeypatch, quiet, tty, shown):
    stream = FakeTerminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    counter("c")
    workspace.RunPlan(core.execution_step("long", count_net("n", "c"), num_iter=50),
                      quiet=quiet)
    text = stream.getvalue()
    assert ("it/s" in text and "long" in text and "50/50" in text) == shown
    assert shown or text == ""


def test_module_level_quiet(monkeypatch):
    stream = FakeTerminal()
    monkeypatch.setattr("sys.stderr", stream)
    counter("c")
    plan.set_quiet(True)
    try:
        workspace.RunPlan(core.execution_step("long", count_net("n", "c"), num_iter=5))
    finally:
        plan.set_quiet(False)
    assert stream.getvalue() == ""


# -- the run-plan command ------------------------------------------------------
def test_run_plan_command(tmp_path, monkeypatch, capsys):
    from caffe2lite import protoio

    init = core.Net("init")
    init.Relu(["c0"], ["unused"])
    p = core.Plan(core.execution_step("s", count_net("n", "c"), num_iter=3))
    protoio.save_proto(p.Proto(), tmp_path / "plan.pbtxt")
    counter("c")
    workspace.FeedBlob("c0", np.zeros(1, np.float32))
    protoio.save_proto(init.Proto(), tmp_path / "init.pb")
    assert cli.main(["run-plan", str(tmp_path / "plan.pbtxt"), "--init",
                                  str(tmp_path / "init.pb")]) == 0
    assert value("c") == 3 and workspace.HasBlob("unused")
    assert 'plan "s" ran in' in capsys.readouterr().err
    assert cli.main(["run-plan", str(tmp_path / "plan.pbtxt"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    (tmp_path / "bad.pbtxt").write_text('execution_step { name: "x" network: "ghost" }')
    assert cli.main(["run-plan", str(tmp_path / "bad.pbtxt")]) == 1
    assert "undefined net 'ghost'" in capsys.readouterr().err
    assert cli.main(["run-plan", str(tmp_path / "missing.pb")]) == 1
