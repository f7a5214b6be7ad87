"""ONNX -> Caffe2 mappings that are compositions of Caffe2 ops, against NumPy.

Each reference is written here from ONNX's operator definition; the models
are built by hand so a case can hide shapes from ONNX's shape inference (a
symbolic dim) and take the mapping's run-time path as well as its static one.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

from onnx import helper  # noqa: E402

from caffe2lite.onnx import backend  # noqa: E402
from caffe2lite.onnx.dtypes import onnx_type  # noqa: E402


def run(nodes, inputs, outputs, opset=21, symbolic=False, **attrs):
    """Outputs of a graph of ``nodes`` (NodeProtos, or one op type with ``attrs``) fed
    ``inputs`` ({name: array}); ``symbolic`` hides every input dim from shape inference."""
    if isinstance(nodes, str):
        nodes = [helper.make_node(nodes, list(inputs), list(outputs), **attrs)]
    graph_inputs = [helper.make_tensor_value_info(
        name, onnx_type(value.dtype),
        [f"d{name}{i}" for i in range(value.ndim)] if symbolic else value.shape)
        for name, value in inputs.items()]
    graph = helper.make_graph(nodes, "composition", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return backend.prepare(model).run(inputs)


@pytest.mark.parametrize("symbolic", [False, True])
def test_where_broadcasts_condition_and_values(symbolic):
    rng = np.random.default_rng(0)
    c = rng.random((3, 1)) > 0.5
    x = rng.standard_normal((1, 4)).astype(np.float32)
    y = np.float32(-7)
    (z,) = run("Where", {"c": c, "x": x, "y": np.asarray(y)}, ["z"], symbolic=symbolic)
    assert z.shape == (3, 4)
    np.testing.assert_array_equal(z, np.where(c, x, y))


def test_where_of_bools_and_equal_shapes():
    c = np.array([[True, False], [False, True]])
    x = np.array([True, True])
    y = np.array([[False], [False]])
    (z,) = run("Where", {"c": c, "x": x, "y": y}, ["z"])
    np.testing.assert_array_equal(z, np.where(c, x, y))
    same = np.arange(4, dtype=np.int64).reshape(2, 2)
    (z,) = run("Where", {"c": c, "x": same, "y": -same}, ["z"])
    np.testing.assert_array_equal(z, np.where(c, same, -same))
