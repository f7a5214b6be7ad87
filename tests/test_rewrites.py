"""Inference rewrites (caffe2lite/runtime/rewrites.py) against the unrewritten net.

The reference for every rewrite is the same NetDef created with the rewrites
switched off (its ops are tested against NumPy in tests/operators): bit for bit
where the arithmetic is the same (no-op removal, Conv + Sum + Relu in place,
constant folding), to 1e-5 of the largest output where SpatialBN is folded into
the convolution's weights or a fused step takes Winograd where a lone Conv would
not (other roundings).  Each rewrite must fire where it
should (``net.rewrites``), stay away where it could be seen, leave the NetDef
alone, follow its flag, and fail like the ops it stands for.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import NETS_DIR, NETS_MISSING

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError
from caffe2lite.runtime import flags, rewrites

F = np.float32


@pytest.fixture
def rewrites_off():
    """A context that creates nets with every inference rewrite switched off."""
    saved = {name: flags.get(name) for name in rewrites.FLAGS}

    class Switch:
        def __init__(self, names=rewrites.FLAGS):
            self.names = names

        def __call__(self, *names):
            return Switch(names)

        def __enter__(self):
            workspace.GlobalInit(["caffe2"] + [f"--{n}=0" for n in self.names])

        def __exit__(self, *exc):
            workspace.GlobalInit(["caffe2"] + [f"--{n}={v}" for n, v in saved.items()])

    yield Switch()
    workspace.GlobalInit(["caffe2"] + [f"--{n}={v}" for n, v in saved.items()])


def feed_params(rng, order="NCHW", bias=True, c_in=3, c_out=4, k=3):
    w_shape = (c_out, c_in, k, k) if order == "NCHW" else (c_out, k, k, c_in)
    workspace.FeedBlob("w", rng.standard_normal(w_shape).astype(F))
    if bias:
        workspace.FeedBlob("b", rng.standard_normal(c_out).astype(F))
    workspace.FeedBlob("scale", rng.uniform(0.5, 2, c_out).astype(F))
    workspace.FeedBlob("shift", rng.standard_normal(c_out).astype(F))
    workspace.FeedBlob("mean", rng.standard_normal(c_out).astype(F))
    workspace.FeedBlob("var", rng.uniform(0.5, 2, c_out).astype(F))


def conv_bn_net(order="NCHW", bias=True, residual=False, relu=True, name="rw", bn=True):
    """Conv -> SpatialBN(is_test) [-> Sum with "skip", in place] [-> Relu, in place];
    without ``bn`` the conv writes "bn" itself (and a test-mode Dropout marks the net
    as one for inference)."""
    net = core.Net(name)
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    if bn:
        net.Conv(conv_in, "conv", kernel=3, pad=1, order=order)
        net.SpatialBN(["conv", "scale", "shift", "mean", "var"], "bn", is_test=1,
                      epsilon=1e-5, order=order)
    else:
        net.Dropout("x", "x", is_test=1)
        net.Conv(conv_in, "bn", kernel=3, pad=1, order=order)
    if residual:
        net.Sum(["bn", "skip"], "bn")
    if relu:
        net.Relu("bn", "bn")
    net.Proto().external_output.append("bn")
    return net


def outputs_of(net, feeds, switch=None, runs=2, fetch=("bn",)):
    """Create ``net`` (under ``switch``) in a fresh workspace, feed, run ``runs`` times
    (the first run loops, the second runs the compiled schedule); return the net and
    the fetched blobs."""
    workspace.ResetWorkspace()
    rng = np.random.default_rng(3)
    feeds(rng)
    with switch or contextlib.nullcontext():
        workspace.CreateNet(net, overwrite=True)
    created = workspace.current().nets[net.Name()]
    for _ in range(runs):
        workspace.RunNet(net.Name())
    return created, [workspace.FetchBlob(b) for b in fetch]


def relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [False, True])
def test_conv_bn_sum_relu_against_the_unrewritten_net(rewrites_off, order, bias, residual):
    x_shape = (2, 3, 7, 6) if order == "NCHW" else (2, 7, 6, 3)
    y_shape = (2, 4, 7, 6) if order == "NCHW" else (2, 7, 6, 4)

    def feeds(rng):
        feed_params(rng, order, bias)
        workspace.FeedBlob("x", rng.standard_normal(x_shape).astype(F))
        workspace.FeedBlob("skip", rng.standard_normal(y_shape).astype(F))

    net = conv_bn_net(order, bias, residual)
    before = net.Proto().SerializeToString()
    created, (got,) = outputs_of(net, feeds)
    assert isinstance(workspace.FetchBlob("conv"), bytes)  # the BN's input: never written
    plain, (want,) = outputs_of(net, feeds, rewrites_off)
    assert plain.rewrites == [] and len(plain.steps) == len(net.Proto().op)
    expected = ("Conv + SpatialBN (folded) + Sum + Relu" if residual
                else "Conv + SpatialBN (folded) + Relu")
    assert created.rewrites == [(expected, tuple(range(len(net.Proto().op))))]
    assert len(created.steps) == 1
    assert relative_error(got, want) < 1e-5
    assert net.Proto().SerializeToString() == before  # the NetDef is untouched
    # without the BN the arithmetic is the same: the same bits
    net = conv_bn_net(order, bias, residual, bn=False)
    fused, (got,) = outputs_of(net, feeds)
    plain, (want,) = outputs_of(net, feeds, rewrites_off)
    assert fused.rewrites == [("Dropout removed", (0,)),
                              (expected.replace(" + SpatialBN (folded)", ""),
                               tuple(range(1, len(net.Proto().op))))]
    np.testing.assert_array_equal(got, want)
    with rewrites_off("caffe2lite_fuse_conv_act"):
        _, (same,) = outputs_of(net, feeds)
    np.testing.assert_array_equal(same, want)


def test_each_flag_switches_its_rewrite(rewrites_off):
    def feeds(rng):
        feed_params(rng)
        workspace.FeedBlob("x", rng.standard_normal((1, 3, 5, 5)).astype(F))

    net = conv_bn_net()
    with rewrites_off("caffe2lite_fuse_conv_act"):
        created, _ = outputs_of(net, feeds)
    assert [label for label, _ in created.rewrites] == ["Conv + SpatialBN (folded)"]
    with rewrites_off("caffe2lite_fold_bn", "caffe2lite_fuse_conv_act"):
        created, _ = outputs_of(net, feeds)
    assert created.rewrites == []


def test_environment_variables_set_the_defaults():
    """Each flag's default is its upper-case environment variable (a fresh process)."""
    import subprocess
    import sys

    code = ("from caffe2lite.runtime import flags; "
            "print(flags.get('caffe2lite_fold_bn'), flags.get('caffe2lite_fold_constants'))")
    env = dict(os.environ, CAFFE2LITE_FOLD_BN="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "1"]


def test_training_nets_are_not_rewritten():
    net = conv_bn_net()
    for op in net.Proto().op:  # no is_test anywhere: a training-style net
        for arg in op.arg:
            if arg.name == "is_test":
                arg.i = 0
    net.Proto().op[1].output.extend(["mean", "var", "saved_mean", "saved_rstd"])
    workspace.ResetWorkspace()
    feed_params(np.random.default_rng(0))
    workspace.FeedBlob("x", np.ones((2, 3, 4, 4), F))
    workspace.CreateNet(net)
    assert workspace.current().nets[net.Name()].rewrites == []


def test_nothing_a_fetch_could_see_is_dropped():
    """Without external outputs every blob may be fetched: the BN cannot absorb the conv
    (its output "conv" would stay unwritten); an in-place Relu still fuses."""
    net = conv_bn_net()
    del net.Proto().external_output[:]
    workspace.ResetWorkspace()
    feed_params(np.random.default_rng(0))
    workspace.FeedBlob("x", np.ones((1, 3, 4, 4), F))
    workspace.CreateNet(net)
    assert workspace.current().nets[net.Name()].rewrites == []
    net2 = core.Net("inplace")
    net2.Conv(["x", "w", "b"], "y", kernel=3, pad=1)
    net2.Relu("y", "y")
    net2.Dropout("y", "y", is_test=1)
    workspace.CreateNet(net2)
    assert workspace.current().nets[net2.Name()].rewrites == [("Dropout removed", (2,)),
                                                               ("Conv + Relu", (0, 1))]
    # the conv output is the blob the BN reads: as an external output it stays
    net3 = conv_bn_net(name="keeps_conv")
    net3.Proto().external_output.append("conv")
    workspace.CreateNet(net3)
    assert workspace.current().nets[net3.Name()].rewrites == []


def test_a_weight_another_net_updates_in_place_is_not_folded():
    """A test net shares its conv weight with a training net whose SparseAdagrad updates
    it in place: folding would keep the old weight.  Either order of creation."""
    def feeds(rng):
        feed_params(rng)
        workspace.FeedBlob("x", rng.standard_normal((1, 3, 5, 5)).astype(F))
        workspace.FeedBlob("mom", np.zeros((4, 3, 3, 3), F))
        workspace.FeedBlob("idx", np.array([0, 2], np.int64))
        workspace.FeedBlob("g", rng.standard_normal((2, 3, 3, 3)).astype(F))
        workspace.FeedBlob("lr", np.array([0.5], F))

    train = core.Net("train")
    train.SparseAdagrad(["w", "mom", "idx", "g", "lr"], ["w", "mom"], epsilon=1e-6)

    def reference():
        """The test net's ops one by one on the current blobs."""
        ws = workspace.current()
        saved = dict(ws.blobs)
        for op in conv_bn_net().Proto().op:
            workspace.RunOperatorOnce(op)
        out = workspace.FetchBlob("bn")
        ws.blobs.clear()
        ws.blobs.update(saved)
        return out

    for train_first in (False, True):
        workspace.ResetWorkspace()
        feeds(np.random.default_rng(1))
        test = conv_bn_net(name="test")
        if train_first:
            workspace.CreateNet(train)
        workspace.CreateNet(test)
        if not train_first:
            workspace.RunNet(test.Name())
            workspace.RunNet(test.Name())  # compiled, weights folded
            workspace.CreateNet(train)
        for _ in range(2):
            workspace.RunNet(train.Name())  # w changes in place
            workspace.RunNet(test.Name())
            assert relative_error(workspace.FetchBlob("bn"), reference()) < 1e-5
        assert workspace.current().nets[test.Name()].rewrites == []  # planned again


def test_a_replaced_parameter_is_folded_again():
    def feeds(rng):
        feed_params(rng)
        workspace.FeedBlob("x", rng.standard_normal((1, 3, 5, 5)).astype(F))

    net = conv_bn_net()
    created, (first,) = outputs_of(net, feeds)
    workspace.FeedBlob("scale", 2 * workspace.FetchBlob("scale"))
    workspace.RunNet(net.Name())
    second = workspace.FetchBlob("bn")
    assert not np.array_equal(first, second)
    workspace.FeedBlob("scale", workspace.FetchBlob("scale") / 2)
    workspace.RunNet(net.Name())
    assert relative_error(workspace.FetchBlob("bn"), first) < 1e-6


def test_a_rewritten_step_fails_like_the_ops_it_stands_for(rewrites_off):
    """A residual of the wrong shape: Sum's own error, naming Sum and its input."""
    def feeds(rng):
        feed_params(rng)
        workspace.FeedBlob("x", rng.standard_normal((1, 3, 5, 5)).astype(F))
        workspace.FeedBlob("skip", np.ones((1, 4, 5, 1), F))  # would broadcast in +=

    net = conv_bn_net(residual=True)
    errors = []
    for switch in (None, rewrites_off):
        with pytest.raises(Caffe2LiteError) as info:
            outputs_of(net, feeds, switch)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert "Sum" in errors[0] and "'skip'" in errors[0]


def test_noops_are_removed_with_the_same_bits(rewrites_off):
    net = core.Net("noops")
    net.Copy("x", "x_copy")
    net.StopGradient("x_copy", "x_copy")
    net.Dropout("x_copy", ["x_drop", "mask"], is_test=1, ratio=0.3)
    net.Alias("x_drop", "x_alias")
    net.Relu("x_alias", "y")
    net.Proto().external_output.append("y")

    def feeds(rng):
        workspace.FeedBlob("x", rng.standard_normal((3, 4)).astype(F))

    created, (got,) = outputs_of(net, feeds, fetch=("y",))
    _, (want,) = outputs_of(net, feeds, rewrites_off, fetch=("y",))
    np.testing.assert_array_equal(got, want)
    assert [label for label, _ in created.rewrites] == [
        "Copy removed", "StopGradient removed", "Dropout removed", "Alias removed"]
    assert len(created.steps) == 1 and created.steps[0].inputs == ("x",)
    # a Copy whose output the net gives out, or a mask someone reads, stays
    net.Proto().external_output.append("x_copy")
    net.Relu("mask", "mask_relu")
    created, (again,) = outputs_of(net, feeds, fetch=("y",))
    np.testing.assert_array_equal(again, want)
    assert [label for label, _ in created.rewrites] == ["StopGradient removed", "Alias removed"]


def _constant_nets():
    w = np.arange(12, dtype=F).reshape(3, 4) / 7
    init = core.Net("const_init")
    init.GivenTensorFill([], "w", shape=[3, 4], values=w.reshape(-1).tolist())
    init.GivenTensorFill([], "bias", shape=[4], values=[0.5, -1.0, 2.0, 0.0])
    predict = core.Net("const_predict")
    predict.AddExternalInput("data", "w", "bias")
    wt = predict.Transpose("w", "wt")
    scaled = predict.Scale(wt, "wt_scaled", scale=0.5)
    predict.FC(["data", scaled, "bias"], "y")
    predict.ConstantFill([], "ones", shape=[2], value=1.0)
    predict.Proto().external_output.extend(["y", "ones"])
    return w, init, predict


def test_constants_are_folded_in_a_predictor(rewrites_off):
    w, init, predict = _constant_nets()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(F)
    p = workspace.Predictor(init, predict)
    created = p.workspace.nets[predict.Name()]
    assert [label for label, _ in created.rewrites] == [
        "Transpose + constant", "Scale + constant", "ConstantFill + constant"]
    with rewrites_off:
        reference = workspace.Predictor(init, predict)
    assert reference.workspace.nets[predict.Name()].rewrites == []
    for _ in range(3):
        got, want = p.run([x]), reference.run([x])
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got[0], x @ (w * 0.5) + [0.5, -1.0, 2.0, 0.0], rtol=1e-6)
    # the data input is never a parameter: an FC of it is not folded
    assert all("FC" not in label for label, _ in created.rewrites)


