"""caffe2lite.modeling: initializers, parameter sharing and the net modifiers, as Caffe2's
modeling/*_test.py describe them (the modifiers' nets; running them where their operators
exist)."""

import numpy as np
import pytest
from placeholder_ops import missing, placeholder_ops

from caffe2lite import brew, core, model_helper, workspace
from caffe2lite.modeling import initializers
from caffe2lite.modeling.compute_histogram_for_blobs import ComputeHistogramForBlobs
from caffe2lite.modeling.compute_norm_for_blobs import ComputeNormForBlobs
from caffe2lite.modeling.compute_statistics_for_blobs import ComputeStatisticsForBlobs
from caffe2lite.modeling.get_entry_from_blobs import GetEntryFromBlobs
from caffe2lite.modeling.gradient_clipping import GradientClipping
from caffe2lite.modeling.net_modifier import NetModifier
from caffe2lite.modeling.parameter_sharing import ParameterSharing, parameter_sharing_context


def test_initializers():
    model = model_helper.ModelHelper(name="init")
    brew.fc(model, "x", "a", 2, 3, WeightInitializer=initializers.Initializer,
            weight_init=("GaussianFill", {"std": 0.5}))
    brew.fc(model, "x", "c", 2, 3, WeightInitializer=initializers.PseudoFP16Initializer)
    brew.fc(model, "x", "d", 2, 3, WeightInitializer=initializers.ReversePseudoFP16Initializer)
    ops = [(op.type, list(op.input), list(op.output)) for op in model.param_init_net.Proto().op]
    assert ("GaussianFill", [], ["a_w"]) in ops
    external = initializers.ExternalInitializer().create_param("e", model.param_init_net, [2])
    assert str(external.blob) == "e" and external.shape == [2]
    assert ("XavierFill", [], ["c_w_fp32"]) in ops and ("FloatToHalf", ["c_w_fp32"], ["c_w"]) in ops
    assert ("XavierFill", [], ["d_w"]) in ops and ("FloatToHalf", ["d_w"], ["d_w_fp16"]) in ops
    info_c = model.get_param_info(core.BlobReference("c_w"))
    assert info_c.blob_copy == {core.DataType.FLOAT: "c_w_fp32"}
    info_d = model.get_param_info(core.BlobReference("d_w"))
    assert info_d.blob_copy == {core.DataType.FLOAT16: "d_w_fp16"}
    workspace.RunNetOnce(model.param_init_net)
    assert workspace.FetchBlob("c_w").dtype == np.float16
    init = initializers.Initializer("ConstantFill")
    with pytest.raises(Exception, match="overwrites are not allowed"):
        init.update("GaussianFill", {})
    fresh = initializers.Initializer()
    fresh.update("GaussianFill", {"std": 2.0})
    assert (fresh.operator_name, fresh.operator_kwargs) == ("GaussianFill", {"std": 2.0})
    assert isinstance(initializers.update_initializer(None, None, ("ConstantFill", {})),
                      initializers.Initializer)


def test_parameter_sharing_nested_and_recursive():
    model = model_helper.ModelHelper()
    init = initializers.Initializer("ConstantFill")
    with ParameterSharing({"scope_b": "scope_a", "scope_c": "scope_b"}):
        for name in ("scope_c", "scope_b"):
            with core.NameScope(name):
                assert str(model.create_param("w", [1], init)) == "scope_a/w"
        with core.NameScope("scope_b"), core.NameScope("child"):
            assert str(model.create_param("w", [1], init)) == "scope_a/child/w"
        with ParameterSharing({"scope_a": ""}):
            with core.NameScope("scope_b"):
                assert str(model.create_param("v", [1], init)) == "v"
    with core.NameScope("scope_b"):
        assert str(model.create_param("w", [1], init)) == "scope_b/w"
    assert parameter_sharing_context._contexts == []
    with pytest.raises(AssertionError, match="is prefix of"):
        with ParameterSharing({"a": "a/b"}):
            pass


def test_net_modifier_is_abstract_and_callable():
    with pytest.raises(TypeError):
        NetModifier()

    class Recorder(NetModifier):
        def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                       modify_output_record=False):
            self.seen = (net, grad_map)

    rec = Recorder()
    rec("net", grad_map={"a": "b"})
    assert rec.seen == ("net", {"a": "b"})


