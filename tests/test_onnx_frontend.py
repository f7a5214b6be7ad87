"""Caffe2 -> ONNX: exports checked by onnx's checker and run in ONNX Runtime.

ONNX Runtime is the independent reference: every export must give what
caffe2lite gives for the Caffe2 net (1e-5 relative to the output's scale).
The corpus nets (../shared/nets) are the two trained nets, the model-zoo
classifiers with param_init weights and Glow's nets; small nets built here
cover each mapping's Caffe2 quirks (legacy broadcast, NHWC, legacy_pad,
FC's axis, Concat's split_info, in-place ops, the segment sums), a few of them
against NumPy written from Caffe2's documented semantics.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from test_real_nets_run import CASES, _image, _init_net  # noqa: E402

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.onnx import frontend  # noqa: E402
from caffe2lite.onnx.backend import Caffe2Backend  # noqa: E402
from caffe2lite.onnx.error import ConversionError, Unsupported  # noqa: E402
from caffe2lite.protoio import load_net  # noqa: E402
from caffe2lite.runtime.registry import missing_operators  # noqa: E402

F = np.float32


def _value_info(feeds):
    return {name: (onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for name, v in feeds.items()}


def _caffe2_outputs(init, predict, feeds):
    workspace.ResetWorkspace()
    if init is not None:
        workspace.RunNetOnce(init)
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(predict)
    return {name: workspace.FetchBlob(name) for name in predict.external_output}


def _ort_outputs(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def assert_close(got, want, what=""):
    want = np.asarray(want)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def check_export(predict, init, feeds, **kwargs):
    """Export, check, run in ONNX Runtime; compare with caffe2lite. Returns the model."""
    model = frontend.caffe2_net_to_onnx_model(predict, init, _value_info(feeds), **kwargs)
    onnx.checker.check_model(model, full_check=True)
    want = _caffe2_outputs(init, predict, feeds)
    got = _ort_outputs(model, feeds)
    # graph outputs follow external_output (a blob that is also an input is renamed)
    onnx_names = [o.name for o in model.graph.output]
    assert len(onnx_names) == len(want)
    for onnx_name, (name, value) in zip(onnx_names, want.items()):
        assert got[onnx_name].shape == value.shape, name
        assert_close(got[onnx_name], value, name)
    return model


# -- the corpus --------------------------------------------------------------------------
# Inputs that keep the suite quick: AlexNet's FC6 is sized by the image (a 99 x 99 image makes
# it 1024 x 4096 instead of 9216 x 4096); ResNet-50 at batch 1.
SMALLER_FEEDS = {"alexnet": {"data": _image((1, 3, 99, 99))},
                 "resnet50": {"gpu_0/data": _image((1, 3, 224, 224))}}
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_corpus_net_exports_and_agrees_with_onnx_runtime(nets_dir, case_name):
    case = CASES[case_name]
    path = nets_dir / case.predict
    if not path.exists():
        pytest.skip(f"{case.predict} is not in {nets_dir}")
    predict = load_net(path)
    missing = missing_operators(predict)
    if missing:
        pytest.skip(f"caffe2lite has no {', '.join(missing)} yet")
    feeds = SMALLER_FEEDS.get(case_name, case.feeds)
    init = _init_net(nets_dir, dataclasses.replace(case, feeds=feeds), predict)
    # also compare the logits under a classifier's softmax, which saturates on random weights
    last = predict.op[-1]
    if last.type == "Softmax":
        predict.external_output.append(last.input[0])
    check_export(predict, init, feeds)


ROUND_TRIPS = ["traffic_light_squeezenet", "mnist_lenet", "glow_fc", "glow_lengths_sum",
               "glow_8bits_rowwise_sls", "glow_fused_8bit_weighted_sls", "glow_sparse_to_dense"]


@pytest.mark.parametrize("case_name", ROUND_TRIPS)
def test_corpus_net_round_trips_through_onnx(nets_dir, case_name):
    """Caffe2 -> ONNX -> Caffe2 gives the same outputs (the trained nets, Glow's)."""
    case = CASES[case_name]
    if not (nets_dir / case.predict).exists():
        pytest.skip(f"{case.predict} is not in {nets_dir}")
    predict = load_net(nets_dir / case.predict)
    init = load_net(nets_dir / case.init) if case.init else None
    model = frontend.caffe2_net_to_onnx_model(predict, init, _value_info(case.feeds))
    init2, predict2 = Caffe2Backend.onnx_graph_to_caffe2_net(model)
    want = _caffe2_outputs(init, predict, case.feeds)
    got = _caffe2_outputs(init2, predict2, case.feeds)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-7)