def test_a_predictor_frees_intermediates_it_alone_reads():
    w, init, predict = _constant_nets()
    x = np.ones((2, 3), F)
    kept = workspace.Predictor(init, predict, reuse_memory=False)
    freed = workspace.Predictor(init, predict, reuse_memory=True)
    for _ in range(2):
        for a, b in zip(kept.run([x]), freed.run([x])):
            np.testing.assert_array_equal(a, b)
    assert kept.workspace.blobs["wt_scaled"] is not None
    assert freed.workspace.blobs["wt_scaled"] is None  # emptied after FC read it
    assert freed.workspace.blobs["w"] is not None  # parameters and outputs stay
    assert freed.workspace.blobs["y"] is not None


def _corpus_case(name, batch):
    import sys

    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        import bench_vision
    finally:
        sys.path.remove(str(tools))
    bench_vision.NETS = NETS_DIR
    return bench_vision.load_case(name, batch)


def _corpus_logits(rewrites_off, name):
    """(logits with the rewrites, logits without, the rewritten net) of a corpus net."""
    if not NETS_DIR.is_dir():
        pytest.skip(NETS_MISSING)
    predict, init, data, x = _corpus_case(name, 1)
    logits = next(op.input[0] for op in predict.op if op.type == "Softmax")
    results = []
    for switch in (None, rewrites_off):
        workspace.ResetWorkspace()
        workspace.RunNetOnce(init)
        workspace.FeedBlob(data, x)
        with switch or contextlib.nullcontext():
            workspace.CreateNet(predict)
        workspace.RunNet(predict.name)
        results.append(workspace.FetchBlob(logits))
        if switch is None:
            created = workspace.current().nets[predict.name]
    return results[0], results[1], created


