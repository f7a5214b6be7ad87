"""The Python operator: core.CreatePythonOperator and net.Python, as Caffe2's python_op."""

import numpy as np
import pytest

from caffe2lite import core, testing, workspace
from helpers import assert_unchanged, snapshot


def double(inputs, outputs):
    outputs[0].reshape(inputs[0].shape)
    outputs[0].data[...] = inputs[0].data * 2


def double_grad(inputs, outputs):
    # inputs: [x, y, dy]; outputs: [dx]
    outputs[0].reshape(inputs[2].shape)
    outputs[0].data[...] = inputs[2].data * 2


def make_counter(start, step=1):
    """A builder (pickled into the op, so module level): a counting function with state."""
    state = {"n": start}

    def f(inputs, outputs):
        state["n"] += step
        outputs[0].feed(np.array([state["n"]], np.int64))
    return f


def test_function_sees_tensor_handles_and_writes_outputs():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    seen = {}

    def f(inputs, outputs):
        seen["shape"], seen["type"] = inputs[0].shape, type(inputs[0].data)
        double(inputs, outputs)

    workspace.FeedBlob("x", x)
    workspace.RunOperatorOnce(core.CreatePythonOperator(f, ["x"], ["y"]))
    assert seen == {"shape": (2, 3), "type": np.ndarray}
    np.testing.assert_array_equal(workspace.FetchBlob("y"), 2 * x)
    np.testing.assert_array_equal(workspace.FetchBlob("x"), x)  # inputs are not written


class CustomError(Exception):
    pass


def test_exception_propagates_as_its_own_class_and_leaves_blobs_unchanged():
    def f(inputs, outputs):
        outputs[0].feed(np.ones(3, np.float32))
        raise CustomError("This is an intentional exception.")

    workspace.FeedBlob("y", np.zeros(2, np.float32))
    before = snapshot()
    with pytest.raises(CustomError, match="This is an intentional exception.") as caught:
        workspace.RunOperatorOnce(core.CreatePythonOperator(f, [], ["y"]))
    assert isinstance(caught.value, RuntimeError) and "op Python" in str(caught.value)
    assert_unchanged(before)


def test_untouched_output_is_an_empty_float_tensor():
    workspace.RunOperatorOnce(core.CreatePythonOperator(lambda i, o: None, [], ["y"]))
    out = workspace.FetchBlob("y")
    assert out.dtype == np.float32 and out.shape == (0,)


def test_net_python_with_builder_tuple_and_workspace():
    calls = []
    net = core.Net("counting")
    net.Python((make_counter, [10], {"step": 5}))([], ["n"])

    def peek(inputs, outputs, ws):
        calls.append(ws.blobs["n"].fetch()[0])

    net.Python(peek, pass_workspace=True)([], [])
    workspace.CreateNet(net)
    workspace.RunNet("counting")
    workspace.RunNet("counting")
    assert calls == [15, 20]  # per-op state built once from the pickled builder


def test_gradient_function_runs_as_python_gradient():
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    op = core.CreatePythonOperator(double, ["x"], ["y"], grad_f=double_grad)
    testing.check_gradient(op, [x], 0)
    net = core.Net("g")
    net.Proto().op.extend([op])
    net.AddGradientOperators(["y"])
    grad_op = net.Proto().op[-1]
    assert grad_op.type == "PythonGradient"
    assert list(grad_op.input) == ["x", "y", "y_autogen_grad"]
    assert list(grad_op.output) == ["x_grad"]


def test_gradient_indices_select_inputs_and_outputs():
    def f(inputs, outputs):
        for i in range(3):
            outputs[i].reshape(inputs[i].shape)
            outputs[i].data[...] = inputs[i].data * 2

    def grad_f(inputs, outputs):
        assert len(inputs) == 8 and len(outputs) == 1  # 3 in, 3 out, 2 output grads
        outputs[0].reshape(inputs[6].shape)
        outputs[0].data[...] = inputs[6].data * 2

    op = core.CreatePythonOperator(f, ["a", "b", "c"], ["p", "q", "r"], grad_f=grad_f,
                                   grad_output_indices=[0, 2], grad_input_indices=[0])
    net = core.Net("sel")
    net.Proto().op.extend([op])
    grads = net.AddGradientOperators({"p": None, "r": None})
    assert str(grads["a"]) == "a_grad" and "b" not in grads
    for name in "abc":
        workspace.FeedBlob(name, np.ones(2, np.float32))
    workspace.RunNetOnce(net)
    np.testing.assert_array_equal(workspace.FetchBlob("a_grad"), [2.0, 2.0])


def test_unknown_token_fails_clearly():
    op = core.CreateOperator("Python", [], [], token="no_such_token")
    with pytest.raises(RuntimeError, match="no Python function is registered"):
        workspace.RunOperatorOnce(op)