# -- small nets, one mapping each ---------------------------------------------------------
def _run_case(build, feeds, params=None, **kwargs):
    init = core.Net("init")
    for name, value in (params or {}).items():
        init.Const(value, name)
    net = core.Net("net")
    build(net)
    return check_export(net.Proto(), init.Proto() if params else None, feeds, **kwargs)


def test_conv_pool_legacy_pads_and_nhwc():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 9)).astype(F)
    params = {"w": rng.standard_normal((4, 3, 3, 3)).astype(F), "b": np.arange(4, dtype=F),
              "w_nhwc": rng.standard_normal((4, 3, 3, 3)).astype(F)}

    def build(net):
        net.Conv(["x", "w", "b"], "c_same", kernel=3, stride=2, legacy_pad=2)
        net.Conv(["x", "w", "b"], "c_valid", kernel=3, legacy_pad=1, dilation=2)
        net.Conv(["x", "w", "b"], "c_pads", kernels=[3, 3], pads=[0, 1, 2, 1], group=1)
        net.MaxPool("x", "p_caffe", kernel=3, stride=2, pad=1, legacy_pad=3)
        net.AveragePool("x", "p_avg", kernel=2, stride=2, pads=[1, 0, 0, 1])
        net.AveragePool("x", "p_global", global_pooling=1)
        net.LpPool("x", "p_lp", kernel=2, stride=1, p=2.0)
        net.NCHW2NHWC("x", "x_nhwc")
        net.Conv(["x_nhwc", "w_nhwc", "b"], "c_nhwc", kernel=3, order="NHWC", pad=1)
        net.MaxPool("x_nhwc", "p_nhwc", kernel=2, stride=2, order="NHWC")
        net.Proto().external_output.extend(
            ["c_same", "c_valid", "c_pads", "p_caffe", "p_avg", "p_global", "p_lp", "c_nhwc",
             "p_nhwc"])

    _run_case(build, {"x": x}, params)


def test_conv_transpose_batch_norm_lrn_fc_softmax():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 5)).astype(F)
    params = {"wt": rng.standard_normal((4, 2, 3, 3)).astype(F), "bt": np.ones(2, F),
              "scale": rng.random(4, F) + 0.5, "bias": rng.random(4, F),
              "mean": rng.random(4, F), "var": rng.random(4, F) + 0.1,
              "fc_w": rng.standard_normal((3, 20)).astype(F), "fc_b": np.zeros(3, F)}

    def build(net):
        net.ConvTranspose(["x", "wt", "bt"], "ct", kernel=3, stride=2, pads=[1, 1, 0, 0],
                          adjs=[1, 0])
        net.SpatialBN(["x", "scale", "bias", "mean", "var"], "bn", is_test=1, epsilon=1e-3)
        net.LRN("x", ["lrn", "lrn_scale"], size=3, alpha=1e-2, beta=0.75, bias=2.0)
        net.FC(["x", "fc_w", "fc_b"], "fc", axis=2)  # (2, 4) rows of 5*5 -> needs 25 cols
        net.Softmax("x", "soft", axis=1)
        net.Softmax("x", "soft3", axis=3)
        net.Proto().external_output.extend(["ct", "bn", "lrn", "soft", "soft3"])

    params["fc_w"] = rng.standard_normal((3, 25)).astype(F)

    def build_fc(net):
        build(net)
        net.Proto().external_output.append("fc")

    _run_case(build_fc, {"x": x}, params)