@pytest.mark.parametrize("name", ["resnet50", "traffic_light"])
def test_corpus_nets_agree_with_their_unrewritten_selves(rewrites_off, name):
    ours, plain, created = _corpus_logits(rewrites_off, name)
    assert relative_error(ours, plain) < 1e-5
    if name == "resnet50":  # 53 Conv + BN, 16 of them with the shortcut Sum and Relu
        labels = [label for label, _ in created.rewrites]
        assert labels.count("Conv + SpatialBN (folded) + Sum + Relu") == 16
        assert len(labels) == 53
    else:  # every Conv + Relu, and the test-mode Dropout
        assert len(created.rewrites) == 27


def test_conv_relu_and_noops_give_the_same_bits_on_the_same_convolution_paths(
        rewrites_off, monkeypatch):
    """TrafficLight's rewrites (Conv + Relu, the test-mode Dropout) change no arithmetic.
    Only the algorithm may differ: a fused step keeps its Winograd filters, so its 13x13
    3x3 layers (49 tiles) take Winograd where a lone Conv (128 tiles and up) does not;
    with one threshold for both, the logits are the same bits."""
    from caffe2lite.operators import conv

    monkeypatch.setattr(conv, "WINOGRAD_MIN_TILES_KEPT", conv.WINOGRAD_MIN_TILES)
    ours, plain, created = _corpus_logits(rewrites_off, "traffic_light")
    np.testing.assert_array_equal(ours, plain)
    assert len(created.rewrites) == 27


