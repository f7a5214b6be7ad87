"""Nets run more than once are compiled into straight-line code (caffe2lite/net.py).

The compiled function must do what the plain loop does, run for run: the same
outputs, the kernel contract (lists, scalars, wrong counts) checked the same way,
a failing op named in the error with no blob written by it, and any blob name
(quotes, backslashes, non-ASCII) read and written as given.
"""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, OperatorError
from caffe2lite.runtime import OpSchema, register_kernel, register_schema, registry
from helpers import assert_unchanged, snapshot


@pytest.fixture(autouse=True)
def sandbox():
    with registry.isolated():
        workspace.ResetWorkspace()
        yield


def test_every_run_gives_the_loops_results_and_the_source_has_one_call_per_op():
    workspace.FeedBlob("x", np.array([-1.0, 2.0, -3.0], np.float32))
    net = core.Net("chain")
    net.Relu("x", "r")
    net.Scale("r", "s", scale=3.0)
    net.Sum(["s", "x"], "y")
    workspace.CreateNet(net)
    created = workspace.current().nets[net.Name()]
    results = []
    for k in range(4):
        workspace.FeedBlob("x", np.array([-1.0, 2.0, -3.0], np.float32) * (k + 1))
        workspace.RunNet(net.Name())
        results.append(workspace.FetchBlob("y"))
    assert created.source.count("r = kernel_") == 3  # compiled on the second run
    for k, got in enumerate(results):
        x = np.array([-1.0, 2.0, -3.0], np.float32) * (k + 1)
        np.testing.assert_array_equal(got, np.maximum(x, 0) * np.float32(3.0) + x)


def _register(op_type, kernel, n_out=1):
    register_schema(OpSchema(op_type, num_inputs=1, num_outputs=n_out))
    register_kernel(op_type)(kernel)


def test_kernel_results_are_normalised_or_refused_as_in_the_loop():
    _register("ReturnsList", lambda ctx, x: [x + 1])
    _register("ReturnsScalar", lambda ctx, x: (np.float32(x.sum()),))
    _register("ReturnsTooMany", lambda ctx, x: (x, x))
    workspace.FeedBlob("x", np.ones(2, np.float32))
    net = core.Net("contract")
    net.ReturnsList("x", "a")
    net.ReturnsScalar("a", "b")
    workspace.CreateNet(net)
    for _ in range(3):
        workspace.RunNet(net.Name())
        assert isinstance(workspace.FetchBlob("b"), np.ndarray)
        assert workspace.FetchBlob("b").shape == () and workspace.FetchBlob("b") == 4
    bad = core.Net("too_many")
    bad.ReturnsTooMany("x", "c")
    workspace.CreateNet(bad)
    for _ in range(3):
        with pytest.raises(OperatorError, match=r"op #0 ReturnsTooMany.*returned 2 values "
                                                r"for 1 outputs"):
            workspace.RunNet(bad.Name())


def test_a_failing_op_is_named_and_writes_nothing_on_every_run():
    def picky(ctx, x):
        if x.sum() > 10:
            ctx.fail("input too large")
        return (x * 2,)

    _register("Picky", picky)
    net = core.Net("fails_later")
    net.Scale("x", "scaled", scale=2.0)
    net.Picky("scaled", "out")
    workspace.FeedBlob("x", np.ones(2, np.float32))
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    workspace.RunNet(net.Name())  # now compiled
    for _ in range(2):
        workspace.FeedBlob("x", np.full(2, 5.0, np.float32))
        before = snapshot()
        with pytest.raises(EnforceError, match=r'op #1 Picky in net "fails_later.*": input too'):
            workspace.RunNet(net.Name())
        after = snapshot()
        np.testing.assert_array_equal(after["scaled"], [10, 10])  # op #0 ran, as in order
        np.testing.assert_array_equal(after["out"], before["out"])  # op #1 wrote nothing
        workspace.FeedBlob("scaled", before["scaled"])
        assert_unchanged(before)


def test_a_blob_deleted_between_runs_is_reported_by_name():
    workspace.FeedBlob("x", np.ones(2, np.float32))
    net = core.Net("needs_x")
    net.Relu("x", "y")
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    workspace.RunNet(net.Name())
    workspace.current().blob_dict.pop("x")
    with pytest.raises(Exception, match=r"op #0 Relu.*'x'.*does not exist"):
        workspace.RunNet(net.Name())


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "back\\slash", "naïve/блоб", "a\nb"])
def test_any_blob_name_survives_compilation(name):
    workspace.FeedBlob(name, np.array([-2.0, 3.0], np.float32))
    net = core.Net("names")
    net.Relu(name, name + "_out")
    workspace.CreateNet(net)
    for _ in range(3):
        workspace.RunNet(net.Name())
    np.testing.assert_array_equal(workspace.FetchBlob(name + "_out"), [0.0, 3.0])


def test_an_empty_net_runs_any_number_of_times():
    net = core.Net("empty")
    workspace.CreateNet(net)
    for _ in range(3):
        assert workspace.RunNet(net.Name())


def test_a_compiled_net_names_the_failing_op_by_position():
    _register("FailsOnNegative", lambda ctx, x: (x,) if x.min() >= 0 else ctx.fail("negative"))
    workspace.FeedBlob("x", np.ones(2, np.float32))
    net = core.Net("long")
    blob = "x"
    for i in range(10):
        blob = net.Scale(blob, f"s{i}", scale=2.0) if i != 7 else net.FailsOnNegative(blob, "f")
    workspace.CreateNet(net)
    for _ in range(2):
        workspace.RunNet(net.Name())
    assert workspace.current().nets[net.Name()].source.count("r = kernel_") == 10
    np.testing.assert_array_equal(workspace.FetchBlob(blob), np.full(2, 2.0 ** 9, np.float32))
    workspace.FeedBlob("x", -np.ones(2, np.float32))
    with pytest.raises(EnforceError, match=r"op #7 FailsOnNegative.*negative"):
        workspace.RunNet(net.Name())
