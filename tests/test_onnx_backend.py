"""ONNX -> Caffe2: the Backend API, bad models, and the command line.

References are NumPy written from ONNX's operator definitions; ONNX's own
suite (test_onnx_backend_suite.py) covers the node mappings case by case.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from caffe2lite import cli  # noqa: E402
from caffe2lite.onnx import backend  # noqa: E402
from caffe2lite.onnx.error import ConversionError, Unsupported  # noqa: E402

F = np.float32


def _gemm_relu_model(opset=13):
    w = np.arange(12, dtype=F).reshape(3, 4) / 10
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["y"]),
         helper.make_node("Softmax", ["y"], ["p"], axis=0)],
        "gemm_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("p", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1, 0, 1], F), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), w


def test_prepare_runs_lists_and_dicts_against_numpy():
    model, w = _gemm_relu_model()
    x = np.array([[1, -2, 3, 0.5], [0, 1, -1, 2]], F)
    y = np.maximum(x @ w.T + np.array([-1, 0, 1], F), 0)
    p = np.exp(y - y.max(axis=0)) / np.exp(y - y.max(axis=0)).sum(axis=0)  # ONNX 13: one axis
    rep = backend.prepare(model, "CPU")
    for outputs in (rep.run([x]), rep.run({"x": x}), backend.run_model(model, [x])):
        np.testing.assert_allclose(outputs.y, y, rtol=1e-6)
        np.testing.assert_allclose(outputs[1], p, rtol=1e-6)
    with pytest.raises(ConversionError, match="no input"):
        rep.run({"z": x})


def test_run_node_and_supports_device():
    node = helper.make_node("Concat", ["a", "b"], ["c"], axis=-1)
    a, b = np.ones((2, 2), F), np.zeros((2, 3), F)
    (c,) = backend.run_node(node, [a, b])
    np.testing.assert_array_equal(c, np.concatenate([a, b], axis=-1))
    assert backend.supports_device("CPU")


def test_onnx_graph_to_caffe2_net_gives_runnable_nets():
    from caffe2lite import workspace

    model, w = _gemm_relu_model()
    init, predict = backend.Caffe2Backend.onnx_graph_to_caffe2_net(model)
    assert [op.type for op in predict.op] == ["FC", "Relu", "Transpose", "Softmax", "Transpose"]
    workspace.RunNetOnce(init)
    x = np.ones((2, 4), F)
    workspace.FeedBlob("x", x)
    workspace.RunNetOnce(predict)
    np.testing.assert_allclose(workspace.FetchBlob("y"),
                               np.maximum(x @ w.T + np.array([-1, 0, 1], F), 0), rtol=1e-6)


def test_inputs_caffe2_took_as_arguments_are_bound_at_run_time():
    graph = helper.make_graph(
        [helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=0)], "split",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5]),
         helper.make_tensor_value_info("sizes", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    rep = backend.prepare(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    x = np.arange(5, dtype=F)
    for sizes in ([2, 3], [4, 1], [2, 3]):
        a, b = rep.run([x, np.array(sizes, np.int64)])
        np.testing.assert_array_equal(a, x[:sizes[0]])
        np.testing.assert_array_equal(b, x[sizes[0]:])


# -- bad models ---------------------------------------------------------------------------
def test_truncated_or_garbage_files_name_the_file(tmp_path):
    model, _ = _gemm_relu_model()
    data = model.SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ConversionError, match="truncated.onnx"):
        backend.prepare(str(truncated))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xff not a model")
    with pytest.raises(ConversionError, match="garbage.onnx"):
        backend.prepare(str(garbage))
    with pytest.raises(ConversionError, match="cannot read ONNX model"):
        backend.prepare(str(tmp_path / "missing.onnx"))


def test_unknown_opset_and_unmapped_ops_are_named():
    model, _ = _gemm_relu_model()
    model.opset_import[0].version = 99
    with pytest.raises(Unsupported, match="opset 99; caffe2lite reads opsets 6 to"):
        backend.prepare(model)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("NonZero", ["a"], ["b"]),
         helper.make_node("Det", ["b"], ["c"]), helper.make_node("NonZero", ["c"], ["d"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [2, 2])])
    with pytest.raises(Unsupported, match=r"3 node\(s\).*Det \(node #2\); NonZero "
                                          r"\(nodes #1, #3\)"):
        backend.prepare(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


# -- command line -------------------------------------------------------------------------
def _write_net(path, text):
    path.write_text(text)
    return str(path)


def test_cli_converts_both_ways_and_runs_onnx(tmp_path, capsys):
    predict = _write_net(tmp_path / "p.pbtxt", """
name: "p"
external_input: "x" external_input: "w" external_input: "b"
op { input: "x" input: "w" input: "b" output: "y" type: "FC" }
op { input: "y" output: "y" type: "Relu" }
external_output: "y"
""")
    init = _write_net(tmp_path / "i.pbtxt", """
name: "i"
op { output: "w" type: "GivenTensorFill"
     arg { name: "shape" ints: 2 ints: 3 } arg { name: "values" floats: 1 floats: 2 floats: 3
     floats: -1 floats: -2 floats: -3 } }
op { output: "b" type: "GivenTensorFill" arg { name: "shape" ints: 2 }
     arg { name: "values" floats: 0.5 floats: 0.5 } }
""")
    out = tmp_path / "m.onnx"
    assert cli.main(["convert", predict, "--init", init, "--input", "x=4,3",
                     "-o", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    np.save(tmp_path / "x.npy", np.ones((4, 3), F))
    capsys.readouterr()
    assert cli.main(["run", str(out), "--feed", f"x={tmp_path / 'x.npy'}"]) == 0
    assert "[[6.5 0. ]" in capsys.readouterr().out  # relu(1+2+3 + .5), relu(-6 + .5)
    assert cli.main(["convert", str(out), "-o", str(tmp_path / "back.pb"),
                     "--init-out", str(tmp_path / "back_init.pbtxt")]) == 0
    assert cli.main(["run", str(tmp_path / "back.pb"), "--init",
                     str(tmp_path / "back_init.pbtxt"), "--feed",
                     f"x={tmp_path / 'x.npy'}"]) == 0
    assert "[[6.5 0. ]" in capsys.readouterr().out


def test_cli_failure_leaves_no_output_file(tmp_path, capsys):
    predict = _write_net(tmp_path / "p.pbtxt", """
name: "p" external_input: "x" external_input: "label"
op { input: "x" input: "label" output: "p" output: "loss" type: "SoftmaxWithLoss" }
external_output: "loss"
""")
    out = tmp_path / "m.onnx"
    assert cli.main(["convert", predict, "--input", "x=2,3", "--input", "label=int32:2",
                     "-o", str(out)]) == 1
    assert "SoftmaxWithLoss (op #0)" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "p.pbtxt"]
    assert cli.main(["convert", predict, "--input", "x=two", "-o", str(out)]) == 1
    assert "--input 'x=two'" in capsys.readouterr().err
