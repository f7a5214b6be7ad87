"""workspace.Predictor: init net once, predict net per run, in a workspace of its own."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError

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
    with pytest.raises(EnforceError, match=r"4 inputs given, but the net takes 1: its data "
                                           r"inputs \['data'\]"):
        p.run([x, W, B, x])
    with pytest.raises(EnforceError, match=r"unknown: \['image'\].*missing: \['data'\]"):
        p.run({"image": x})
    with pytest.raises(EnforceError, match=r"0 inputs given, but the net takes 1: its data "
                                           r"inputs \['data'\]"):
        p.run([])  # Caffe2 ran on whatever the previous call fed


def test_run_never_writes_a_parameter():
    """Caffe2 fed the i-th array into the i-th external input, weights included:
    run([x, x]) replaced W for good.  Here every refused call leaves W as it was."""
    init, predict = _nets()
    p = workspace.Predictor(init, predict)
    x = np.array([[1.0, 2.0]], np.float32)
    (before,) = p.run([x])
    with pytest.raises(EnforceError, match=r"2 inputs given"):
        p.run([x, x])
    with pytest.raises(EnforceError, match=r"\['W'\] are parameters set by the init net"):
        p.run({"data": x, "W": np.zeros_like(W)})
    with pytest.raises(EnforceError, match="only numpy array or string"):
        p.run([[1.0, 2.0]])  # a value feed_blob refuses: the input keeps its last value
    np.testing.assert_array_equal(p.workspace.fetch_blob("W"), W)
    (after,) = p.run([x])
    np.testing.assert_allclose(after, _reference(x), rtol=1e-6)
    np.testing.assert_array_equal(after, before)


def test_data_inputs_skip_parameters_wherever_they_are_listed():
    """Inputs are the external inputs the init net leaves unset, in net order, even
    between parameters (Glow's two-tower test nets list them that way)."""
    init, predict = _nets()
    predict.Proto().external_input[:] = ["W", "data", "b"]
    p = workspace.Predictor(init, predict)
    assert p.input_names == ["data"]
    x = np.array([[0.5, -1.0]], np.float32)
    np.testing.assert_allclose(p.run([x])[0], _reference(x), rtol=1e-6)


def test_the_model_zoo_input_placeholder_is_an_input():
    """The zoo's SqueezeNet init net ends with ``ConstantFill data shape=[1]`` (and
    mobile_exporter writes a [1, 1] GivenTensorFill per input), its predict net
    lists ``data`` first: a one-element blob ahead of the parameters is the input
    it stands for; a one-element parameter after them stays a parameter."""
    init, predict = _nets()
    init.ConstantFill([], "data", shape=[1])
    init.GivenTensorFill([], "scale", shape=[1], values=[3.0])
    predict.Proto().external_input[:] = ["data", "W", "b", "scale"]
    p = workspace.Predictor(init, predict)
    assert p.input_names == ["data"]
    x = np.array([[1.0, 1.0]], np.float32)
    np.testing.assert_allclose(p.run({"data": x})[0], _reference(x), rtol=1e-6)
    with pytest.raises(EnforceError, match=r"\['scale'\] are parameters"):
        p.run({"data": x, "scale": np.ones(1, np.float32)})


def test_traffic_light_keeps_its_weights_through_a_mistaken_call(nets_dir):
    """The issue's case: the model-zoo SqueezeNet of TrafficLight, whose init net also
    fills a one-element ``data`` placeholder."""
    from caffe2lite.protoio import load_net

    stem = nets_dir / "Miyuan2018__TrafficLight-Test__"
    p = workspace.Predictor(load_net(f"{stem}init_net.pb"), load_net(f"{stem}predict_net.pb"))
    assert p.input_names == ["data"]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    conv1_w = p.workspace.fetch_blob("conv1_w")
    (first,) = p.run([x])
    with pytest.raises(EnforceError, match=r"2 inputs given, but the net takes 1: its data "
                                           r"inputs \['data'\]"):
        p.run([x, x])
    np.testing.assert_array_equal(p.workspace.fetch_blob("conv1_w"), conv1_w)
    np.testing.assert_array_equal(p.run([x])[0], first)
