"""caffe2lite.optimizer: each optimizer's update over several iterations against a NumPy
loop written here from Caffe2's optimizer.py semantics (learning rate from LearningRate
with base_lr = -base_learning_rate, the shared iteration counter, the state blobs), and
the build_* functions over a ModelHelper."""

import numpy as np
import pytest
from placeholder_ops import placeholder_ops

from caffe2lite import brew, core, model_helper, optimizer, utils, workspace
from caffe2lite.modeling.parameter_info import ParameterInfo, ParameterTags

STEPS = 4
RNG = np.random.default_rng(21)
W0 = RNG.standard_normal((3, 2)).astype(np.float32)
GRADS = [RNG.standard_normal((3, 2)).astype(np.float32) for _ in range(STEPS)]
SPARSE_IDX = [np.array(i, np.int64) for i in ([0, 2], [2, 2], [1], [0, 1, 2])]


def run_dense(opt, param_shape=W0):
    """Apply ``opt`` to parameter w with gradient g fed each step; the w after each step."""
    init, net = core.Net("opt_init"), core.Net("opt")
    w = init.GivenTensorFill([], "w", values=param_shape.reshape(-1).tolist(),
                             shape=list(param_shape.shape))
    opt(net, init, w, core.BlobReference("g"))
    workspace.FeedBlob("g", GRADS[0])
    workspace.RunNetOnce(init)
    workspace.CreateNet(net)
    out = []
    for g in GRADS:
        workspace.FeedBlob("g", g)
        workspace.RunNet(net.Name())
        out.append(workspace.FetchBlob("w"))
    return out, init, net


def run_sparse(opt):
    init, net = core.Net("sparse_init"), core.Net("sparse")
    w = init.GivenTensorFill([], "w", values=W0.reshape(-1).tolist(), shape=list(W0.shape))
    opt(net, init, w, core.GradientSlice("gi", "gv"))
    workspace.FeedBlob("gi", SPARSE_IDX[0])
    workspace.FeedBlob("gv", GRADS[0][:2])
    workspace.RunNetOnce(init)
    workspace.CreateNet(net)
    out = []
    for idx, g in zip(SPARSE_IDX, GRADS):
        workspace.FeedBlob("gi", idx)
        workspace.FeedBlob("gv", g[:len(idx)])
        workspace.RunNet(net.Name())
        out.append(workspace.FetchBlob("w"))
    return out, init, net


def assert_steps(got, want, rtol=1e-5, atol=1e-6):
    for step, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {step}")