def clipping_model():
    model = model_helper.ModelHelper(name="clip")
    fc = brew.fc(model, "x", "fc", 3, 2)
    model.AddGradientOperators([model.AveragedLoss(fc, "loss")])
    return model


@pytest.mark.parametrize("norm_type,p", [("l2_norm", 2), ("l1_norm", 1)])
@placeholder_ops("LpNorm")  # breadth-math's operator
def test_gradient_clipping_by_norm_net(norm_type, p):
    model = clipping_model()
    n_ops = len(model.net.Proto().op)
    GradientClipping(grad_clip_method="by_norm", clip_norm_type=norm_type, clip_threshold=0.5,
                     use_parameter_norm=True, compute_norm_ratio=True)(
        model.net, grad_map=model.param_to_grad)
    added = model.net.Proto().op[n_ops:]
    per_grad = ["LpNorm"] + (["Pow"] if p == 2 else [])
    per_param = per_grad * 2 + ["Div", "ClipTensorByScaling"]
    assert [op.type for op in added] == per_param * 2  # fc_w and fc_b
    clip = [op for op in added if op.type == "ClipTensorByScaling"][0]
    assert list(clip.output) == [clip.input[0]] and clip.input[0] in ("fc_w_grad", "fc_b_grad")
    assert len(clip.input) == 3 and {a.name: a.f for a in clip.arg}["threshold"] == 0.5
    assert {a.name: a.i for a in added[0].arg}["p"] == p


def test_gradient_clipping_by_value_runs():
    model = clipping_model()
    GradientClipping(grad_clip_method="by_value", clip_max=0.01, clip_min=-0.02,
                     blobs_to_include=["fc_w"])(model.net, grad_map=model.grad_map)
    assert [op.type for op in model.net.Proto().op][-1] == "Clip"
    workspace.FeedBlob("x", np.full((4, 3), 5.0, np.float32))
    workspace.RunNetOnce(model.param_init_net)
    workspace.RunNetOnce(model.net)
    grad = workspace.FetchBlob("fc_w_grad")
    assert grad.max() <= 0.01 and grad.min() >= -0.02 and np.any(grad == 0.01)
    with pytest.raises(Exception, match="not defined"):
        GradientClipping("by_value", blobs_to_include=["nope"])(model.net,
                                                                 grad_map=model.grad_map)
    with pytest.raises(AssertionError, match="has not been implemented"):
        GradientClipping("by_magic")


def test_gradient_clipping_with_real_lp_norm_when_present():
    if missing("LpNorm"):
        pytest.skip("LpNorm comes with the breadth-math branch")
    model = clipping_model()
    GradientClipping("by_norm", clip_threshold=1e-3)(model.net, grad_map=model.param_to_grad)
    workspace.FeedBlob("x", np.ones((4, 3), np.float32))
    workspace.RunNetOnce(model.param_init_net)
    workspace.RunNetOnce(model.net)
    assert np.linalg.norm(workspace.FetchBlob("fc_w_grad")) <= 1e-3 * (1 + 1e-5)


@placeholder_ops("Slice", "LpNorm", "Print")  # detection's / breadth-math's / breadth-seq's
def test_compute_norm_for_blobs_net():
    model = clipping_model()
    n_ops = len(model.net.Proto().op)
    modifier = ComputeNormForBlobs(["fc_w", "fc_b"], logging_frequency=10, p=1,
                                   compute_averaged_norm=True, row_index=1)
    modifier(model.net)
    added = model.net.Proto().op[n_ops:]
    assert [op.type for op in added] == ["Slice", "Cast", "LpNorm", "StopGradient", "Print"] * 2
    assert modifier.field_name_suffix() == "_averaged_l1_norm"
    norm = added[2]
    assert {a.name: a.i for a in norm.arg} == {"p": 1, "average": 1}
    assert norm.output[0].startswith("fc_w_row_1_averaged_l1_norm")
    with pytest.raises(Exception, match="not a valid row index"):
        ComputeNormForBlobs(["fc_w"], 1, row_index=-1)
    with pytest.raises(AssertionError, match="not defined"):
        ComputeNormForBlobs(["nope"], 1)(model.net)


