"""Every predict net of the corpus (../shared/nets) runs once its operators exist.

A net runs with its own init net where the corpus has one; the model-zoo
classifiers (and lupotto's SqueezeNet, whose init net was never saved) run with
seeded random weights from ``caffe2lite.param_init`` and the published layer
widths (``caffe2lite.zoo_widths``).  A net needing an operator no module
registers yet is skipped naming it, so the skip becomes a run when the operator
lands.  Where a reference is cheap it is computed here in plain NumPy from the
net's documented semantics and its own weights (the MNIST net, Glow's small
nets); otherwise outputs are checked for shape, finiteness and, for
classifiers, a probability simplex.  Three of Glow's importer nets are nets
Caffe2 itself refused (an NCHW-shaped filter on an NHWC Conv, a one-output
Reshape, and EQ over uint8, which caffe2lite's EQ may accept); they must fail
here the same way, with a clear error.  The two nets with trained weights must
give the same top class for a fixed input in every run and fresh workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from caffe2lite import cli, workspace, zoo_widths
from caffe2lite.errors import EnforceError, SchemaError
from caffe2lite.param_init import random_init_net
from caffe2lite.protoio import load_net
from helpers import skip_unless_runnable

F = np.float32


def _image(shape, seed=0):
    """A fixed input: uniform [0, 1) pixels from a seeded generator."""
    return np.random.default_rng(seed).random(shape, dtype=F)


# -- NumPy references ------------------------------------------------------------------
def _conv_nchw(x, w, b, pad=0):
    """Cross-correlation, stride 1, symmetric zero padding (the loop-free textbook form)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,mcij->nmhw", windows, w) + b[None, :, None, None]


def _max_pool_2x2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _mnist_reference(feeds, params):
    """HungMingWu's exported LeNet: (Conv + bias, MaxPool 2, Relu) x 2, 800 -> 500 -> 10."""
    h = np.maximum(_max_pool_2x2(_conv_nchw(feeds["1"], params["2"], params["3"])), 0)
    h = np.maximum(_max_pool_2x2(_conv_nchw(h, params["4"], params["5"])), 0)
    h = h.reshape(-1, 800) @ params["6"].T + params["7"]
    return {"26": h @ params["8"].T + params["9"]}


def _fc_reference(feeds, params):
    return {"fc_result": feeds["inputs"] @ params["weights"].T + params["bias"]}


def _sparse_to_dense_reference(feeds, params):
    dense = np.zeros((len(feeds["dataToInferDim"]),) + feeds["values"].shape[1:], F)
    np.add.at(dense, feeds["indices"], feeds["values"])
    return {"dense_result": dense}


def _lengths_sum_reference(feeds, params):
    ends = np.cumsum(feeds["lengths"])
    return {"result": np.stack([feeds["data"][e - n:e].sum(axis=0)
                                for n, e in zip(feeds["lengths"], ends)])}


@dataclass
class Case:
    """One predict net: its init net (a corpus file) or the widths for a random one."""

    predict: str
    feeds: dict
    outputs: dict                      # external output -> expected shape
    init: str | None = None
    widths: dict | None = None         # random init net from param_init when set
    reference: object = None           # (feeds, init-net blobs) -> {output: array}
    classifier: bool = False           # outputs are probabilities over classes
    tolerance: dict = field(default_factory=lambda: dict(rtol=1e-4, atol=1e-5))