def step_lr(base, it, gamma=0.5, stepsize=2):
    return base * gamma ** (it // stepsize)


def test_sgd_plain_with_step_policy():
    got, init, net = run_dense(optimizer.SgdOptimizer(0.1, policy="step", stepsize=2,
                                                      gamma=0.5))
    w, want = W0.astype(np.float64), []
    for it, g in enumerate(GRADS, start=1):  # the counter is 1 at the first run
        w = w - step_lr(0.1, it) * g
        want.append(w)
    assert_steps(got, want)
    assert [op.type for op in net.Proto().op] == ["AtomicIter", "LearningRate", "WeightedSum"]
    lr_op = net.Proto().op[1]
    assert {a.name: a.f for a in lr_op.arg if a.HasField("f")}["base_lr"] == pytest.approx(-0.1)
    assert list(lr_op.output) == ["SgdOptimizer_0_lr_cpu"] or \
        lr_op.output[0].startswith("SgdOptimizer_")
    assert {op.output[0] for op in init.Proto().op} >= {"optimizer_iteration", "ONE_0_0"}


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    got, init, _ = run_dense(optimizer.SgdOptimizer(0.1, momentum=0.9, nesterov=nesterov))
    w, m, want = W0.astype(np.float64), np.zeros_like(W0, np.float64), []
    for g in GRADS:
        if nesterov:
            m_new = 0.9 * m + 0.1 * g
            w = w - ((1 + 0.9) * m_new - 0.9 * m)
            m = m_new
        else:
            m = 0.1 * g + 0.9 * m
            w = w - m
        want.append(w)
    assert_steps(got, want)
    assert "w_momentum" in [op.output[0] for op in init.Proto().op]


def test_sgd_sparse_scatter_and_momentum():
    got, _, net = run_sparse(optimizer.SgdOptimizer(0.1))
    w, want = W0.astype(np.float64), []
    for idx, g in zip(SPARSE_IDX, GRADS):
        for k, r in enumerate(idx):
            w[r] -= 0.1 * g[k]
        want.append(w.copy())
    assert_steps(got, want)
    assert net.Proto().op[-1].type == "ScatterWeightedSum"
    workspace.ResetWorkspace()
    _, _, net = run_sparse(optimizer.SgdOptimizer(0.1, momentum=0.5))
    assert net.Proto().op[-1].type == "SparseMomentumSGDUpdate"


def test_adagrad_dense_weight_decay_and_sparse_row_wise():
    got, init, net = run_dense(optimizer.AdagradOptimizer(alpha=0.2, epsilon=1e-4,
                                                          weight_decay=0.1))
    w, h, want = W0.astype(np.float64), np.zeros_like(W0, np.float64), []
    for g in GRADS:
        g = g + 0.1 * w
        h += g * g
        w = w - 0.2 * g / (np.sqrt(h) + 1e-4)
        want.append(w)
    assert_steps(got, want)
    assert "w_squared_sum" in [op.output[0] for op in init.Proto().op]
    workspace.ResetWorkspace()
    got, init, net = run_sparse(optimizer.AdagradOptimizer(alpha=0.2, rowWise=True))
    w, h, want = W0.astype(np.float64), np.zeros(3), []
    for idx, g in zip(SPARSE_IDX, GRADS):
        for k, r in enumerate(idx):
            h[r] += np.mean(g[k] * g[k])
            w[r] -= 0.2 * g[k] / (np.sqrt(h[r]) + 1e-4)
        want.append(w.copy())
    assert_steps(got, want)
    assert net.Proto().op[-1].type == "RowWiseSparseAdagrad"
    assert "w_avg_squared_sum" in [op.output[0] for op in init.Proto().op]


def test_adagrad_counter_halflife_adds_row_wise_counter():
    _, init, net = run_sparse(optimizer.AdagradOptimizer(alpha=0.2, rowWise=True,
                                                         weight_decay=0.1, counter_halflife=5))
    types = [op.type for op in net.Proto().op]
    assert types[-2:] == ["RowWiseSparseAdagrad", "RowWiseCounter"]
    adagrad = net.Proto().op[-2]
    assert list(adagrad.input)[-1] == "w_update_counter"
    assert {"w_update_counter", "w_prev_update_iter"} <= {op.output[0]
                                                          for op in init.Proto().op}
    counter = workspace.FetchBlob("w_update_counter")
    assert counter.dtype == np.float64 and np.all(counter > 0)


def test_adam_dense_and_sparse():
    opt = optimizer.AdamOptimizer(alpha=0.05, beta1=0.8, beta2=0.9, epsilon=1e-3)
    got, init, _ = run_dense(opt)
    w, m1, m2, want = W0.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=2):  # iteration 1 at the first run: t = iter + 1
        m1 = 0.8 * m1 + 0.2 * g
        m2 = 0.9 * m2 + 0.1 * g * g
        w = w - 0.05 * np.sqrt(1 - 0.9 ** t) / (1 - 0.8 ** t) * m1 / (np.sqrt(m2) + 1e-3)
        want.append(w)
    assert_steps(got, want)
    assert {"w_first_moment", "w_second_moment"} <= {op.output[0] for op in init.Proto().op}
    assert opt.get_auxiliary_parameters().shared == ["optimizer_iteration"]
    workspace.ResetWorkspace()
    _, _, net = run_sparse(optimizer.AdamOptimizer(alpha=0.05, enableRAdam=True))
    sparse_adam = net.Proto().op[-1]
    assert sparse_adam.type == "SparseAdam"
    assert {a.name: a.i for a in sparse_adam.arg}["enableRAdam"] == 1