@placeholder_ops("Print")
def test_compute_statistics_for_blobs_runs_summarize():
    model = clipping_model()
    ComputeStatisticsForBlobs(["fc_w"], logging_frequency=1)(model.net)
    types = [op.type for op in model.net.Proto().op]
    assert types[-3:] == ["Cast", "Summarize", "Print"]
    summary = model.net.Proto().op[-2].output[0]
    assert summary.startswith("fc_w_summary")
    model.net.Proto().op.pop()  # run without the placeholder Print
    workspace.FeedBlob("x", np.ones((2, 3), np.float32))
    workspace.RunNetOnce(model.param_init_net)
    workspace.RunNetOnce(model.net)
    w = workspace.FetchBlob("fc_w").astype(np.float64)
    np.testing.assert_allclose(workspace.FetchBlob(summary),
                               [w.min(), w.max(), w.mean(), w.std(ddof=1)], rtol=1e-5)


@placeholder_ops("NormalizeL1", "Print")
@pytest.mark.parametrize("accumulate", [False, True])
def test_compute_histogram_for_blobs_net(accumulate):
    model = clipping_model()
    modifier = ComputeHistogramForBlobs(["fc_w"], logging_frequency=5, num_buckets=4,
                                        lower_bound=-1.0, upper_bound=1.0,
                                        accumulate=accumulate)
    modifier(model.net)
    ops = model.net.Proto().op[-5:]
    assert [op.type for op in ops] == ["Cast", "AccumulateHistogram", "Cast", "NormalizeL1",
                                       "Print"]
    hist_in = ops[2].input[0]
    assert hist_in == ops[1].output[1 if accumulate else 0]
    assert modifier.field_name_suffix() == ("_acc_normalized_hist" if accumulate
                                            else "_curr_normalized_hist")
    with pytest.raises(AssertionError, match="num_buckets"):
        ComputeHistogramForBlobs(["fc_w"], 1, num_buckets=0)


@placeholder_ops("Slice", "Print")
@pytest.mark.parametrize("i2,last", [(1, "Slice"), (-1, "Copy")])
def test_get_entry_from_blobs_net(i2, last):
    model = clipping_model()
    modifier = GetEntryFromBlobs(["fc_w"], logging_frequency=2, i1=1, i2=i2)
    modifier(model.net)
    ops = model.net.Proto().op[-3:]
    assert [op.type for op in ops] == ["Slice", last, "Print"]
    assert modifier.field_name_suffix() == ("_1_1" if i2 == 1 else "_1_all")
    if not missing("Slice"):  # detection's operator: run it (without the Print)
        model.net.Proto().op.pop()
        workspace.FeedBlob("x", np.ones((2, 3), np.float32))
        workspace.RunNetOnce(model.param_init_net)
        workspace.RunNetOnce(model.net)
        w = workspace.FetchBlob("fc_w")
        expected = w[1:2, 1:2] if i2 == 1 else w[1:2, :]
        np.testing.assert_array_equal(workspace.FetchBlob(ops[1].output[0]), expected)
    with pytest.raises(ValueError, match="index is out of range"):
        GetEntryFromBlobs(["fc_w"], 1, i1=-1)(model.net)


@placeholder_ops("Print")
def test_modify_output_record_puts_the_results_in_the_nets_output_record():
    # Caffe2: with modify_output_record=True each result becomes a field
    # '<blob><field_name_suffix>' of the net's output record (a Struct made on the
    # first one), and its blob an external output.
    schema = pytest.importorskip("caffe2lite.schema")  # the modeltools branch's
    model = clipping_model()
    assert model.net.output_record() is None
    modifier = ComputeStatisticsForBlobs(["fc_w", "fc_b"], logging_frequency=1)
    modifier(model.net, modify_output_record=True)
    record = model.net.output_record()
    assert isinstance(record, schema.Struct)
    assert record.field_names() == ["fc_w_summary", "fc_b_summary"]
    blobs = [str(b) for b in record.field_blobs()]
    assert all(b in model.net.Proto().external_output for b in blobs)
    assert [op.output[0] for op in model.net.Proto().op if op.type == "Summarize"] == blobs