def test_a_large_epilogue_runs_in_pieces_with_the_same_bits(rewrites_off, monkeypatch):
    """An output of 2**19 elements: the add and the clip run piece by piece on two
    threads (operators/_epilogue.py); elementwise, so the same bits as Sum and Relu."""
    from caffe2lite.operators import _parallel

    monkeypatch.setattr(_parallel, "_threads", 2)

    def feeds(rng):
        feed_params(rng, c_in=2, c_out=8)
        workspace.FeedBlob("x", rng.standard_normal((1, 2, 256, 256)).astype(F))
        workspace.FeedBlob("skip", rng.standard_normal((1, 8, 256, 256)).astype(F))

    net = conv_bn_net(residual=True, bn=False)
    created, (got,) = outputs_of(net, feeds)
    assert [label for label, _ in created.rewrites][-1] == "Conv + Sum + Relu"
    _, (want,) = outputs_of(net, feeds, rewrites_off)
    np.testing.assert_array_equal(got, want)


def test_a_fused_convolution_keeps_its_winograd_filters_until_the_weight_changes(
        rewrites_off, monkeypatch):
    """A 3x3 stride-1 conv in a fused step transforms its filters once and keeps them
    for the next runs (the step's kernel cache), and again when the weight blob is
    replaced; the outputs match the unrewritten net's to float32 rounding."""
    from caffe2lite.operators import _native_conv
    from caffe2lite.operators import conv as conv_module

    if not _native_conv.winograd_available():
        pytest.skip("the optional C library (caffe2lite/_native) is not built")
    made = []
    original = _native_conv.winograd_weights
    monkeypatch.setattr(_native_conv, "winograd_weights",
                        lambda *a: made.append(1) or original(*a))
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_TILES_KEPT", 1)

    def feeds(rng):
        feed_params(rng)
        workspace.FeedBlob("x", rng.standard_normal((1, 3, 9, 9)).astype(F))

    net = conv_bn_net(bn=False)
    created, (got,) = outputs_of(net, feeds, runs=3)
    assert created.rewrites[-1][0] == "Conv + Relu" and len(made) == 1
    workspace.FeedBlob("w", 2 * workspace.FetchBlob("w"))
    workspace.RunNet(net.Name())
    assert len(made) == 2
    _, (want,) = outputs_of(net, feeds, rewrites_off)
    assert relative_error(got, want) < 1e-5