def test_rms_prop_then_momentum_sgd():
    got, _, net = run_dense(optimizer.RmsPropOptimizer(alpha=0.05, decay=0.8, momentum=0.5,
                                                       epsilon=1e-4))
    w, ms, mom, want = W0.astype(np.float64), 0.0, 0.0, []
    for g in GRADS:
        ms = ms + 0.2 * (g * g - ms)
        grad_o = 0.5 * mom + 1.0 * g / np.sqrt(1e-4 + ms)  # RmsProp runs with rate ONE
        # MomentumSGDUpdate (momentum 0) subtracts lr * grad_o and, as in Caffe2, writes
        # that step over the RmsProp momentum blob
        mom = 0.05 * grad_o
        w = w - mom
        want.append(w)
    assert_steps(got, want)
    assert [op.type for op in net.Proto().op][-2:] == ["RmsProp", "MomentumSGDUpdate"]


def test_adadelta_wngrad_storm_ftrl_decay_adagrad():
    got, _, _ = run_dense(optimizer.AdadeltaOptimizer(alpha=1.0, epsilon=1e-4, decay=0.9))
    w, h, d, want = W0.astype(np.float64), 0.0, 0.0, []
    for g in GRADS:
        h = 0.9 * h + 0.1 * g * g
        step = np.sqrt(d + 1e-4) / np.sqrt(h + 1e-4) * g
        w, d = w - step, 0.9 * d + 0.1 * step * step
        want.append(w)
    assert_steps(got, want)

    workspace.ResetWorkspace()
    got, _, _ = run_dense(optimizer.WngradOptimizer(alpha=2.0, moment_init=10.0))
    w, b, want = W0.astype(np.float64), 10.0, []
    for g in GRADS:
        w = w - 2.0 * g / (b + 1e-9)
        b = b + (g * g).sum() / (b + 1e-9)
        want.append(w)
    assert_steps(got, want)

    workspace.ResetWorkspace()
    got, _, _ = run_dense(optimizer.StormOptimizer(lr=0.3, momentum=2.0, beta=0.5))
    w, m, sq, want = W0.astype(np.float64), 0.0, 0.01, []
    for g in GRADS:
        sq += (g * g).sum()
        nlr = -0.3 * (0.5 + sq) ** (-1 / 3)
        m = g + (1 - 2.0 * nlr * nlr) * (m - g)
        w = w + nlr * m
        want.append(w)
    assert_steps(got, want)

    workspace.ResetWorkspace()
    got, _, _ = run_dense(optimizer.FtrlOptimizer(alpha=0.5, beta=1.0, lambda1=0.01,
                                                  lambda2=0.02))
    w, n, z, want = W0.astype(np.float64), np.zeros_like(W0, np.float64), 0.0, []
    for g in GRADS:
        new_n = n + g * g
        z = z + g - (np.sqrt(new_n) - np.sqrt(n)) / 0.5 * w
        n = new_n
        w = np.where(np.abs(z) > 0.01,
                     (0.01 * np.sign(z) - z) / ((1.0 + np.sqrt(n)) / 0.5 + 0.02), 0.0)
        want.append(w)
    assert_steps(got, want)

    workspace.ResetWorkspace()
    got, _, _ = run_dense(optimizer.DecayAdagradOptimizer(alpha=0.1, beta1=0.5, epsilon=0.1))
    w, m1, m2, want = W0.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=2):
        m1 = 0.5 * m1 + 0.5 * g
        m2 = m2 + g * g
        w = w - 0.1 * (m1 / (1 - 0.5 ** t) / (np.sqrt(m2) + 0.1))
        want.append(w)
    assert_steps(got, want)


@placeholder_ops("Slice")  # detection's operator
def test_row_state_of_a_parameter_of_unknown_shape_comes_from_shape_and_slice():
    init, net = core.Net("i"), core.Net("n")
    optimizer.AdagradOptimizer(rowWise=True)(net, init, core.BlobReference("fed"),
                                             core.GradientSlice("gi", "gv"))
    shape, rows, fill = init.Proto().op[-3:]
    assert (shape.type, rows.type, fill.type) == ("Shape", "Slice", "ConstantFill")
    assert list(fill.input) == ["fed_shape_numrows"]
    assert list(fill.output) == ["fed_avg_squared_sum"]