GLOW = "pytorch__glow__"
CASES = {
    "mnist_lenet": Case(
        "HungMingWu__pytorch_caffe2_cpp_binding__predict_net.pb",
        {"1": _image((2, 1, 28, 28))}, {"26": (2, 10)},
        init="HungMingWu__pytorch_caffe2_cpp_binding__init_net.pb",
        reference=_mnist_reference),
    "traffic_light_squeezenet": Case(
        "Miyuan2018__TrafficLight-Test__predict_net.pb",
        {"data": _image((1, 3, 227, 227))}, {"prob": (1, 3, 1, 1)},
        init="Miyuan2018__TrafficLight-Test__init_net.pb", classifier=True),
    "squeezenet_v1_1": Case(
        "lupotto__Object-detection-Caffe2__predict_net.pb",
        {"data": _image((1, 3, 227, 227))}, {"softmaxout": (1, 1000, 1, 1)},
        widths=zoo_widths.squeezenet(), classifier=True),
    "alexnet": Case(
        "facebookarchive__models__bvlc_alexnet_predict_net.pbtxt",
        {"data": _image((1, 3, 227, 227))}, {"prob": (1, 1000)},
        widths=zoo_widths.alexnet(), classifier=True),
    "inception_v1": Case(
        "facebookarchive__models__inception_v1_predict_net.pbtxt",
        {"data": _image((1, 3, 224, 224))}, {"prob": (1, 1000)},
        widths=zoo_widths.inception_v1(), classifier=True),
    "resnet50": Case(
        "facebookarchive__models__resnet50_predict_net.pbtxt",
        {"gpu_0/data": _image((2, 3, 224, 224))}, {"gpu_0/softmax": (2, 1000)},
        widths=zoo_widths.resnet50(), classifier=True),
    "glow_fc": Case(
        f"{GLOW}fc_predict_net.pbtxt", {"inputs": _image((5, 3))}, {"fc_result": (5, 4)},
        init=f"{GLOW}fc_init_net.pbtxt", reference=_fc_reference),
    "glow_fused_8bit_sls": Case(
        f"{GLOW}fused_rowwise_quantized_sparse_lengths_sum_predict_net.pbtxt",
        {"indices": np.array([2, 0, 1, 2, 0], np.int64), "lengths": np.array([2, 0, 3], np.int32)},
        {"result": (3, 2)},
        init=f"{GLOW}fused_rowwise_quantized_sparse_lengths_sum_init_net.pbtxt"),
    "glow_fused_8bit_weighted_sls": Case(
        f"{GLOW}fused_rowwise_quantized_sparse_lengths_weighted_sum_predict_net.pbtxt",
        {"indices": np.array([2, 0, 1, 2, 0, 1, 1, 0], np.int64),
         "lengths": np.array([3, 0, 5], np.int32)},
        {"result": (3, 1)},
        init=f"{GLOW}fused_rowwise_quantized_sparse_lengths_weighted_sum_init_net.pbtxt"),
    "glow_8bits_rowwise_sls": Case(
        f"{GLOW}rowwise_quantized_sparse_lengths_sum_predict_net.pbtxt",
        {"indices": np.array([1, 2, 0], np.int64), "lengths": np.array([1, 2], np.int32)},
        {"result": (2, 2)},
        init=f"{GLOW}rowwise_quantized_sparse_lengths_sum_init_net.pbtxt"),
    "glow_alias": Case(f"{GLOW}alias_op_net.pbtxt", {"X": _image((3, 2))}, {"Y": (3, 2)},
                       reference=lambda feeds, params: {"Y": feeds["X"]}),
    "glow_sparse_to_dense": Case(
        f"{GLOW}sparse_to_dense.pbtxt",
        {"indices": np.array([3, 0, 3], np.int32), "values": _image((3, 2)),
         "dataToInferDim": np.zeros(5, F)},
        {"dense_result": (5, 2)}, reference=_sparse_to_dense_reference),
    "glow_lengths_sum": Case(
        f"{GLOW}lengths_sum.pbtxt",
        {"data": _image((6, 2)), "lengths": np.array([2, 0, 4], np.int32)},
        {"result": (3, 2)}, reference=_lengths_sum_reference),
    "glow_sparse_to_dense_mask": Case(
        f"{GLOW}sparse_to_dense_mask_op_net.pbtxt",
        {"indices": np.array([300, 42, 7], np.int64), "values": _image((3,)),
         "defaultValue": np.array(-1.0, F)},
        {"output": (6,)}),
}

def _load(nets_dir, name):
    path = nets_dir / name
    if not path.exists():
        pytest.skip(f"{name} is not in {nets_dir}")
    return load_net(path)


