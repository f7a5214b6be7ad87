"""brew: every helper Caffe2 registered builds Caffe2's ops and parameters (names, shapes,
fills), the nets run where their operators exist, and arg_scope / Register behave as in
Caffe2's brew_test."""

import numpy as np
import pytest
from placeholder_ops import missing, placeholder_ops

from caffe2lite import brew, core, model_helper, workspace
from caffe2lite.modeling.parameter_info import ParameterTags
from caffe2lite.proto import caffe2_pb2

# operators the helpers emit that come with other branches (breadth-math, breadth-seq,
# modeltools) or that caffe2lite does not have (Caffe2's experimental FC variants,
# GPU-only MaxPoolWithIndex, image / video readers)
ELSEWHERE = ("PackedFC", "FC_Decomp", "FC_Prune", "FC_Sparse", "MaxPoolWithIndex",
             "InstanceNorm", "GroupNorm", "Moments", "PRelu", "LeakyRelu", "ReduceSum",
             "ArgMin", "DepthSplit", "ImageInput", "VideoInput", "LayerNorm", "MatMul",
             "CreateDB", "TensorProtosDBInput", "SparseLengthsSum4BitRowwiseSparse")


def init_ops(model):
    """{output: (fill type, shape)} of the init net."""
    result = {}
    for op in model.param_init_net.Proto().op:
        shape = next((list(a.ints) for a in op.arg if a.name == "shape"), None)
        result[op.output[0]] = (op.type, shape)
    return result


def op_types(model):
    return [op.type for op in model.net.Proto().op]


def args_of(op):
    return {a.name: (a.s.decode() if a.HasField("s") else list(a.ints) or a.f or a.i)
            for a in op.arg}


def test_fc_parameters_tags_and_result():
    model = model_helper.ModelHelper()
    out = brew.fc(model, "x", "fc", dim_in=4, dim_out=3)
    assert str(out) == "fc" and op_types(model) == ["FC"]
    assert init_ops(model) == {"fc_w": ("XavierFill", [3, 4]), "fc_b": ("ConstantFill", [3])}
    assert model.params == ["fc_w", "fc_b"] and model.weights == ["fc_w"]
    assert model.biases == ["fc_b"]
    workspace.RunNetOnce(model.param_init_net)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    workspace.FeedBlob("x", x)
    workspace.RunNetOnce(model.net)
    w, b = workspace.FetchBlob("fc_w"), workspace.FetchBlob("fc_b")
    assert np.all(b == 0) and np.all(np.abs(w) <= np.sqrt(3 / 4) + 1e-6)  # Xavier bound
    np.testing.assert_allclose(workspace.FetchBlob("fc"), x @ w.T + b, rtol=1e-5)


def test_fc_initializer_options_and_freeze_bias():
    model = model_helper.ModelHelper()
    brew.fc(model, "x", "a", 2, 3, weight_init=("GaussianFill", {"std": 0.1}),
            bias_init=("ConstantFill", {"value": 0.5}))
    brew.fc(model, "x", "b", 2, 3, freeze_bias=True)
    # positional, with a third item Caffe2 ignored (only name and kwargs count)
    brew.fc(model, "x", "c", 2, 3, ("UniformFill", {"min": -1.0}, {"max": 9.0}),
            ("UniformFill", {"min": -1.0}, {"max": 9.0}))
    ops = {op.output[0]: op for op in model.param_init_net.Proto().op}
    assert ops["a_w"].type == "GaussianFill" and args_of(ops["a_w"])["std"] == pytest.approx(0.1)
    assert args_of(ops["a_b"])["value"] == 0.5
    assert ops["c_w"].type == ops["c_b"].type == "UniformFill"
    assert args_of(ops["c_w"])["min"] == -1.0 and "max" not in args_of(ops["c_w"])
    assert model.GetComputedParams() == ["b_b"] and "b_b" not in model.params
    external = model_helper.ModelHelper(init_params=False)
    brew.fc(external, "x", "fc", 2, 3)
    assert external.param_init_net.Proto().op == [] and external.params == ["fc_w", "fc_b"]


