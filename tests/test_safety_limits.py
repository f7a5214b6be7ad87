"""Running nets you did not write: confinement, size and iteration limits, deadlines and
nesting (issue 13, items 2 and 3)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from caffe2lite import cli, core, workspace
from caffe2lite.errors import (Caffe2LiteError, ConfinementError, DeadlineExceeded, LimitExceeded,
                               PlanError, ProtoParseError)
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, flags, register_kernel, register_schema,
                                registry, safety)
from helpers import assert_unchanged, snapshot


@pytest.fixture
def root(tmp_path):
    """A workspace rooted in tmp_path/root (beside it: tmp_path/outside.minidb's folder);
    limits and flags are put back afterwards."""
    saved = dict(flags._values)
    folder = tmp_path / "root"
    folder.mkdir()
    workspace.ResetWorkspace(str(folder))
    yield folder
    workspace.current().limits = None
    flags._values.clear()
    flags._values.update(saved)


def op(op_type, inputs=(), outputs=(), **args):
    return core.CreateOperator(op_type, list(inputs), list(outputs), **args)


def run(op_def):
    return workspace.RunOperatorOnce(op_def)


# -- confinement -------------------------------------------------------------------------
def _escapes(root):
    """(op, file it would touch outside root) for each way a net reached out in Caffe2."""
    outside = root.parent / "outside.minidb"
    return [
        (op("Save", ["w"], [], db="../outside.minidb", db_type="minidb"), outside),
        (op("Save", ["w"], [], db=str(outside), db_type="minidb", absolute_path=1), outside),
        (op("Checkpoint", ["it", "w"], [], db="../ck_%d.minidb", db_type="minidb"),
         root.parent / "ck_0.minidb"),
        (op("Save", ["w"], [], db="sub/../../outside.minidb", db_type="minidb"), outside),
    ]


def test_unconfined_workspaces_keep_caffe2s_paths(root):
    """Off by default: a Caffe2 script's paths behave as before."""
    workspace.FeedBlob("w", np.ones(2, np.float32))
    run(op("Save", ["w"], [], db="../outside.minidb", db_type="minidb"))
    assert (root.parent / "outside.minidb").is_file()
    run(op("DBExists", [], ["e"], db_name=str(root.parent / "outside.minidb"),
           absolute_path=1, db_type="minidb"))
    assert workspace.FetchBlob("e")


def test_confined_saves_cannot_leave_the_root(root):
    workspace.FeedBlob("w", np.ones(2, np.float32))
    workspace.FeedBlob("it", np.array([0], np.int64))
    workspace.SetLimits(confine=True)
    for save, target in _escapes(root):
        before = snapshot()
        with pytest.raises(ConfinementError, match="outside the workspace root|absolute_path"):
            run(save)
        assert not target.exists()
        assert_unchanged(before)
    (root / "sub").mkdir()
    run(op("Save", ["w"], [], db="sub/inside.minidb", db_type="minidb"))  # inside: fine
    run(op("Save", ["w"], [], db="/inside2.minidb", db_type="minidb"))  # root-relative
    assert (root / "sub" / "inside.minidb").is_file() and (root / "inside2.minidb").is_file()


def test_confined_loads_and_db_exists_cannot_look_outside(root):
    outside = root.parent / "outside.minidb"
    workspace.FeedBlob("w", np.ones(2, np.float32))
    run(op("Save", ["w"], [], db=str(outside), db_type="minidb", absolute_path=1))
    workspace.SetLimits(confine=True)
    refused = [op("Load", [], ["w"], db="../outside.minidb", db_type="minidb"),
               op("Load", [], ["w"], db=str(outside), db_type="minidb", absolute_path=1),
               op("Load", [], ["w"], dbs=["../outside.minidb"], db_type="minidb"),
               op("DBExists", [], ["e"], db_name=str(outside), absolute_path=1,
                  db_type="minidb"),
               op("DBExists", [], ["e"], db_name="../outside.minidb", db_type="minidb")]
    for load in refused:
        before = snapshot()
        with pytest.raises(ConfinementError) as info:
            run(load)
        assert "root folder" in str(info.value) and load.type in str(info.value)
        assert_unchanged(before)


def test_symlinks_are_followed_before_the_check(root):
    outside_dir = root.parent / "elsewhere"
    outside_dir.mkdir()
    os.symlink(outside_dir, root / "link")
    workspace.FeedBlob("w", np.ones(2, np.float32))
    workspace.SetLimits(confine=True)
    with pytest.raises(ConfinementError, match="elsewhere"):
        run(op("Save", ["w"], [], db="link/w.minidb", db_type="minidb"))
    assert not list(outside_dir.iterdir())


def test_confined_db_readers_stay_inside(root):
    from caffe2lite.operators.save_load import DBReader

    workspace.current().blob_dict["reader"] = DBReader(str(root.parent / "outside.minidb"))
    workspace.SetLimits(confine=True)
    with pytest.raises(ConfinementError, match="DBReader"):
        run(op("Load", ["reader"], ["w"]))


def test_confinement_survives_reset_and_comes_from_global_init(root):
    workspace.SetLimits(confine=True)
    workspace.ResetWorkspace()
    assert workspace.GetLimits().confine
    workspace.current().limits = None
    workspace.GlobalInit(["caffe2", "--caffe2lite_confine=1",
                          "--caffe2lite_max_tensor_bytes=4096"])
    limits = workspace.GetLimits()
    assert limits == safety.Limits(True, 4096, safety.CONFINED_DEFAULTS["max_plan_iterations"])
    workspace.FeedBlob("w", np.ones(2, np.float32))
    with pytest.raises(ConfinementError):
        run(op("Save", ["w"], [], db="../outside.minidb", db_type="minidb"))


def test_the_command_line_confines_with_a_flag(root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(root)
    workspace.ResetWorkspace(".")
    net = tmp_path / "escape.pbtxt"
    net.write_text('name: "escape" op { type: "ConstantFill" output: "w" '
                   'arg { name: "shape" ints: 2 } } '
                   'op { type: "Save" input: "w" arg { name: "db" s: "../stolen.minidb" } '
                   'arg { name: "db_type" s: "minidb" } }')
    assert cli.main(["run", str(net), "--confine", "--fetch", "w"]) == 1
    assert "outside the workspace root" in capsys.readouterr().err
    assert not (tmp_path / "stolen.minidb").exists()


def test_set_limits_checks_its_values(root):
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(Caffe2LiteError, match="positive int"):
            workspace.SetLimits(max_tensor_bytes=bad)
    with pytest.raises(Caffe2LiteError, match=">= 0"):
        workspace.GlobalInit(["caffe2", "--caffe2lite_max_plan_iterations=-3"])


# -- tensor sizes --------------------------------------------------------------------------
def test_a_huge_fill_names_its_argument_before_allocating(root):
    """Without any limit: more than the machine's memory is refused naming 'shape'."""
    before = snapshot()
    with pytest.raises(LimitExceeded, match=r"op ConstantFill: argument 'shape' asks for a "
                                            r"tensor of shape \[1000000, 1000000\]"):
        run(op("ConstantFill", [], ["y"], shape=[10**6, 10**6]))
    assert_unchanged(before)


@pytest.mark.parametrize("op_type,itemsize", [
    ("ConstantFill", 4), ("UniformFill", 4), ("GaussianFill", 4), ("XavierFill", 4),
    ("MSRAFill", 4), ("RangeFill", 4), ("UniformIntFill", 4)])
def test_max_tensor_bytes_bounds_every_filler(root, op_type, itemsize):
    workspace.SetLimits(max_tensor_bytes=1000)
    run(op(op_type, [], ["ok"], shape=[10, 25]))  # exactly 1,000 bytes: allowed
    assert workspace.FetchBlob("ok").nbytes == 250 * itemsize
    before = snapshot()
    with pytest.raises(LimitExceeded, match=rf"op {op_type}: argument 'shape' asks for .* "
                                            r"over the workspace's max_tensor_bytes"):
        run(op(op_type, [], ["big"], shape=[10, 26]))
    assert_unchanged(before)


def test_a_shape_from_a_blob_is_checked_too(root):
    workspace.SetLimits(max_tensor_bytes=1 << 20)
    workspace.FeedBlob("dims", np.array([1 << 10, 1 << 10], np.int64))
    before = snapshot()
    with pytest.raises(LimitExceeded, match=r"input 0 .*blob 'dims'.*input_as_shape.*"
                                            r"argument 'extra_shape' \[2\]"):
        run(op("ConstantFill", ["dims"], ["y"], input_as_shape=1, extra_shape=[2]))
    assert_unchanged(before)


def test_data_dependent_outputs_are_checked(root):
    workspace.SetLimits(max_tensor_bytes=4096)
    workspace.FeedBlob("lengths", np.array([1, 1], np.int32))
    workspace.FeedBlob("indices", np.array([0, 1], np.int64))
    workspace.FeedBlob("values", np.ones(2, np.float32))
    with pytest.raises(LimitExceeded, match="argument 'dense_last_dim'"):
        run(op("BatchSparseToDense", ["lengths", "indices", "values"], ["d"],
               dense_last_dim=10**6))
    workspace.FeedBlob("far", np.array([10**6], np.int64))
    workspace.FeedBlob("value", np.ones((1, 8), np.float32))
    with pytest.raises(LimitExceeded, match="largest index"):
        run(op("SparseToDense", ["far", "value"], ["d"]))


# Ops that made outputs many times max_tensor_bytes from small inputs (issue 23): each
# (inputs, args) makes an output of over 4 KiB from inputs of under 1 KiB each.
_BIG_OUTPUTS = {
    "LengthsRangeFill": ({"lengths": np.array([2000], np.int32)}, {}),  # no shape function
    "Add": ({"a": np.ones((64, 1), np.float32), "b": np.ones((1, 64), np.float32)}, {}),
    "Gather": ({"data": np.ones((10, 16), np.float32), "idx": np.zeros(100, np.int64)}, {}),
    "FC": ({"x": np.ones((64, 2), np.float32), "w": np.ones((64, 2), np.float32),
            "b": np.ones(64, np.float32)}, {}),
    "BatchMatMul": ({"a": np.ones((64, 2), np.float32), "b": np.ones((2, 64), np.float32)}, {}),
    "SparseLengthsSum": ({"data": np.ones((2, 64), np.float32), "ind": np.zeros(0, np.int64),
                         "len": np.zeros(100, np.int32)}, {}),
}


@pytest.mark.parametrize("op_type", sorted(_BIG_OUTPUTS))
def test_max_tensor_bytes_bounds_every_operators_outputs(root, op_type):
    feeds, args = _BIG_OUTPUTS[op_type]
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    made = op(op_type, list(feeds), ["out"], **args)
    run(made)  # no limit: it runs
    out_bytes = workspace.FetchBlob("out").nbytes
    assert out_bytes > 4096
    workspace.ResetWorkspace()
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.SetLimits(max_tensor_bytes=4096)
    before = snapshot()
    with pytest.raises(LimitExceeded, match=rf"op {op_type}: output 0 '\w+' \(blob 'out'\) "
                                            rf"(would be|is) a tensor of shape \[.*\] \(\w+, "
                                            rf".*\), over the workspace's max_tensor_bytes of "
                                            rf"4 KiB; nothing was written"):
        run(made)
    assert_unchanged(before)
    workspace.SetLimits(max_tensor_bytes=out_bytes)  # exactly its size: allowed
    run(made)


def test_a_computable_output_size_is_refused_before_the_kernel_runs(root):
    """With a shape function the op never runs; without one, the kernel's result is
    measured and dropped before anything is written."""
    calls = []
    with registry.isolated():
        register_schema(OpSchema("TestLimitShaped", num_inputs=1, num_outputs=1,
                                 infer_shapes=lambda ctx, x: (TensorSpec((x.shape[0], 10**6),
                                                                         x.dtype),)))
        register_kernel("TestLimitShaped")(lambda ctx, x: calls.append("shaped") or (x,))
        register_schema(OpSchema("TestLimitUnshaped", num_inputs=1, num_outputs=1))
        register_kernel("TestLimitUnshaped")(
            lambda ctx, x: calls.append("unshaped") or (np.zeros(10**4, x.dtype),))
        workspace.SetLimits(max_tensor_bytes=1 << 20)
        workspace.FeedBlob("x", np.ones(3, np.float32))
        before = snapshot()
        with pytest.raises(LimitExceeded, match=r"would be a tensor of shape \[3, 1000000\] "
                                                r"\(float32, 11.44 MiB\), over the "
                                                r"workspace's max_tensor_bytes of 1 MiB"):
            run(op("TestLimitShaped", ["x"], ["y"]))
        assert calls == []
        workspace.SetLimits(max_tensor_bytes=1000)
        with pytest.raises(LimitExceeded, match=r"output 0 \(blob 'y'\) is a tensor of shape "
                                                r"\[10000\] \(float32, 39.06 KiB\)"):
            run(op("TestLimitUnshaped", ["x"], ["y"]))
        assert calls == ["unshaped"]
        assert_unchanged(before)


def test_an_in_place_output_no_larger_than_its_input_is_no_new_allocation(root):
    """A table fed larger than the limit can still be updated in place (an optimizer's
    param), but not copied to a new blob."""
    workspace.SetLimits(max_tensor_bytes=1000)
    workspace.FeedBlob("table", np.ones((100, 10), np.float32))  # 4,000 bytes, fed
    run(op("Relu", ["table"], ["table"]))
    with pytest.raises(LimitExceeded, match="blob 'copy'"):
        run(op("Relu", ["table"], ["copy"]))


def test_without_a_limit_the_kernel_runs_unwrapped(root):
    """The dispatch loop pays nothing for limits no one set: the kernel the engine
    calls is the registered one itself."""
    workspace.FeedBlob("x", np.ones(3, np.float32))
    net = core.Net("unlimited")
    net.Relu("x", "y")
    workspace.CreateNet(net)
    (relu,) = workspace.current().nets["unlimited"].operators
    assert relu.kernel is registry.find_kernel(relu.op_def, caffe2_pb2.CPU)[0]
    workspace.SetLimits(max_tensor_bytes=1 << 20)
    workspace.CreateNet(net, overwrite=True)
    (limited,) = workspace.current().nets["unlimited"].operators
    assert limited.kernel is not relu.kernel


# -- plan iterations -------------------------------------------------------------------------
def _counter_net(name="tick"):
    workspace.FeedBlob("n", np.zeros(1, np.float32))
    workspace.FeedBlob("one", np.ones(1, np.float32))
    net = core.Net(name)
    net.Add(["n", "one"], "n")
    return net


def test_endless_plans_are_refused_up_front_in_a_confined_workspace(root):
    net = _counter_net()
    huge = core.Plan(core.execution_step("forever", net, num_iter=10**18))
    nested = core.Plan(core.execution_step("outer", [core.execution_step("middle", [
        core.execution_step("inner", net, num_iter=10**6)], num_iter=10**6)],
        num_iter=10**6))
    workspace.SetLimits(confine=True)
    for plan in (huge, nested):
        before = snapshot()
        with pytest.raises(PlanError, match="max_plan_iterations of 100000000"):
            workspace.RunPlan(plan)
        assert_unchanged(before)


def test_a_stop_blob_that_never_stops_meets_the_iteration_limit(root):
    net = _counter_net()
    workspace.FeedBlob("stop", np.array(False))
    step = core.execution_step("until", net,
                               should_stop_blob=core.BlobReference("stop"))
    workspace.SetLimits(max_plan_iterations=50)
    with pytest.raises(LimitExceeded, match="ran 50 iterations"):
        workspace.RunPlan(core.Plan(step))
    assert workspace.FetchBlob("n")[0] == 50


# -- deadlines ----------------------------------------------------------------------------------
@pytest.fixture
def slow_op():
    """'TestSlowIncrement': y = x + 1 after sleeping 10 ms (a throw-away operator)."""
    with registry.isolated():
        register_schema(OpSchema("TestSlowIncrement", num_inputs=1, num_outputs=1,
                                 allow_inplace={(0, 0)},
                                 args=[Arg("ms", "int", 10, "sleep")], doc="x + 1, slowly"))

        @register_kernel("TestSlowIncrement")
        def slow(ctx, x):
            time.sleep(ctx.args["ms"] / 1000)
            return (x + 1,)

        yield


def _slow_net(n_ops=30):
    net = core.Net("slow")
    for _ in range(n_ops):
        net.TestSlowIncrement("x", "x")
    return net


@pytest.mark.parametrize("runs_before", [0, 1, 2])  # the loop, then the compiled variant
def test_run_net_stops_at_the_deadline_between_ops(root, slow_op, runs_before):
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    net = _slow_net()
    workspace.CreateNet(net)
    for _ in range(runs_before):
        workspace.RunNet(net.Name())
    start_value = workspace.FetchBlob("x")[0]
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        workspace.RunNet(net.Name(), timeout=0.05)
    assert time.monotonic() - start < 0.25
    done = workspace.FetchBlob("x")[0] - start_value
    assert 1 <= done < 30  # some ops ran, then it stopped
    assert f'op #{int(done)} TestSlowIncrement in net "{net.Name()}"' in str(info.value)
    workspace.RunNet(net.Name())  # without a timeout the net runs whole again
    assert workspace.FetchBlob("x")[0] == start_value + done + 30


def test_a_zero_timeout_runs_nothing(root, slow_op):
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    before = snapshot()
    with pytest.raises(DeadlineExceeded, match="op #0"):
        workspace.RunNetOnce(_slow_net(), timeout=0)
    assert_unchanged(before)
    for bad in (-1, float("nan"), "1"):
        with pytest.raises(Caffe2LiteError, match="timeout"):
            workspace.RunNetOnce(_slow_net(), timeout=bad)


def test_run_plan_stops_at_the_deadline(root, slow_op):
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    net = core.Net("slow_step")
    net.TestSlowIncrement("x", "x", ms=5)
    plan = core.Plan(core.execution_step("many", net, num_iter=10**6))
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        workspace.RunPlan(plan, timeout=0.2)
    assert time.monotonic() - start < 2
    assert 1 <= workspace.FetchBlob("x")[0] < 10**6
    handle = workspace.RunPlanInBackground(plan, timeout=0.1)
    assert handle.wait(10) and isinstance(handle.error, DeadlineExceeded)


def test_a_deadline_stops_concurrent_substeps(root, slow_op):
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    workspace.FeedBlob("z", np.zeros(1, np.float32))
    a, b = core.Net("slow_a"), core.Net("slow_b")
    a.TestSlowIncrement("x", "x", ms=2)
    b.TestSlowIncrement("z", "z", ms=2)
    plan = core.Plan(core.execution_step("both", [
        core.execution_step("a", a, num_iter=10**6),
        core.execution_step("b", b, num_iter=10**6)], concurrent_substeps=True))
    with pytest.raises(DeadlineExceeded):
        workspace.RunPlan(plan, timeout=0.2)
    assert workspace.FetchBlob("x")[0] < 10**4 and workspace.FetchBlob("z")[0] < 10**4


# -- nesting ------------------------------------------------------------------------------------
def _deep_text(depth):
    return ('name: "deep" op { type: "Relu" input: "x" output: "y" arg { name: "a" '
            + "n { op { arg { " * depth + "} } } " * depth + "} }")


def test_deeply_nested_text_is_a_proto_error_not_a_recursion_error(root):
    text = _deep_text(200)
    for call in (lambda: workspace.CreateNet(text), lambda: workspace.RunNetOnce(text),
                 lambda: workspace.RunPlan('name: "p" network { ' + text[:-1] + "}")):
        with pytest.raises(ProtoParseError, match=f"nested deeper than {safety.MAX_NESTING}"):
            call()
    shallow = _deep_text(10)  # well within the limit: parses (the Relu then runs)
    workspace.FeedBlob("x", np.ones(1, np.float32))
    workspace.RunNetOnce(shallow)


def test_braces_inside_strings_and_comments_do_not_count(root):
    text = ('name: "{{{{{{" # ' + "{" * 500 + '\n op { type: "Relu" input: "x" output: "y" '
            'arg { name: "s" s: "' + "<" * 500 + '" } }')
    workspace.FeedBlob("x", np.ones(1, np.float32))
    workspace.RunNetOnce(text)


def test_deeply_nested_steps_are_a_plan_error(root):
    net = _counter_net()
    step = core.execution_step("leaf", net)
    for i in range(1100):  # deeper than Python's recursion limit
        step = core.execution_step(f"level{i}", [step])
    with pytest.raises(PlanError, match=f"deeper than {safety.MAX_NESTING}"):
        workspace.RunPlan(step)
    deep = caffe2_pb2.PlanDef(name="deep")  # built as a proto: checked by the executor
    deep.network.add().CopyFrom(net.Proto())
    cursor = deep.execution_step.add(name="s0")
    for i in range(1, 1500):
        cursor = cursor.substep.add(name=f"s{i}")
    cursor.network.append(net.Name())
    before = snapshot()
    with pytest.raises(PlanError, match=f"deeper than {safety.MAX_NESTING}"):
        workspace.RunPlan(deep)
    assert_unchanged(before)
    ok = core.execution_step("leaf", net)
    for i in range(safety.MAX_NESTING - 1):
        ok = core.execution_step(f"ok{i}", [ok])
    workspace.RunPlan(ok)  # at the limit: runs
    assert workspace.FetchBlob("n")[0] == 1


def test_nets_nested_in_arguments_built_in_python_are_refused(root):
    """A NetDef built in Python skips the parser's check; protobuf would later raise a
    raw DecodeError (or recurse) on it."""
    net = caffe2_pb2.NetDef(name="nested")
    cursor = net.op.add(type="Relu", input=["x"], output=["y"]).arg.add(name="body").n
    for _ in range(300):
        cursor = cursor.op.add(type="Relu").arg.add(name="body").n
    workspace.FeedBlob("x", np.ones(2, np.float32))
    before = snapshot()
    for call in (lambda: workspace.CreateNet(net), lambda: workspace.RunNetOnce(net),
                 lambda: workspace.RunNetOnce(net.SerializeToString())):
        with pytest.raises(ProtoParseError, match="nested"):
            call()
        assert_unchanged(before)