def test_yellowfin_state_blobs_and_op():
    _, init, net = run_dense(optimizer.YellowFinOptimizer(alpha=0.1, curv_win_width=4))
    names = [op.output[0] for op in init.Proto().op]
    for suffix in ("_moment", "_curv_win", "_g_avg", "_g2_avg", "_lr_avg", "_mu_avg",
                   "_scalars_memory"):
        assert "w" + suffix in names
    yf = net.Proto().op[-1]
    assert yf.type == "YellowFin" and list(yf.input)[-2:] == ["g", "optimizer_iteration"]
    assert workspace.FetchBlob("w_curv_win").shape == (4,)


def test_lars_scales_the_learning_rate():
    got, _, net = run_dense(optimizer.SgdOptimizer(0.1, lars=0.5))
    assert "Lars" in [op.type for op in net.Proto().op]
    w, want = W0.astype(np.float64), []
    for g in GRADS:
        local = min(max(1.0 / (np.linalg.norm(g) / np.linalg.norm(w) + 0.0 + 0.5), 0.0),
                    np.finfo(np.float32).max)
        w = w - 0.1 * local * g
        want.append(w)
    assert_steps(got, want, rtol=1e-4)


def linear_model(sparse=False):
    model = model_helper.ModelHelper(name="linear")
    x = model.net.Gather(["emb", "ids"], "x") if sparse else "x"
    if sparse:
        model.AddParameter(core.BlobReference("emb"), ParameterTags.WEIGHT)
    fc = brew.fc(model, x, "fc", 2, 1)
    loss = model.AveragedLoss(model.net.SquaredL2Distance([fc, "y"], "dist"), "loss")
    model.AddGradientOperators([loss])
    return model


@pytest.mark.parametrize("build,kwargs", [
    (optimizer.build_sgd, dict(base_learning_rate=0.1, momentum=0.9)),
    (optimizer.build_adagrad, dict(base_learning_rate=0.1)),
    (optimizer.build_adam, dict(base_learning_rate=0.05)),
    (optimizer.build_rms_prop, dict(base_learning_rate=0.05)),
    (optimizer.build_adadelta, dict(base_learning_rate=1.0)),
    (optimizer.build_wngrad, dict(base_learning_rate=1.0)),
    (optimizer.build_storm, dict(base_learning_rate=0.5)),
    (optimizer.build_decay_adagrad, dict(base_learning_rate=0.1)),
    (optimizer.build_yellowfin, dict(base_learning_rate=0.05)),
    (optimizer.build_ftrl, dict(alpha=0.5)),
    (optimizer.build_gftrl, dict(alpha=0.5)),
])
def test_builders_train_a_model(build, kwargs):
    model = linear_model()
    opt = build(model, **kwargs)
    assert isinstance(opt, optimizer.Optimizer)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 2)).astype(np.float32)
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("y", x @ np.array([[1.5], [-0.5]], np.float32))
    workspace.RunNetOnce(model.param_init_net)
    # a fixed start (XavierFill's draw let one run in a few hundred overshoot)
    workspace.FeedBlob("fc_w", np.array([[0.3, 0.2]], np.float32))
    workspace.FeedBlob("fc_b", np.zeros(1, np.float32))
    workspace.CreateNet(model.net)
    losses = []
    for _ in range(15):
        workspace.RunNet(model.net.Name())
        losses.append(float(workspace.FetchBlob("loss")))
    assert losses[-1] < losses[0], losses


def test_sparse_parameters_get_sparse_ops_and_weight_decay_skips_them():
    model = linear_model(sparse=True)
    optimizer.build_adagrad(model, base_learning_rate=0.1)
    types = [op.type for op in model.net.Proto().op]
    assert "SparseAdagrad" in types and "Adagrad" in types
    with pytest.raises(ValueError, match="sparse gradients"):
        optimizer.add_weight_decay(linear_model(sparse=True), 0.1)