def test_legacy_broadcast_comparisons_and_math():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 4, 5)).astype(F)
    b = rng.standard_normal((3, 4)).astype(F)

    def build(net):
        net.Add(["a", "b"], "add_axis", broadcast=1, axis=1)
        net.Mul(["a", "b"], "mul_axis", broadcast=1, axis_str="C", order="NCHW")
        net.Sub(["a", "a"], "sub")
        net.LE(["a", "a2"], "le")
        net.NE(["a", "a2"], "ne")
        net.GE(["a", "a2"], "ge")
        net.Clip("a", "clip", min=-0.5, max=0.25)
        net.Pow("a2", "pow", exponent=2.0)
        net.Sqr("a", "sqr")
        net.Scale("a", "scaled", scale=3.0)
        net.Sum(["a", "a2", "sqr"], "sum")
        net.Sigmoid("a", "sig")
        net.Cast("a", "as_int", to="INT32")
        net.Proto().external_output.extend(
            ["add_axis", "mul_axis", "sub", "le", "ne", "ge", "clip", "pow", "sqr", "scaled",
             "sum", "sig", "as_int"])

    feeds = {"a": a, "b": b, "a2": rng.standard_normal(a.shape).astype(F)}
    model = _run_case(build, feeds)
    # NumPy, from Caffe2's legacy rule: B's dims start at axis 1 of A
    got = _ort_outputs(model, feeds)
    np.testing.assert_allclose(got["add_axis"], a + b[None, :, :, None], rtol=1e-6)
    # opset 9 still exports (LE / GE as negations there)
    _run_case(build, feeds, opset_version=9)


def test_shapes_concat_split_reshape_gather_and_in_place_ops():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 3)).astype(F)
    idx = np.array([[0, 2], [1, 1]], np.int64)

    def build(net):
        net.Concat(["x", "x"], ["cat", "cat_info"], axis=1)
        net.Concat(["x", "x"], ["stacked", "stack_info"], axis=0, add_axis=1)
        net.Split("x", ["s0", "s1", "s2"], axis=1, split=[1, 2, 3])
        net.Reshape("x", ["r", "old_shape"], shape=[0, -1])
        net.Transpose("x", "t", axes=[2, 0, 1])
        net.Flatten("x", "flat", axis=2)
        net.Gather(["x", "idx"], "g", axis=1)
        net.Shape("x", "shape")
        net.Relu("x", "x")             # in place: ONNX needs x_1 ...
        net.Add(["x", "t2"], "x")       # ... and x as the last version
        net.Proto().external_output.extend(
            ["cat", "cat_info", "stacked", "stack_info", "s0", "s1", "s2", "r", "old_shape",
             "t", "flat", "g", "shape", "x"])

    feeds = {"x": x, "idx": idx, "t2": rng.standard_normal(x.shape).astype(F)}
    model = _run_case(build, feeds)
    outputs = [o.name for o in model.graph.output]
    assert outputs.count("x") == 0 and "x_2" in outputs  # the input keeps its name
    assert [i.name for i in model.graph.input] == ["x", "idx", "t2"]


def test_segment_sums_against_numpy():
    """SparseLengths{Sum,Mean,WeightedSum} with empty bags, against NumPy."""
    rng = np.random.default_rng(4)
    table = rng.standard_normal((10, 3)).astype(F)
    ids = np.array([3, 0, 9, 9, 2, 5], np.int64)
    lengths = np.array([0, 2, 0, 3, 1, 0], np.int32)
    weights = rng.random(6, F)

    def build(net):
        net.SparseLengthsSum(["table", "ids", "lengths"], "sls")
        net.SparseLengthsMean(["table", "ids", "lengths"], "slm")
        net.SparseLengthsWeightedSum(["table", "weights", "ids", "lengths"], "slws")
        net.LengthsSum(["dense", "lengths"], "ls")
        net.Proto().external_output.extend(["sls", "slm", "slws", "ls"])

    feeds = {"ids": ids, "lengths": lengths, "weights": weights,
             "dense": rng.standard_normal((6, 2)).astype(F)}
    model = _run_case(build, feeds, {"table": table})
    got = _ort_outputs(model, feeds)
    bags = np.repeat(np.arange(len(lengths)), lengths)
    want = np.zeros((6, 3), F)
    np.add.at(want, bags, table[ids])
    np.testing.assert_allclose(got["sls"], want, rtol=1e-6)
    np.testing.assert_allclose(got["slm"], want / np.maximum(lengths, 1)[:, None], rtol=1e-6)