def _fire_net(order):
    """A SqueezeNet fire module: squeeze 1x1 + Relu, expand 1x1 and 3x3 (each + Relu),
    Concat of the two expands along the channels (a test-mode Dropout marks the net as
    one for inference)."""
    net = core.Net("fire")
    net.Dropout("x", "x", is_test=1)
    net.Conv(["x", "ws", "bs"], "sq", kernel=1, order=order)
    net.Relu("sq", "sq")
    net.Conv(["sq", "w1", "b1"], "e1", kernel=1, order=order)
    net.Relu("e1", "e1")
    net.Conv(["sq", "w3", "b3"], "e3", kernel=3, pad=1, order=order)
    net.Relu("e3", "e3")
    net.Concat(["e1", "e3"], ["cat", "split_info"], order=order)
    net.Proto().external_output.append("cat")
    return net


@pytest.mark.parametrize("order, batch, winograd", [
    ("NCHW", 1, False), ("NCHW", 1, True), ("NCHW", 3, False), ("NCHW", 3, True),
    ("NHWC", 2, False),  # channels last: no C path, so the ops run as written
])
def test_fused_expands_write_into_the_concat_with_the_same_bits(
        rewrites_off, monkeypatch, order, batch, winograd):
    """A fire module's expand Conv + Relu steps compute straight into their slices of
    the Concat's output (runtime/fusion.py's joins): the same bits as the net with no
    rewrite or fusion, for the joined output and for each expand's own blob."""
    from caffe2lite.operators import conv as conv_module
    from caffe2lite.runtime import fusion

    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_TILES", 1 if winograd else 1 << 30)
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_TILES_KEPT", conv_module.WINOGRAD_MIN_TILES)
    rng = np.random.default_rng(5)
    shape = (batch, 6, 9, 9) if order == "NCHW" else (batch, 9, 9, 6)
    arrays = {"x": rng.standard_normal(shape)}
    for name, c_in, c_out, k in (("s", 6, 4, 1), ("1", 4, 5, 1), ("3", 4, 7, 3)):
        w_shape = (c_out, c_in, k, k) if order == "NCHW" else (c_out, k, k, c_in)
        arrays["w" + name] = rng.standard_normal(w_shape)
        arrays["b" + name] = rng.standard_normal(c_out)

    def feeds(_):
        for name, value in arrays.items():
            workspace.FeedBlob(name, value.astype(F))

    net = _fire_net(order)
    fetch = ("cat", "e1", "e3")
    created, got = outputs_of(net, feeds, fetch=fetch)
    joined = [s for s in created.steps if isinstance(s, fusion.JoinedWriters)]
    assert len(joined) == 1 and len(created.rewrites) == 4
    # NCHW: the expands write into the join; NHWC: they cannot, the ops run as written
    served = joined[0]._compute(workspace.current().blob_dict)
    assert (served is not None) == (order == "NCHW")
    if served is not None:  # the expands' outputs are the Concat's slices
        assert np.shares_memory(served[0], served[2]) and np.shares_memory(served[1], served[2])
    flags_saved = flags.get("caffe2lite_fuse_ops")
    workspace.GlobalInit(["caffe2", "--caffe2lite_fuse_ops=0"])
    try:
        plain, want = outputs_of(net, feeds, rewrites_off, fetch=fetch)
    finally:
        workspace.GlobalInit(["caffe2", f"--caffe2lite_fuse_ops={flags_saved}"])
    assert not plain.rewrites and not plain.fusions
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
