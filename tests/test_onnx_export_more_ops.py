"""Caffe2 -> ONNX for the operators other branches are adding (math, sequences, detection).

Each case exports a one-op net and runs it in ONNX Runtime against caffe2lite's
own result.  Until an operator is registered here the case is skipped, naming
it and the branch adding it, so the mapping is checked as soon as it lands.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.onnx import frontend  # noqa: E402
from caffe2lite.runtime import registry  # noqa: E402

F = np.float32
R = np.random.default_rng(0)
X = R.standard_normal((2, 3, 4)).astype(F)
POS = np.abs(X) + 0.1
UNIT = np.clip(X / 4, -0.9, 0.9)

# (Caffe2 op, branch adding it, inputs, args, number of outputs)
CASES = [
    ("Reciprocal", "breadth-math", [POS], {}, 1),
    ("Floor", "breadth-math", [X], {}, 1),
    ("Ceil", "breadth-math", [X], {}, 1),
    ("Sin", "breadth-math", [X], {}, 1),
    ("Cos", "breadth-math", [X], {}, 1),
    ("Tan", "breadth-math", [UNIT], {}, 1),
    ("Asin", "breadth-math", [UNIT], {}, 1),
    ("Acos", "breadth-math", [UNIT], {}, 1),
    ("Atan", "breadth-math", [X], {}, 1),
    ("Sinh", "breadth-math", [UNIT], {}, 1),
    ("Cosh", "breadth-math", [UNIT], {}, 1),
    ("Erf", "breadth-math", [X], {}, 1),
    ("Sign", "breadth-math", [X], {}, 1),
    ("Softplus", "breadth-math", [X], {}, 1),
    ("Softsign", "breadth-math", [X], {}, 1),
    ("Elu", "breadth-math", [X], {"alpha": 0.5}, 1),
    ("LeakyRelu", "breadth-math", [X], {"alpha": 0.2}, 1),
    ("Selu", "breadth-math", [X], {}, 1),
    ("ThresholdedRelu", "breadth-math", [X], {"alpha": 0.3}, 1),
    ("HardSigmoid", "breadth-math", [X], {"alpha": 0.3, "beta": 0.4}, 1),
    ("Swish", "breadth-math", [X], {}, 1),
    ("Gelu", "breadth-math", [X], {}, 1),
    ("PRelu", "breadth-math", [X, np.array([0.1, 0.2, 0.3], F)], {}, 1),
    ("ReduceSum", "breadth-math", [X], {"axes": [1], "keepdims": 0}, 1),
    ("ReduceMean", "breadth-math", [X], {"axes": [0, 2]}, 1),
    ("ReduceMax", "breadth-math", [X], {"axes": [2], "keepdims": 0}, 1),
    ("ReduceMin", "breadth-math", [X], {}, 1),
    ("ReduceL1", "breadth-math", [X], {"axes": [1]}, 1),
    ("ReduceL2", "breadth-math", [X], {"axes": [1]}, 1),
    ("ReduceFrontSum", "breadth-math", [X], {"num_reduce_dim": 2}, 1),
    ("ReduceBackMean", "breadth-math", [X], {}, 1),
    ("SumElements", "breadth-math", [X], {}, 1),
    ("SumSqrElements", "breadth-math", [X], {}, 1),
    ("ArgMax", "breadth-math", [X], {"axis": 1}, 1),
    ("ArgMin", "breadth-math", [X], {"keepdims": 0}, 1),
    ("Max", "breadth-math", [X, X[::-1].copy()], {}, 1),
    ("Min", "breadth-math", [X, X[::-1].copy()], {}, 1),
    ("Mean", "breadth-math", [X, X[::-1].copy()], {}, 1),
    ("Normalize", "breadth-math", [X], {"axis": 1}, 1),
    ("NormalizeL1", "breadth-math", [X], {"axis": 2}, 1),
    ("InstanceNorm", "breadth-math", [X, np.ones(3, F), np.zeros(3, F)], {}, 1),
    ("LayerNorm", "breadth-math", [X], {"axis": 2}, 3),
    ("ExpandDims", "breadth-seq", [X], {"dims": [0, 3]}, 1),
    ("Squeeze", "breadth-seq", [X[:, :1]], {"dims": [1]}, 1),
    ("Where", "breadth-seq", [X > 0, X, -X], {}, 1),
    ("Expand", "breadth-seq", [X[:, :1], np.array([2, 3, 4], np.int64)], {}, 1),
    ("NumpyTile", "breadth-seq", [X, np.array([1, 2, 1], np.int64)], {}, 1),
    ("Tile", "breadth-seq", [X], {"tiles": 3, "axis": 1}, 1),
    ("Range", "breadth-seq", [np.array(1, np.int64), np.array(9, np.int64),
                              np.array(2, np.int64)], {}, 1),
    ("IsNaN", "breadth-seq", [np.array([1.0, np.nan], F)], {}, 1),
    ("TopK", "breadth-seq", [X], {"k": 2}, 2),
    ("Slice", "detection", [X], {"starts": [0, 1, 0], "ends": [-1, 3, -1]}, 1),  # one dim
]


@pytest.mark.parametrize("op_type, branch, inputs, args, n_out", CASES,
                         ids=[c[0] for c in CASES])
def test_export_agrees_with_onnx_runtime(op_type, branch, inputs, args, n_out):
    if registry.get_schema(op_type) is None:
        pytest.skip(f"needs {op_type}, pending on branch {branch}")
    names = [f"in{i}" for i in range(len(inputs))]
    outputs = [f"out{i}" for i in range(n_out)]
    net = core.Net("one_op")
    net.Proto().op.extend([core.CreateOperator(op_type, names, outputs, **args)])
    net.Proto().external_output.append(outputs[0])
    feeds = dict(zip(names, inputs))
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net)
    want = workspace.FetchBlob(outputs[0])
    info = {n: (onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()}
    model = frontend.caffe2_net_to_onnx_model(net.Proto(), None, info)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run([model.graph.output[0].name], feeds)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