def test_segment_sums_need_opset_16():
    net = core.Net("sls")
    net.SparseLengthsSum(["table", "ids", "lengths"], "out")
    feeds = {"table": np.zeros((4, 2), F), "ids": np.zeros(3, np.int64),
             "lengths": np.array([3], np.int32)}
    with pytest.raises(Unsupported, match=r"op #0 SparseLengthsSum.*opset 16"):
        frontend.caffe2_net_to_onnx_model(net.Proto(), None, _value_info(feeds),
                                          opset_version=15)


def test_the_ops_caffe2lite_took_from_onnx_go_back():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4)).astype(F)

    def build(net):
        net.Trilu("x", "tri", upper=0, k=1)
        net.CumSum("x", "cum", axis=1, exclusive=1, reverse=1)
        net.Scatter(["x", "idx", "upd"], "scat", axis=0, reduction="add")
        net.GatherElements(["x", "idx"], "gath", axis=0)
        net.ScatterND(["x", "nd_idx", "nd_upd"], "scat_nd")
        net.GatherND(["x", "nd_idx"], "gath_nd")
        net.Einsum(["x", "x"], "gram", equation="ij,kj->ik")
        net.Hardmax("x", "hard", axis=0)
        net.BitShift(["bits", "shift"], "shifted", direction="LEFT")
        net.SoftmaxCrossEntropyLoss(["x", "labels"], ["sce", "log_prob"], reduction="sum")
        net.NegativeLogLikelihoodLoss(["log_prob", "labels"], "nll", ignore_index=2)
        net.RMSNormalization(["x", "scale"], "rms", axis=1)
        net.CumProd("x", "prod", axis=0, exclusive=1)
        net.Proto().external_output.extend(
            ["tri", "cum", "scat", "gath", "scat_nd", "gath_nd", "gram", "hard", "shifted",
             "sce", "log_prob", "nll", "rms", "prod"])

    feeds = {"x": x, "idx": rng.integers(-3, 3, (2, 4)).astype(np.int64),
             "upd": rng.standard_normal((2, 4)).astype(F),
             "nd_idx": np.array([[2], [0]], np.int64),
             "nd_upd": rng.standard_normal((2, 4)).astype(F),
             "bits": np.array([1, 2, 3], np.uint8), "shift": np.array([1, 7, 0], np.uint8),
             "labels": np.array([3, 2, 0], np.int64), "scale": rng.random(4).astype(F)}
    _run_case(build, feeds)
    with pytest.raises(Unsupported, match=r"op #0 Trilu.*from opset 14"):
        _run_case(build, feeds, opset_version=13)


def test_losses_gathers_and_scatters_export():
    rng = np.random.default_rng(9)
    probs = rng.random((4, 3)).astype(F) + 0.1
    feeds = {"logits": rng.standard_normal((4, 3)).astype(F), "probs": probs,
             "targets": (rng.random((4, 3)) > 0.5).astype(F),
             "label": np.array([2, 0, 1, 1], np.int32), "idx": np.array([[1, 0]], np.int64),
             "ids": np.array([5, 3, 5, 9, 3], np.int64), "rows": np.array([2, 0], np.int32),
             "slices": rng.standard_normal((2, 3)).astype(F), "w": np.array([0.5], F)}

    def build(net):
        net.AveragedLoss("logits", "avg")
        net.LabelCrossEntropy(["probs", "label"], "xent")
        net.SigmoidCrossEntropyWithLogits(["logits", "targets"], "sigmoid_xent")
        net.WeightedSum(["logits", "w", "probs", "w"], "wsum")
        net.BatchGather(["logits", "idx"], "batch_gathered")
        net.Copy("logits", "assigned")
        net.ScatterAssign(["assigned", "rows", "slices"], "assigned")
        net.Unique("ids", ["unique", "remapping"])
        net.Proto().external_output.extend(
            ["avg", "xent", "sigmoid_xent", "wsum", "batch_gathered", "assigned", "unique",
             "remapping"])

    _run_case(build, feeds)


