"""workspace.Predictor: init net once, predict net per run, in a workspace of its own."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, EnforceError

W = np.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]], np.float32)  # FC: 2 -> 3
B = np.array([0.1, 0.2, -0.3], np.float32)


def _nets():
    init = core.Net("predictor_init")
    init.GivenTensorFill([], "W", shape=list(W.shape), values=W.reshape(-1).tolist())
    init.GivenTensorFill([], "b", shape=list(B.shape), values=B.tolist())
    predict = core.Net("predictor_predict")
    predict.AddExternalInput("data", "W", "b")
    y = predict.Relu(predict.FC(["data", "W", "b"], "fc"), "prob")
    predict.AddExternalOutput(y)
    return init, predict


def _reference(x):
    return np.maximum(x @ W.T + B, 0)


def test_run_with_a_list_or_a_dict():
    init, predict = _nets()
    p = workspace.Predictor(init.Proto().SerializeToString(), predict)  # bytes or objects
    x = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
    (out,) = p.run([x])
    np.testing.assert_allclose(out, _reference(x), rtol=1e-6)
    (again,) = p.run({"data": 2 * x})
    np.testing.assert_allclose(again, _reference(2 * x), rtol=1e-6)
    assert workspace.Blobs() == []  # the caller's workspace is untouched


def test_bad_inputs_say_what_the_net_takes():
    init, predict = _nets()
    p = workspace.Predictor(init, predict)
    x = np.ones((1, 2), np.float32)
    with pytest.raises(EnforceError, match=r"4 inputs given, but the net declares only 3"):
        p.run([x, W, B, x])
    with pytest.raises(EnforceError, match=r"input blobs \['image'\] do not exist.*"
                                           r"\['data', 'W', 'b'\]"):
        p.run({"image": x})
    fresh = workspace.Predictor(init, predict)
    with pytest.raises(BlobNotFound, match="'data'\\) is empty"):
        fresh.run([])  # nothing fed: the net says which input is missing
