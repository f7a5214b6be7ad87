"""ModelHelper and ExtractPredictorNet, as Caffe2's model_helper documents them."""

import logging

import numpy as np
import pytest
from placeholder_ops import missing

from caffe2lite import brew, core, model_helper, workspace
from caffe2lite.modeling import initializers
from caffe2lite.modeling.parameter_info import ParameterInfo, ParameterTags
from caffe2lite.modeling.parameter_sharing import ParameterSharing
from caffe2lite.optimizer import SgdOptimizer
from caffe2lite.optimizer_context import UseOptimizer


def test_defaults_and_nets():
    model = model_helper.ModelHelper()
    assert model.name == "model" and model.init_params
    # net names are made unique per process, as in Caffe2 ("model", "model_1", ...)
    assert model.net.Name().startswith("model")
    assert model.param_init_net.Name().startswith("model_init")
    assert model.arg_scope == {"order": "NCHW", "use_cudnn": True,
                               "cudnn_exhaustive_search": False}
    other = model_helper.ModelHelper(name="m", arg_scope={"order": "NHWC"})
    assert other.arg_scope["order"] == "NHWC" and other.get_name() == "m"
    assert model.Proto() is model.net.Proto() and model.InitProto() is model.param_init_net.Proto()


def test_create_param_scopes_tags_and_reuse():
    model = model_helper.ModelHelper(name="p")
    init = initializers.Initializer("GaussianFill", std=0.5)
    with core.NameScope("block"):
        w = model.create_param("w", [3, 2], init, tags=ParameterTags.WEIGHT)
        b = model.create_param("b", [3], initializers.Initializer("ConstantFill"),
                               tags=[ParameterTags.BIAS])
        rm = model.create_param("rm", [3], initializers.Initializer("ConstantFill", value=1.0),
                                tags=ParameterTags.COMPUTED_PARAM)
        assert model.create_param("w", [3, 2], init) is w  # same name: the same parameter
    assert (str(w), str(b), str(rm)) == ("block/w", "block/b", "block/rm")
    assert model.params == [w, b] and model.weights == [w] and model.biases == [b]
    assert model.GetComputedParams() == [rm] and model.GetAllParams() == [w, b, rm]
    op = model.param_init_net.Proto().op[0]
    assert (op.type, list(op.output)) == ("GaussianFill", ["block/w"])
    assert {a.name: (list(a.ints) or a.f) for a in op.arg} == {"shape": [3, 2], "std": 0.5}
    info = model.get_param_info(w)
    assert isinstance(info, ParameterInfo) and info.shape == [3, 2] and info.name == "block/w"
    with pytest.raises(AssertionError):
        model.create_param("block/w", [4], init)  # BlobReference-free name, other shape
    with pytest.raises(TypeError):
        model.create_param(3, [1], init)


def test_get_params_by_name_scope():
    model = model_helper.ModelHelper()
    for scope_name in ("a", "a/b", "c"):
        with core.NameScope(scope_name):
            brew.fc(model, "x", "fc", 2, 2)
    assert [str(p) for p in model.GetParams("a")] == ["a/fc_w", "a/fc_b", "a/b/fc_w", "a/b/fc_b"]
    assert [str(p) for p in model.GetParams("a/b/")] == ["a/b/fc_w", "a/b/fc_b"]
    with core.NameScope("c"):
        assert [str(p) for p in model.GetParams()] == ["c/fc_w", "c/fc_b"]
    assert len(model.GetParams("")) == 6


def test_parameter_sharing_resolves_names():
    model = model_helper.ModelHelper()
    with core.NameScope("global"):
        with ParameterSharing({"scope_b": "scope_a"}):
            with core.NameScope("scope_b"):
                w_b = brew.fc(model, "x", "fc", 2, 2)
            with core.NameScope("scope_a"):
                brew.fc(model, "x", "fc", 2, 2)
    # both FCs read global/scope_a/fc_w, made once
    assert [str(p) for p in model.params] == ["global/scope_a/fc_w", "global/scope_a/fc_b"]
    fc_ops = [op for op in model.net.Proto().op if op.type == "FC"]
    assert [list(op.input)[1] for op in fc_ops] == ["global/scope_a/fc_w"] * 2
    assert str(w_b) == "global/scope_b/fc"


def test_add_gradient_operators_fills_param_info_once():
    model = model_helper.ModelHelper()
    fc = brew.fc(model, "x", "fc", 3, 1)
    loss = model.AveragedLoss(fc, "loss")
    with pytest.raises(RuntimeError, match="AddGradientOperators first"):
        model.GetOptimizationParamInfo()
    grad_map = model.AddGradientOperators([loss])
    assert str(grad_map["fc_w"]) == "fc_w_grad"
    infos = model.GetOptimizationParamInfo()
    assert [(i.name, str(i.grad)) for i in infos] == [("fc_w", "fc_w_grad"),
                                                     ("fc_b", "fc_b_grad")]
    assert [i.name for i in model.GetOptimizationParamInfo([model.params[1]])] == ["fc_b"]
    with pytest.raises(RuntimeError, match="twice"):
        model.AddGradientOperators([loss])


def test_validate_refuses_duplicate_params():
    model = model_helper.ModelHelper()
    w = core.BlobReference("w")
    model.AddParameter(w)
    model.AddParameter(w)
    assert model._Validate() == ["w"]
    with pytest.raises(AssertionError, match="Duplicate params"):
        model.Validate()