def test_scaled_random_fills_export_as_random_ops():
    """At opset 21: ONNX Runtime 1.32 has no kernels for the random ops of opset 22."""
    net = core.Net("fills")
    net.XavierFill([], "xavier", shape=[64, 50])
    net.MSRAFill([], "msra", shape=[20, 30])
    net.UniformIntFill([], "ints", shape=[100], min=3, max=7)
    net.Proto().external_output.extend(["xavier", "msra", "ints"])
    model = frontend.caffe2_net_to_onnx_model(net.Proto(), None, {}, opset_version=21)
    xavier, msra, ints = _ort_outputs(model, {}).values()
    bound = np.sqrt(3 / 50)
    assert xavier.shape == (64, 50) and np.abs(xavier).max() <= bound and xavier.std() > 0
    assert msra.shape == (20, 30) and 0.5 < msra.std() / np.sqrt(2 / 20) < 1.5
    assert ints.dtype == np.int32 and ints.min() >= 3 and ints.max() <= 7


def test_resize_exports():
    def build(net):
        net.Resize("x", "up", mode="linear", scales=[1.0, 1.0, 2.0, 1.5])
        net.Resize("x", "down", mode="cubic", coordinate_transformation_mode="align_corners",
                   sizes=[3, 2], axes=[2, 3])
        net.Resize("x", "crop", mode="nearest", sizes=[1, 2, 3, 3],
                   coordinate_transformation_mode="tf_crop_and_resize",
                   roi=[0.0, 0.0, 0.2, 0.15, 1.0, 1.0, 0.9, 1.2], extrapolation_value=7.0)
        net.Proto().external_output.extend(["up", "down", "crop"])

    _run_case(build, {"x": np.random.default_rng(8).standard_normal((1, 2, 4, 6)).astype(F)})


def test_linear_quantization_exports():
    """At opset 27: ONNX Runtime 1.32 has no kernel for QuantizeLinear-28."""
    def build(net):
        net.QuantizeLinear(["x", "scale"], "q8", axis=1)
        net.DequantizeLinear(["q8", "scale"], "dq", axis=1)
        net.Proto().external_output.extend(["q8", "dq"])

    feeds = {"x": np.random.default_rng(7).standard_normal((3, 4)).astype(F),
             "scale": np.array([0.01, 0.02, 0.05, 0.1], F)}
    _run_case(build, feeds, opset_version=27)


def test_attention_exports_with_skipped_inputs():
    rng = np.random.default_rng(6)
    feeds = {"q": rng.standard_normal((1, 4, 3, 8)).astype(F),
             "k": rng.standard_normal((1, 2, 3, 8)).astype(F),
             "v": rng.standard_normal((1, 2, 3, 8)).astype(F),
             "pk": rng.standard_normal((1, 2, 2, 8)).astype(F),
             "pv": rng.standard_normal((1, 2, 2, 8)).astype(F)}

    def build(net):
        net.Attention(["q", "k", "v", "pk", "pv"], ["y", "present_k", "present_v"],
                      is_causal=1, optional_inputs=["past_key", "past_value"])
        net.Proto().external_output.extend(["y", "present_k", "present_v"])

    model = _run_case(build, feeds)
    assert list(model.graph.node[0].input) == ["q", "k", "v", "", "pk", "pv"]