def _init_net(nets_dir, case: Case, predict):
    if case.init:
        return _load(nets_dir, case.init)
    if case.widths is not None:
        shapes = {name: value.shape for name, value in case.feeds.items()}
        return random_init_net(predict, shapes, case.widths, seed=7)
    return None


def _run_case(init, predict, feeds) -> tuple[dict, dict]:
    """Run init then predict in the current workspace: (init blobs, predict outputs)."""
    params = {}
    if init is not None:
        workspace.RunNetOnce(init)
        params = {op.output[0]: workspace.FetchBlob(op.output[0]) for op in init.op}
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(predict)
    return params, {name: workspace.FetchBlob(name) for name in predict.external_output}


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_corpus_predict_net_runs(nets_dir, case_name):
    case = CASES[case_name]
    predict = _load(nets_dir, case.predict)
    skip_unless_runnable(predict, case.predict)
    init = _init_net(nets_dir, case, predict)
    params, outputs = _run_case(init, predict, case.feeds)
    assert set(outputs) == set(case.outputs)
    for name, shape in case.outputs.items():
        if shape is not None:
            assert outputs[name].shape == shape, name
        if outputs[name].dtype.kind == "f":
            assert np.isfinite(outputs[name]).all(), name
    if case.classifier:
        (probs,) = outputs.values()
        flat = probs.reshape(probs.shape[0], -1)
        assert flat.min() >= 0
        np.testing.assert_allclose(flat.sum(axis=1), 1, rtol=1e-4)
    if case.reference is not None:
        for name, want in case.reference(case.feeds, params).items():
            assert outputs[name].dtype == want.dtype, name
            np.testing.assert_allclose(outputs[name], want, **case.tolerance, err_msg=name)


@pytest.mark.parametrize("case_name", ["mnist_lenet", "traffic_light_squeezenet"])
def test_trained_nets_give_a_stable_top_class(nets_dir, case_name):
    """The same fixed input: the same scores on a rerun, in a fresh workspace, and
    through Caffe2's Predictor (a workspace of its own)."""
    case = CASES[case_name]
    predict = _load(nets_dir, case.predict)
    skip_unless_runnable(predict, case.predict)
    init = _load(nets_dir, case.init)
    (first,) = _run_case(init, predict, case.feeds)[1].values()
    workspace.RunNetOnce(predict)
    rerun = workspace.FetchBlob(predict.external_output[0])
    workspace.SwitchWorkspace("fresh_for_stability", True)
    (fresh,) = _run_case(init, predict, case.feeds)[1].values()
    (predicted,) = workspace.Predictor(init, predict).run(case.feeds)
    top = first.reshape(len(first), -1).argmax(axis=1)
    for other in (rerun, fresh, predicted):
        np.testing.assert_array_equal(other.reshape(len(other), -1).argmax(axis=1), top)
        np.testing.assert_allclose(other, first, rtol=1e-5, atol=1e-7)


def test_glow_dce_net_has_a_filter_caffe2_would_reject(nets_dir):
    """Glow's dead-code test net gives its NHWC Conv an NCHW-shaped (1, 1, 2, 2) filter.
    Caffe2's ConvOp NHWC path enforced filter dims (M, kernel_h, kernel_w, C / group), so
    the net only ever served Glow's importer; here it fails the same way, cleanly."""
    predict = _load(nets_dir, f"{GLOW}dce_test_predict_net.pbtxt")
    skip_unless_runnable(predict, predict.name)
    workspace.RunNetOnce(_load(nets_dir, f"{GLOW}dce_test_init_net.pbtxt"))
    workspace.FeedBlob("fc_inputs", _image((2, 3)))
    workspace.FeedBlob("conv_inputs", _image((1, 3, 3, 1)))
    filter_before = workspace.FetchBlob("conv_w")
    with pytest.raises(EnforceError, match=r"Conv.*'conv_w'.*\(1, 1, 2, 2\)"):
        workspace.RunNetOnce(predict)
    assert "conv_result" not in workspace.Blobs()  # the failed op wrote nothing
    np.testing.assert_array_equal(workspace.FetchBlob("conv_w"), filter_before)