@pytest.mark.parametrize("order,weight_shape", [("NCHW", [8, 3, 5, 5]), ("NHWC", [8, 5, 5, 3])])
def test_conv_weight_layouts_and_run(order, weight_shape):
    model = model_helper.ModelHelper()
    brew.conv(model, "img", "conv", dim_in=3, dim_out=8, kernel=5, order=order, pad=2)
    assert init_ops(model) == {"conv_w": ("XavierFill", weight_shape),
                               "conv_b": ("ConstantFill", [8])}
    conv = model.net.Proto().op[0]
    assert conv.type == "Conv" and args_of(conv)["kernel"] == 5
    assert args_of(conv)["order"] == order
    workspace.RunNetOnce(model.param_init_net)
    shape = (2, 3, 7, 7) if order == "NCHW" else (2, 7, 7, 3)
    workspace.FeedBlob("img", np.ones(shape, np.float32))
    workspace.RunNetOnce(model.net)
    assert workspace.FetchBlob("conv").shape == ((2, 8, 7, 7) if order == "NCHW" else (2, 7, 7, 8))


def test_conv_variants():
    model = model_helper.ModelHelper()
    brew.conv(model, "x", "rect", 4, 6, kernel=[3, 1], no_bias=True)
    brew.conv_nd(model, "x", "nd", 4, 6, kernel=[3, 3, 3])
    brew.group_conv(model, "x", "grouped", 4, 6, kernel=3, group=2)
    brew.conv_transpose(model, "x", "up", 4, 2, kernel=2, stride=2)
    shapes = init_ops(model)
    assert shapes["rect_w"] == ("XavierFill", [6, 4, 3, 1]) and "rect_b" not in shapes
    assert shapes["nd_w"] == ("XavierFill", [6, 4, 3, 3, 3])
    assert shapes["grouped_w"] == ("XavierFill", [6, 2, 3, 3])
    assert shapes["up_w"] == ("XavierFill", [4, 2, 2, 2])
    rect, nd, grouped, up = model.net.Proto().op
    assert args_of(rect)["kernel_h"] == 3 and args_of(rect)["kernel_w"] == 1
    assert len(rect.input) == 2 and args_of(nd)["kernels"] == [3, 3, 3]
    assert args_of(grouped)["group"] == 2 and up.type == "ConvTranspose"
    assert rect.engine == "CUDNN"  # the model's arg_scope has use_cudnn=True, as in Caffe2
    with pytest.raises(ValueError, match="use_cudnn=False"):
        brew.conv(model, "x", "c", 4, 6, kernel=3, engine="CUDNN", use_cudnn=False)
    cudnn = brew.conv(model, "x", "c", 4, 6, kernel=3, use_cudnn=True)
    assert model.net.Proto().op[-1].engine == "CUDNN" and str(cudnn) == "c"


def test_group_conv_deprecated_splits_and_concats():
    with placeholder_ops("DepthSplit"):
        model = model_helper.ModelHelper()
        out = brew.group_conv_deprecated(model, "x", "g", 4, 6, kernel=3, group=2)
        assert str(out) == "g"
        assert op_types(model) == ["DepthSplit", "Conv", "Conv", "Concat"]
        assert init_ops(model)["g_gconv_1_w"] == ("XavierFill", [3, 2, 3, 3])
        with pytest.raises(ValueError, match="dim_out should be divisible"):
            brew.group_conv_deprecated(model, "x", "h", 4, 5, kernel=3, group=2)