def test_skip_sparse_optim_leaves_sparse_gradients_out():
    model = model_helper.ModelHelper(skip_sparse_optim=True)
    emb = model.create_param("emb", [10, 2], initializers.Initializer("ConstantFill"))
    dense = brew.fc(model, model.net.Gather([emb, "ids"], "rows"), "fc", 2, 1)
    model.AddGradientOperators([model.AveragedLoss(dense, "loss")])
    assert isinstance(model.param_to_grad[emb], core.GradientSlice)
    assert [i.name for i in model.GetOptimizationParamInfo()] == ["fc_w", "fc_b"]


def test_attribute_sugar_adds_ops_and_knows_its_list(caplog):
    model = model_helper.ModelHelper()
    y = model.Softmax("x", "y")  # on Caffe2's list of ops needing no parameters
    with caplog.at_level(logging.WARNING):
        model.Exp(y, "z")  # registered, but not on the list: a warning only
    assert "does not recognize: Exp" in caplog.text
    assert [op.type for op in model.net.Proto().op] == ["Softmax", "Exp"]
    strict = model_helper.ModelHelper(allow_not_known_ops=False)
    with pytest.raises(AttributeError, match="not known to be safe"):
        strict.Exp("x", "z")
    with pytest.raises(AttributeError, match="not a registered operator"):
        model.NoSuchOperator("x")
    assert "Softmax" in dir(model)


def test_param_model_shares_parameters():
    train = model_helper.ModelHelper(name="train")
    brew.fc(train, "x", "fc", 2, 2)
    test = model_helper.ModelHelper(name="test", param_model=train, init_params=False)
    brew.fc(test, "x", "fc", 2, 2)
    assert test.params is train.params and test.param_init_net is train.param_init_net
    assert len(train.param_init_net.Proto().op) == 2  # the test model made no new init ops


def test_optimizer_context_sets_param_optimizers():
    model = model_helper.ModelHelper()
    weights_opt, default_opt = SgdOptimizer(0.1), SgdOptimizer(0.2)
    with UseOptimizer({"WEIGHT": weights_opt, "DEFAULT": default_opt}):
        brew.fc(model, "x", "fc", 2, 2)
    assert model.get_param_info(model.params[0]).optimizer is weights_opt
    assert model.get_param_info(model.params[1]).optimizer is default_opt
    plain = model_helper.ModelHelper()
    brew.fc(plain, "x", "fc", 2, 2)
    assert plain.get_param_info(plain.params[0]).optimizer is None


def test_complete_net_round_trip():
    model = model_helper.ModelHelper(name="whole")
    brew.relu(model, brew.fc(model, "x", "fc", 2, 2), "r")
    complete = model.GetCompleteNet()
    assert [op.type for op in complete.Proto().op] == ["XavierFill", "ConstantFill", "FC", "Relu"]
    model.ConstructInitTrainNetfromNet(complete)
    assert [op.type for op in model.param_init_net.Proto().op] == ["XavierFill", "ConstantFill"]
    assert [op.type for op in model.net.Proto().op] == ["FC", "Relu"]
    assert set(model.net.Proto().external_input) == {"x", "fc_w", "fc_b"}


def test_extract_predictor_net_keeps_the_forward_ops():
    model = model_helper.ModelHelper(name="train")
    fc = brew.fc(model, "data", "fc", 4, 3)
    pred = brew.softmax(model, fc, "pred")
    loss = model.AveragedLoss(model.LabelCrossEntropy([pred, "label"], "xent"), "loss")
    model.AddGradientOperators([loss])
    predict_net, params = model_helper.ExtractPredictorNet(
        model.net.Proto(), ["data"], [pred], renames={"data": "input"})
    proto = predict_net.Proto()
    assert [op.type for op in proto.op] == ["FC", "Softmax"]
    assert list(proto.op[0].input) == ["input", "fc_w", "fc_b"]
    assert sorted(params) == ["fc_b", "fc_w"]
    assert set(proto.external_input) == {"input", "fc_w", "fc_b"}
    assert list(proto.external_output) == ["pred"]
    # the extracted net computes what the training net's forward part computes
    workspace.RunNetOnce(model.param_init_net)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    workspace.FeedBlob("input", x)
    workspace.RunNetOnce(predict_net)
    w, b = workspace.FetchBlob("fc_w"), workspace.FetchBlob("fc_b")
    logits = x @ w.T + b
    want = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(workspace.FetchBlob("pred"), want / want.sum(1, keepdims=True),
                               rtol=1e-5)


def test_extract_predictor_net_refuses_training_mode_ops():
    model = model_helper.ModelHelper()
    brew.spatial_bn(model, "data", "bn", 3, is_test=False)
    with pytest.raises(Exception, match="is_test=0"):
        model_helper.ExtractPredictorNet(model.net.Proto(), ["data"], ["bn"])
    with pytest.raises(Exception, match="No ops with input"):
        model_helper.ExtractPredictorNet(model.net.Proto(), ["nothing"], ["bn"])


def test_tensor_protos_db_input_builds_the_reader_and_the_op():
    if missing("CreateDB", "TensorProtosDBInput"):
        pytest.skip("CreateDB / TensorProtosDBInput come with the modeltools branch")
    model = model_helper.ModelHelper()
    data, label = model.TensorProtosDBInput([], ["data", "label"], batch_size=4, db="a.db",
                                            db_type="minidb")
    create = model.param_init_net.Proto().op[0]
    assert (create.type, list(create.output)) == ("CreateDB", ["dbreader_a.db"])
    read = model.net.Proto().op[0]
    assert read.type == "TensorProtosDBInput" and list(read.output) == ["data", "label"]
    with pytest.raises(AssertionError, match="cannot pass reader"):
        model.TensorProtosDBInput(["reader"], ["d"], batch_size=1, db="a", db_type="minidb")