def test_fills_in_a_predict_net():
    def build(net):
        net.ConstantFill([], "c", shape=[2, 3], value=1.5)
        net.ConstantFill("x", "c_like", value=2.0)
        net.GivenTensorIntFill([], "given", shape=[3], values=[4, 5, 6])
        net.Add(["x", "c_like"], "y")
        net.Proto().external_output.extend(["c", "given", "y"])

    _run_case(build, {"x": np.ones((2, 2), F)})


# -- errors ------------------------------------------------------------------------------
def _unmappable_net():
    net = core.Net("mixed")
    net.Relu("x", "a")
    net.SoftmaxWithLoss(["a", "label"], ["p", "loss"])
    net.SumReduceLike(["p", "a"], "same")
    net.SoftmaxWithLoss(["same", "label"], ["p2", "loss2"])
    net.LabelCrossEntropy(["p2", "label"], "xent")  # mapped: the net mixes both kinds
    net.Proto().external_output.extend(["loss", "xent"])
    return net.Proto()


def test_unmapped_ops_are_listed_together_with_positions():
    feeds = {"x": (1, (2, 3)), "label": (6, (2,))}
    with pytest.raises(Unsupported) as e:
        frontend.caffe2_net_to_onnx_model(_unmappable_net(), None, feeds)
    message = str(e.value)
    assert "3 op(s)" in message
    assert "SoftmaxWithLoss (ops #1, #3); SumReduceLike (op #2)" in message


def test_custom_ops_when_asked_round_trip_through_the_backend():
    net = _unmappable_net()
    feeds = {"x": np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], F),
             "label": np.array([2, 0], np.int32)}
    model = frontend.caffe2_net_to_onnx_model(net, None, _value_info(feeds),
                                              allow_custom_ops=True)
    domains = {n.domain for n in model.graph.node}
    assert domains == {"", frontend.CUSTOM_DOMAIN}
    _, predict = Caffe2Backend.onnx_graph_to_caffe2_net(model)
    want = _caffe2_outputs(None, net, feeds)
    got = _caffe2_outputs(None, predict, feeds)
    for name in ("loss", "xent"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


def test_value_info_errors_name_the_blob():
    net = core.Net("fc")
    net.FC(["x", "w", "b"], "y")
    init = core.Net("init")
    init.Const(np.ones((4, 3), F), "w")
    init.Const(np.zeros(4, F), "b")
    with pytest.raises(ConversionError, match=r"data input\(s\) x"):
        frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(), {})
    with pytest.raises(ConversionError, match=r"'y' is FLOAT \(2, 4\) by the net's ops"):
        frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(),
                                          {"x": (1, (2, 3)), "y": (1, (2, 5))})
    with pytest.raises(ConversionError, match="not \\(onnx element type, shape\\)"):
        frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(), {"x": "float"})
    with pytest.raises(Unsupported, match="opset_version 8"):
        frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(), {"x": (1, (2, 3))},
                                          opset_version=8)


def test_a_blob_value_info_names_is_an_input_even_if_the_init_net_fills_it():
    """Caffe2's rule: value_info names the data inputs; their fills are placeholders."""
    net = core.Net("fc")
    net.FC(["x", "w", "b"], "y")
    init = core.Net("init")
    init.Const(np.ones((4, 3), F), "w")
    init.Const(np.zeros(4, F), "b")
    model = frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(),
                                              {"x": (1, (2, 3)), "w": (1, (4, 3))})
    assert [i.name for i in model.graph.input] == ["x", "w"]
    assert [t.name for t in model.graph.initializer] == ["b"]


def test_placeholder_fill_of_the_data_input_is_dropped():
    net = core.Net("relu")
    net.Relu("data", "y")
    net.Proto().external_input.append("data")
    init = core.Net("init")
    init.ConstantFill([], "data", shape=[1, 3], value=0.0)  # the zoo's placeholder
    model = frontend.caffe2_net_to_onnx_model(net.Proto(), init.Proto(), {"data": (1, (2, 3))})
    assert [i.name for i in model.graph.input] == ["data"]
    assert not model.graph.initializer