def test_glow_fill_net_compares_each_filled_tensor_with_itself(nets_dir):
    """Glow's fill test: EQ of each filled tensor with itself is all True.  The fourth
    tensor is uint8 (GivenTensorByteStringToUInt8Fill), a type Caffe2's CPU EQ was not
    registered for (bool, int32, int64, float, double); where caffe2lite's EQ keeps to
    that list the op must fail naming the dtype, after the first three ran."""
    predict = _load(nets_dir, f"{GLOW}fill_test_predict_net.pbtxt")
    skip_unless_runnable(predict, predict.name)
    workspace.RunNetOnce(_load(nets_dir, f"{GLOW}fill_test_init_net.pbtxt"))
    names = ["tensor_fill_float", "tensor_int_fill", "tensor_int64_fill",
             "tensor_string_to_uint8_fill"]
    try:
        workspace.RunNetOnce(predict)
    except EnforceError as e:
        assert re.search(r"op #3 EQ.*'tensor_string_to_uint8_fill'.*uint8", str(e)), e
        assert "tensor_string_to_uint8_fill_eq" not in workspace.Blobs()
        names.pop()
    for name in names:
        same = workspace.FetchBlob(f"{name}_eq")
        assert same.dtype == bool and same.shape == workspace.FetchBlob(name).shape
        assert same.all(), name


def test_glow_gather_fold_net_gives_reshape_one_output_which_caffe2_refused(nets_dir):
    """Glow's constant-folding net ends in Reshape with a single output; Caffe2's schema
    declared NumOutputs(2) (reshaped, old_shape), so creating the net fails, naming it."""
    predict = _load(nets_dir, f"{GLOW}gather_const_fold.pbtxt")
    skip_unless_runnable(predict, predict.name)
    workspace.RunNetOnce(_load(nets_dir, f"{GLOW}gather_const_fold_init.pbtxt"))
    workspace.FeedBlob("data", _image((2, 3, 4, 5)))
    with pytest.raises(SchemaError, match=r'op #2 Reshape "result".*exactly 2 outputs, got 1'):
        workspace.RunNetOnce(predict)
    assert "result" not in workspace.Blobs()


def test_cli_runs_the_traffic_light_net(nets_dir, capsys):
    """caffe2lite run NET --init INIT --feed data=random:SHAPE prints the class scores."""
    case = CASES["traffic_light_squeezenet"]
    predict = _load(nets_dir, case.predict)
    skip_unless_runnable(predict, case.predict)
    argv = ["run", str(nets_dir / case.predict), "--init", str(nets_dir / case.init),
            "--feed", "data=random:1,3,227,227", "--seed", "3"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("prob (float32, shape (1, 3, 1, 1)):\n"), err
    workspace.ResetWorkspace()
    data = np.random.default_rng(3).standard_normal((1, 3, 227, 227), dtype=F)
    (expected,) = _run_case(_load(nets_dir, case.init), predict, {"data": data})[1].values()
    assert out == f"prob (float32, shape (1, 3, 1, 1)):\n{np.array2string(expected)}\n"


def test_cli_runs_a_zoo_net_with_random_weights(nets_dir, capsys):
    """caffe2lite run NET --random-init squeezenet: the init net param_init would build."""
    case = CASES["squeezenet_v1_1"]
    predict = _load(nets_dir, case.predict)
    skip_unless_runnable(predict, case.predict)
    argv = ["run", str(nets_dir / case.predict), "--random-init", "squeezenet",
            "--feed", "data=zeros:1,3,227,227", "--seed", "7"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    workspace.ResetWorkspace()
    init = random_init_net(predict, {"data": (1, 3, 227, 227)}, zoo_widths.squeezenet(), seed=7)
    feeds = {"data": np.zeros((1, 3, 227, 227), F)}
    (expected,) = _run_case(init, predict, feeds)[1].values()
    assert out == ("softmaxout (float32, shape (1, 1000, 1, 1)):\n"
                   f"{np.array2string(expected, threshold=200)}\n")