def test_add_weight_decay_touches_weights_only():
    model = linear_model()
    optimizer.add_weight_decay(model, 0.25)
    decays = [op for op in model.net.Proto().op if op.type == "WeightedSum"]
    assert [list(op.input) for op in decays] == [["fc_w_grad", "ONE_0_0", "fc_w", "wd_0_0"]]


def test_lr_injection_scales_every_rate():
    model = linear_model()
    optimizer.build_sgd(model, base_learning_rate=0.1, allow_lr_injection=True)
    workspace.FeedBlob("x", np.ones((4, 2), np.float32))
    workspace.FeedBlob("y", np.zeros((4, 1), np.float32))
    workspace.RunNetOnce(model.param_init_net)
    assert optimizer.get_lr_injection().tolist() == [1.0]
    optimizer.set_lr_injection(0.5)
    w_before = workspace.FetchBlob("fc_w")
    workspace.RunNetOnce(model.net)
    grad = workspace.FetchBlob("fc_w_grad")
    np.testing.assert_allclose(workspace.FetchBlob("fc_w"), w_before - 0.5 * 0.1 * grad,
                               rtol=1e-5)


@placeholder_ops("SumSqrElements", "Max")  # breadth-math's operators
def test_max_gradient_norm_builds_the_norm_ratio():
    model = linear_model()
    optimizer.build_sgd(model, base_learning_rate=0.1, max_gradient_norm=1.0)
    types = [op.type for op in model.net.Proto().op]
    start = types.index("SumSqrElements")
    assert types[start:start + 8] == ["SumSqrElements", "EnsureCPUOutput",
                                      "SumSqrElements", "EnsureCPUOutput", "Sum", "Pow", "Max",
                                      "Div"]
    ratio = model.net.Proto().op[start + 7]
    assert list(ratio.output) == ["norm_clipped_grad_update/norm_ratio"]
    muls = [op for op in model.net.Proto().op if op.type == "Mul"]
    assert muls and all("norm_clipped_grad_update/norm_ratio" in str(list(op.input)) or
                        "lr_multiplier" in str(list(op.input)) for op in muls)


def test_unique_blob_names_and_aux_params():
    optimizer.reset_optimizer_instance_count()
    first, second = optimizer.AdagradOptimizer(), optimizer.AdagradOptimizer()
    assert first.get_cpu_blob_name("lr") == "AdagradOptimizer_0_lr_cpu"
    assert second.get_gpu_blob_name("lr", 1, "") == "AdagradOptimizer_1_lr_gpu1"
    with core.DeviceScope(core.DeviceOption(1, 3)):
        assert first.make_unique_blob_name("lr") == "AdagradOptimizer_0_lr_gpu3"
    assert "_instance_num" not in first.attributes
    info = ParameterInfo(param_id=None, param=core.BlobReference("w"), grad="g")
    init, net = core.Net("i"), core.Net("n")
    first(net, init, info)
    assert [str(b) for b in first.get_auxiliary_parameters().local] == ["w_squared_sum"]
    assert utils.OPTIMIZER_ITERATION_NAME in [op.output[0] for op in init.Proto().op]
    with pytest.raises(NotImplementedError):
        optimizer.Optimizer().scale_learning_rate(2)
    opt = optimizer.AdamOptimizer(alpha=0.1)
    opt.scale_learning_rate(0.5)
    assert opt.alpha == 0.05
    with pytest.raises(NotImplementedError, match="Smart decay"):
        optimizer.AdamOptimizer(use_smart_decay=True, rowWise=True)


def test_get_param_device():
    cpu = core.DeviceOption(0)
    gpu = core.DeviceOption(1, 1)
    assert optimizer.get_param_device("w", "g", {"w": gpu}) == gpu
    assert optimizer.get_param_device("w", core.GradientSlice("i", "v"), {"v": gpu}) == gpu
    assert optimizer.get_param_device("w", "g", {}, default_device=cpu) == cpu
    with pytest.raises(AssertionError, match="Cannot infer device for w"):
        optimizer.get_param_device("w", "g", {})