def test_pooling_activation_and_small_helpers_run():
    model = model_helper.ModelHelper()
    x = brew.relu(model, "x", "r")
    brew.tanh(model, x, "t")
    brew.sigmoid(model, x, "s")
    brew.max_pool(model, x, "mp", kernel=2, stride=2)
    brew.average_pool(model, x, "ap", kernel=2, stride=2)
    brew.lrn(model, x, "lrn", size=3, alpha=1e-4, beta=0.75)
    brew.softmax(model, "logits", "sm")
    brew.dropout(model, x, "drop", ratio=0.5, is_test=True)  # use_cudnn from the model
    brew.concat(model, ["r", "t"], "cat", axis=1, order="NCHW")
    brew.sum(model, ["r", "t"], "summed")
    brew.sub(model, ["r", "t"], "diff")
    brew.transpose(model, "logits", "tr", axes=[1, 0])
    brew.batch_mat_mul(model, ["bm_a", "bm_b"], "bm")
    assert op_types(model) == ["Relu", "Tanh", "Sigmoid", "MaxPool", "AveragePool", "LRN",
                               "Softmax", "Dropout", "Concat", "Sum", "Sub", "Transpose",
                               "BatchMatMul"]
    ops = model.net.Proto().op
    assert list(ops[5].output) == ["lrn", "_lrn_scale"]
    assert list(ops[7].output) == ["drop", "_drop_mask"] and ops[7].engine == "CUDNN"
    assert list(ops[8].output) == ["cat", "_cat_concat_dims"] and "order" not in args_of(ops[8])
    brew.dropout(model, x, "drop2", use_cudnn=False, is_test=True)
    assert model.net.Proto().op[-1].engine == "DEFAULT"
    rng = np.random.default_rng(1)
    workspace.FeedBlob("x", rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    workspace.FeedBlob("logits", rng.standard_normal((2, 5)).astype(np.float32))
    workspace.FeedBlob("bm_a", rng.standard_normal((2, 2, 3)).astype(np.float32))
    workspace.FeedBlob("bm_b", rng.standard_normal((2, 3, 2)).astype(np.float32))
    workspace.RunNetOnce(model.net)
    r = np.maximum(workspace.FetchBlob("x"), 0)
    np.testing.assert_allclose(workspace.FetchBlob("s"), 1 / (1 + np.exp(-r)), rtol=1e-6)
    assert workspace.FetchBlob("mp").shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(workspace.FetchBlob("drop"), r)  # is_test: identity
    assert workspace.FetchBlob("cat").shape == (2, 6, 4, 4)
    np.testing.assert_allclose(workspace.FetchBlob("diff"), r - np.tanh(r), rtol=1e-6)


def test_spatial_bn_parameters_train_and_test():
    model = model_helper.ModelHelper()
    out = brew.spatial_bn(model, "x", "bn", 3, epsilon=1e-3, momentum=0.9)
    assert str(out) == "bn"
    assert {k: v for k, v in init_ops(model).items()} == {
        "bn_s": ("ConstantFill", [3]), "bn_b": ("ConstantFill", [3]),
        "bn_rm": ("ConstantFill", [3]), "bn_riv": ("ConstantFill", [3])}
    assert model.params == ["bn_s", "bn_b"] and model.GetComputedParams() == ["bn_rm", "bn_riv"]
    bn = model.net.Proto().op[0]
    assert list(bn.output) == ["bn", "bn_rm", "bn_riv", "bn_sm", "bn_siv"]
    test_model = model_helper.ModelHelper(param_model=model)
    brew.spatial_bn(test_model, "x", "bn", 3, is_test=True)
    assert list(test_model.net.Proto().op[0].output) == ["bn"]
    workspace.RunNetOnce(model.param_init_net)
    x = np.random.default_rng(2).standard_normal((4, 3, 2, 2)).astype(np.float32)
    workspace.FeedBlob("x", x)
    workspace.RunNetOnce(model.net)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(workspace.FetchBlob("bn"),
                               (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3),
                               rtol=1e-4, atol=1e-5)


@placeholder_ops(*ELSEWHERE)
def test_helpers_of_other_branches_operators_build_caffe2s_nets():
    model = model_helper.ModelHelper()
    brew.prelu(model, "x", "pr", num_channels=3)
    brew.leaky_relu(model, "x", "lr", alpha=0.2)
    brew.instance_norm(model, "x", "in", 3)
    brew.spatial_gn(model, "x", "gn", 6, group=2)
    normalized, mean, std = brew.layer_norm(model, "x", "ln", 4, axis=1, epsilon=1e-3)
    brew.moments_with_running_stats(model, "x", "mo", 3)
    brew.max_pool_with_index(model, "x", "mpi", kernel=2)
    brew.reduce_sum(model, "x", "rs", axes=[1])
    brew.arg_min(model, "x", "am")
    brew.mat_mul(model, ["a", "b"], "mm")
    brew.elementwise_linear(model, "x", "el", 4)
    brew.packed_fc(model, "x", "pfc", 4, 2)
    brew.fc_decomp(model, "x", "fd", 4, 2, rank_approx=3)
    brew.fc_prune(model, "x", "fp", 4, 2, need_compress_rate=True)
    brew.fc_sparse(model, "x", "fs", *map(core.BlobReference, ("wc", "iw", "jw", "bs")))
    brew.image_input(model, ["reader"], ["data", "label"], is_test=True)
    brew.video_input(model, ["reader"], ["clip", "vlabel"])
    brew.fused_8bit_rowwise_quantized_to_float(model, "q", "deq")
    brew.sparse_lengths_sum_4bit_rowwise_sparse(model, ["d", "i", "l", "m"], "sls4")
    brew.db_input(model, ["d1", "l1"], batch_size=8, db="train.db", db_type="lmdb")
    assert op_types(model) == [
        "PRelu", "LeakyRelu", "InstanceNorm", "GroupNorm", "LayerNorm", "Moments",
        "MaxPoolWithIndex", "ReduceSum", "ArgMin", "MatMul", "ElementwiseLinear", "PackedFC",
        "FC_Decomp", "FC_Prune", "FC_Sparse", "ImageInput", "NHWC2NCHW", "VideoInput",
        "Fused8BitRowwiseQuantizedToFloat", "SparseLengthsSum4BitRowwiseSparse",
        "TensorProtosDBInput"]
    shapes = init_ops(model)
    assert shapes["pr_slope"] == ("ConstantFill", [3])
    assert shapes["in_s"] == shapes["in_b"] == ("ConstantFill", [3])
    assert shapes["gn_s"] == ("ConstantFill", [6])
    assert shapes["ln_scale"] == shapes["ln_bias"] == ("ConstantFill", [4])
    assert shapes["mo_rm"] == shapes["mo_riv"] == ("ConstantFill", [3])
    assert shapes["el_w"] == shapes["el_b"] == ("ConstantFill", [4])
    assert shapes["pfc_w"] == ("XavierFill", [2, 4])
    assert shapes["fd_u"] == ("XavierFill", [2, 3]) and shapes["fd_v"] == ("XavierFill", [4, 3])
    assert shapes["fp_m"] == ("ConstantFill", [2, 4]) and shapes["fp_lb"] == ("ConstantFill",
                                                                                [1])
    assert shapes["dbreader_train.db"][0] == "CreateDB"
    ops = {op.output[0]: op for op in model.net.Proto().op}
    assert list(ops["in"].output) == ["in", "in_sm", "in_siv"]
    assert list(ops["gn"].output) == ["gn", "gn_mean", "gn_std"]
    assert (str(normalized), str(mean), str(std)) == ("ln", "ln_mean", "ln_std")
    assert args_of(ops["ln"]) == {"axis": 1, "epsilon": pytest.approx(1e-3),
                                  "elementwise_affine": 1}
    assert list(ops["mo_sm"].output) == ["mo_sm", "mo_sv"]
    assert args_of(ops["mo_sm"])["axes"] == [0, 2, 3]
    assert list(ops["mpi"].output) == ["mpi", "mpi_index"]
    assert args_of(ops["lr"])["alpha"] == pytest.approx(0.2)
    assert list(ops["fp"].output) == ["fp", "fp_compress_rate"] and len(ops["fp"].input) == 8
    assert list(ops["data_nhwc"].output) == ["data_nhwc", "label"]
    assert list(ops["d1"].input) == ["dbreader_train.db"]
    assert args_of(ops["d1"])["batch_size"] == 8
    assert "wc" in model.params and "el_w" in model.weights
    assert model.GetComputedParams() == ["mo_rm", "mo_riv"]
    with pytest.raises(AssertionError, match="is_test"):
        brew.image_input(model, ["reader"], ["data", "label"])


def test_iter_accuracy_and_weight_decay():
    model = model_helper.ModelHelper()
    with core.DeviceScope(core.DeviceOption(caffe2_pb2.CPU)):
        it = brew.iter(model, "it")
    assert init_ops(model)["it"] == ("ConstantFill", [1]) and str(it) == "it"
    assert brew.accuracy(model, ["pred", "label"], "acc") is None
    fc = brew.fc(model, "x", "fc", 3, 1)
    model.AddGradientOperators([model.AveragedLoss(fc, "loss")])
    brew.add_weight_decay(model, 0.01)
    assert op_types(model)[:2] == ["Iter", "Accuracy"]
    decay = model.net.Proto().op[-1]
    assert decay.type == "WeightedSum"
    assert list(decay.input) == ["fc_w_grad", "ONE", "fc_w", "wd"]
    assert list(decay.output) == ["fc_w_grad"]
    workspace.RunNetOnce(model.param_init_net)
    assert workspace.FetchBlob("it").dtype == np.int64
    before = len(model.net.Proto().op)
    brew.add_weight_decay(model, 0.0)  # no decay: nothing added
    assert len(model.net.Proto().op) == before


def test_accuracy_top_k_on_a_gpu_copies_to_the_host():
    model = model_helper.ModelHelper()
    gpu = core.DeviceOption(caffe2_pb2.CUDA, 0)
    with core.DeviceScope(gpu):
        brew.accuracy(model, ["pred", "label"], "acc", top_k=3)
    assert op_types(model) == ["CopyGPUToCPU", "CopyGPUToCPU", "Accuracy"]
    accuracy = model.net.Proto().op[-1]
    assert list(accuracy.input) == ["pred_host", "label_host"]
    assert accuracy.device_option.device_type == caffe2_pb2.CPU


def test_arg_scope_and_model_arg_scope():
    model = model_helper.ModelHelper(arg_scope={"order": "NHWC"})
    with brew.arg_scope([brew.conv, brew.fc], weight_init=("ConstantFill", {"value": 2.0})):
        with brew.arg_scope(brew.conv, kernel=3):
            brew.conv(model, "x", "c1", 2, 4)
        brew.fc(model, "x", "f1", 2, 4)
    brew.fc(model, "x", "f2", 2, 4)
    ops = model.net.Proto().op
    assert args_of(ops[0])["kernel"] == 3 and args_of(ops[0])["order"] == "NHWC"
    assert init_ops(model)["c1_w"] == ("ConstantFill", [4, 3, 3, 2])  # NHWC from the model
    assert init_ops(model)["f1_w"][0] == "ConstantFill"
    assert init_ops(model)["f2_w"][0] == "XavierFill"  # the scope ended
    with brew.arg_scope(brew.relu, order="NCHW"):
        # a keyword given in the call wins over the scope
        brew.relu(model, "x", "r", order="NHWC")
    assert args_of(model.net.Proto().op[-1])["order"] == "NHWC"


def test_register_and_lookup_helpers():
    def my_double(model, blob_in, blob_out, **kwargs):
        return model.net.Scale(blob_in, blob_out, scale=2.0, **kwargs)

    assert not brew.has_helper("my_double")
    brew.Register(my_double)
    try:
        assert brew.has_helper(my_double) and brew.has_helper("fc")
        model = model_helper.ModelHelper()
        brew.my_double(model, "x", "y")
        assert op_types(model) == ["Scale"]
        with pytest.raises(AttributeError, match="already exists"):
            brew.Register(my_double)
    finally:
        del brew._registry["my_double"]
    with pytest.raises(AttributeError, match="Helper function nothing not registered"):
        brew.nothing
    with pytest.raises(RuntimeError, match="first input of helper function should be model"):
        brew.fc("x", "y", 1, 1)
    model = model_helper.ModelHelper()
    brew.fc(model="x" and model, blob_in="x", blob_out="kw", dim_in=1, dim_out=1)
    assert op_types(model) == ["FC"]


def test_a_small_cnn_trains_with_brew_and_sgd():
    """LeNet-like net on random data: the brew-built net runs forward and backward."""
    if missing("LabelCrossEntropy", "AveragedLoss"):
        pytest.skip("loss operators missing")
    model = model_helper.ModelHelper(name="cnn")
    conv = brew.conv(model, "data", "conv", 1, 4, kernel=3)
    pool = brew.max_pool(model, brew.relu(model, conv, "relu"), "pool", kernel=2, stride=2)
    pred = brew.softmax(model, brew.fc(model, pool, "pred", 4 * 3 * 3, 3), "softmax")
    loss = model.AveragedLoss(model.LabelCrossEntropy([pred, "label"], "xent"), "loss")
    brew.accuracy(model, [pred, "label"], "accuracy")
    model.AddGradientOperators([loss])
    grads = [str(model.param_to_grad[p]) for p in model.params]
    assert grads == ["conv_w_grad", "conv_b_grad", "pred_w_grad", "pred_b_grad"]
    workspace.RunNetOnce(model.param_init_net)
    rng = np.random.default_rng(3)
    workspace.FeedBlob("data", rng.standard_normal((5, 1, 8, 8)).astype(np.float32))
    workspace.FeedBlob("label", rng.integers(0, 3, 5).astype(np.int32))
    workspace.RunNetOnce(model.net)
    assert workspace.FetchBlob("conv_w_grad").shape == (4, 1, 3, 3)
    assert 0 <= workspace.FetchBlob("accuracy") <= 1


def test_param_tags_of_conv_and_normalization():
    model = model_helper.ModelHelper()
    brew.conv(model, "x", "c", 1, 2, kernel=1)
    brew.spatial_bn(model, "x", "bn", 2)
    assert model.weights == ["c_w", "bn_s"] and model.biases == ["c_b", "bn_b"]
    info = model.get_param_info(core.BlobReference("bn_rm"))
    assert info.shape == [2]
    assert ParameterTags.COMPUTED_PARAM == "COMPUTED_PARAM"


def test_cnn_model_helper_methods_call_the_helpers_with_its_layout():
    from caffe2lite.cnn import CNNModelHelper

    model = CNNModelHelper(order="NHWC", name="cnn", use_cudnn=False)
    assert model.arg_scope["order"] == "NHWC" and model.name == "cnn"
    conv = model.Conv("data", "conv", 3, 8, 3, weight_init=model.MSRAInit)
    model.MaxPool(model.Relu(conv, "relu"), "pool", kernel=2, stride=2)
    model.FC("pool", "fc", 8, 2, weight_init=model.ConstantInit(0.5))
    assert op_types(model) == ["Conv", "Relu", "MaxPool", "FC"]
    assert all(args_of(op).get("order") == "NHWC" for op in model.net.Proto().op[:3])
    assert init_ops(model)["conv_w"] == ("MSRAFill", [8, 3, 3, 3])
    with pytest.raises(ValueError, match="storage order"):
        CNNModelHelper(order="NCWH")
