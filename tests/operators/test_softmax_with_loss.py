"""SoftmaxWithLoss / SoftmaxWithLossGradient against loops over samples written here."""

import math

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run

from caffe2lite import core
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_gradient, check_reference


def ref_loss(X, labels, weights=None, axis=1, scale=1.0, label_prob=False):
    """(softmax, loss) from Caffe2's documented formula, one sample at a time in float64."""
    N = int(np.prod(X.shape[:axis]))
    rows = X.astype(np.float64).reshape(N, -1)
    P = np.empty_like(rows)
    total, weight_sum = 0.0, 0.0
    for i, row in enumerate(rows):
        log_sum = row.max() + math.log(sum(math.exp(v - row.max()) for v in row))
        P[i] = np.exp(row - log_sum)
        w = 1.0 if weights is None else float(weights[i])
        if label_prob:
            t = labels.reshape(N, -1)[i]
            total += w * sum(-math.log(max(p, 1e-20)) * tj for p, tj in zip(P[i], t))
        else:
            total += w * (log_sum - row[int(labels.reshape(-1)[i])])
        weight_sum += w
    loss = total * scale / weight_sum if weight_sum != 0 else 0.0
    return P.reshape(X.shape).astype(X.dtype), np.array(loss, X.dtype)


def distributions(rng, N, D):
    t = rng.random((N, D))
    return (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_prob", [False, True])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_matches_reference(weighted, label_prob, scale):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((5, 4)) * 3).astype(np.float32)
    labels = distributions(rng, 5, 4) if label_prob else rng.integers(0, 4, 5).astype(np.int32)
    inputs = [X, labels] + ([rng.random(5).astype(np.float32)] if weighted else [])
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T", "w"][:len(inputs)], ["P", "loss"],
                             scale=scale, label_prob=int(label_prob))
    P, loss = check_reference(op, inputs, lambda *a: ref_loss(
        *a, scale=scale, label_prob=label_prob), threshold=1e-5)
    assert loss.shape == () and loss.dtype == np.float32 and P.shape == X.shape


@pytest.mark.parametrize("shape, labels_shape, axis", [((2, 3, 4), (2, 3), 2),
                                                       ((2, 3, 4), (2, 3, 1), 2),
                                                       ((4, 3, 2), (4,), 1),
                                                       ((4, 3), (4, 1), 1)])
def test_axis_coerces_logits_and_labels(shape, labels_shape, axis):
    rng = np.random.default_rng(1)
    X = rng.standard_normal(shape).astype(np.float32)
    D = int(np.prod(shape[axis:]))
    labels = rng.integers(0, D, labels_shape).astype(np.int64)
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], axis=axis)
    check_reference(op, [X, labels], lambda X, T: ref_loss(X, T, axis=axis), threshold=1e-5)


def test_zero_total_weight_gives_zero_loss():
    X = np.ones((2, 3), np.float32)
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T", "w"], ["P", "loss"])
    check_reference(op, [X, np.array([0, 2], np.int32), np.zeros(2, np.float32)],
                    lambda X, T, w: (np.full((2, 3), 1 / 3), np.array(0.0)), threshold=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_prob", [False, True])
def test_gradient_by_finite_differences(weighted, label_prob):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 3))
    labels = distributions(rng, 4, 3).astype(np.float64) if label_prob \
        else np.array([0, 2, 1, 2], np.int32)
    inputs = [X, labels] + ([rng.random(4) + 0.5] if weighted else [])
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T", "w"][:len(inputs)], ["P", "loss"],
                             scale=1.5, label_prob=int(label_prob))
    check_gradient(op, inputs, 0, output_index=1)


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_op_layout_is_caffe2s(weighted):
    inputs = ["X", "T", "w"][:2 + weighted]
    op = core.CreateOperator("SoftmaxWithLoss", inputs, ["P", "loss"], scale=2.0)
    grad_ops, g_input = get_gradient_for_op(op, [None, "loss_grad"])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("SoftmaxWithLossGradient", inputs + ["P", "loss_grad"], ["X_grad"])]
    assert g_input == ["X_grad"] + [None] * (len(inputs) - 1)
    assert {a.name: a.f for a in grad_ops[0].arg}["scale"] == 2.0  # forward args copied
    with pytest.raises(GradientError, match="gradient of output 1 .*'loss'"):
        get_gradient_for_op(op, ["P_grad", None])


def test_gradient_kernel_matches_formula_with_weights():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 4)).astype(np.float32)
    T, w = np.array([3, 0, 1], np.int32), np.array([0.5, 2.0, 1.0], np.float32)
    P = ref_loss(X, T)[0]
    dloss = np.array(0.7, np.float32)

    def ref(X, T, w, P, dloss):
        out = P.astype(np.float64).copy()
        for i in range(3):
            out[i, T[i]] -= 1
            out[i] *= w[i]
        return (out * 3.0 / w.sum() * dloss,)

    op = core.CreateOperator("SoftmaxWithLossGradient", ["X", "T", "w", "P", "dl"], ["dX"],
                             scale=3.0)
    check_reference(op, [X, T, w, P, dloss], ref, threshold=1e-5)


def test_shape_inference_matches_a_run():
    rng = np.random.default_rng(4)
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], axis=2)
    inferred_matches_run(op, {"X": rng.standard_normal((2, 3, 4)).astype(np.float32),
                              "T": np.zeros((2, 3), np.int32)})


X3 = np.zeros((3, 4), np.float32)


@pytest.mark.parametrize("feeds, args, match", [
    ({"X": X3, "T": np.array([0, 4, 1], np.int32)}, {}, r"input 1 'labels'.*in \[0, 4\)"),
    ({"X": X3, "T": np.array([0, -1, 1], np.int64)}, {}, r"labels must be in \[0, 4\)"),
    ({"X": X3, "T": np.array([0, 1], np.int32)}, {}, r"input 1 'labels'.*expected N = 3"),
    ({"X": X3, "T": np.zeros(3, np.float32)}, {}, "must hold int32 or int64 class indices"),
    ({"X": X3.astype(np.int32), "T": np.zeros(3, np.int32)}, {}, "must be a float tensor"),
    ({"X": X3, "T": np.zeros(3, np.int32), "w": np.ones(2, np.float32)}, {},
     r"input 2 'weight_tensor'.*N = 3 float sample weights"),
    ({"X": X3, "T": np.full((3, 4), 0.5, np.float32)}, {"label_prob": 1}, "must sum to 1"),
    ({"X": X3, "T": np.full((3, 3), 1 / 3, np.float32)}, {"label_prob": 1},
     r"shaped \(N, D\) = \(3, 4\)"),
    ({"X": X3, "T": np.zeros(3, np.int32)}, {"order": "NHWC"}, "argument 'order' must be 'NCHW'"),
    ({"X": X3, "T": np.zeros(3, np.int32)}, {"scale": -1.0}, "argument 'scale' must be >= 0"),
    ({"X": X3, "T": np.zeros(3, np.int32)}, {"axis": 3}, "argument 'axis' = 3 is out of range"),
])
def test_bad_inputs_fail_and_change_nothing(feeds, args, match):
    op = core.CreateOperator("SoftmaxWithLoss", list(feeds), ["P", "loss"], **args)
    fails_unchanged(op, feeds, EnforceError, rf"op SoftmaxWithLoss: .*{match}")


def test_gradient_bad_inputs_fail_and_change_nothing():
    feeds = {"X": X3, "T": np.zeros(3, np.int32), "P": np.zeros((3, 3), np.float32),
             "dl": np.ones((), np.float32)}
    op = core.CreateOperator("SoftmaxWithLossGradient", list(feeds), ["dX"])
    fails_unchanged(op, feeds, EnforceError, r"input 2 'softmax' \(blob 'P'\) is float32\(3, 3\).*float32\(3, 4\)")
    feeds.update(P=X3, dl=np.ones(2, np.float32))
    fails_unchanged(op, feeds, EnforceError, r"input 3 'dloss' \(blob 'dl'\) must be one float")


def ref_spatial(X, labels, weights=None):
    """Legacy spatial=1: softmax per pixel, label -1 ignored, loss over counted pixels."""
    N, D, H, W = X.shape
    P = np.empty(X.shape)
    total, weight_sum = 0.0, 0.0
    for n in range(N):
        for h in range(H):
            for w in range(W):
                x = X[n, :, h, w].astype(np.float64)
                e = np.exp(x - x.max())
                P[n, :, h, w] = e / e.sum()
                label = int(labels[n, h, w])
                if label != -1:
                    wt = 1.0 if weights is None else float(weights[n, h, w])
                    total += wt * -math.log(max(P[n, label, h, w], 1e-20))
                    weight_sum += wt
    return P.astype(X.dtype), np.array(total / weight_sum if weight_sum else 0.0, X.dtype)


@pytest.mark.parametrize("weighted", [False, True])
def test_spatial_mode_matches_reference_and_ignores_minus_one(weighted):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    labels = rng.integers(-1, 4, (2, 3, 3)).astype(np.int32)
    inputs = [X, labels] + ([rng.random((2, 3, 3)).astype(np.float32)] if weighted else [])
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T", "w"][:len(inputs)], ["P", "loss"],
                             spatial=1, scale=3.0)  # the spatial forward ignores scale
    check_reference(op, inputs, ref_spatial, threshold=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_spatial_gradient_by_finite_differences(weighted):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((2, 3, 2, 3))
    labels = np.array([[[0, -1, 2], [1, 1, -1]], [[2, 0, 0], [-1, 1, 2]]], np.int32)
    inputs = [X, labels] + ([rng.random((2, 2, 3)) + 0.5] if weighted else [])
    op = core.CreateOperator("SoftmaxWithLoss", ["X", "T", "w"][:len(inputs)], ["P", "loss"],
                             spatial=1)
    analytic, _ = check_gradient(op, inputs, 0, output_index=1)
    assert not analytic[0, :, 0, 1].any()  # an ignored pixel gets no gradient


def test_spatial_mode_errors():
    X = np.zeros((1, 3, 2, 2), np.float32)
    fails_unchanged(core.CreateOperator("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], spatial=1),
                    {"X": X, "T": np.full((1, 2, 2), 3, np.int32)}, EnforceError,
                    r"labels must be in \[0, 3\) or -1")
    fails_unchanged(core.CreateOperator("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], spatial=1),
                    {"X": X, "T": np.zeros((1, 4), np.int32)}, EnforceError,
                    r"shaped \(N, H, W\) = \(1, 2, 2\)")
    fails_unchanged(core.CreateOperator("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], spatial=1,
                                        label_prob=1),
                    {"X": X, "T": np.zeros((1, 2, 2), np.int32)}, EnforceError,
                    "spatial=1 does not support label_prob=1")


@pytest.mark.parametrize("weighted", [False, True])
def test_spatial_softmax_with_loss_is_the_spatial_mode_as_an_op(weighted):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2, 3, 2, 3))
    labels = rng.integers(-1, 3, (2, 2, 3)).astype(np.int32)
    inputs = [X, labels] + ([rng.random((2, 2, 3)) + 0.5] if weighted else [])
    names = ["X", "T", "w"][:len(inputs)]
    op = core.CreateOperator("SpatialSoftmaxWithLoss", names, ["P", "loss"])
    check_reference(op, inputs, ref_spatial, threshold=1e-8)
    check_gradient(op, inputs, 0, output_index=1)
    grad_ops, _ = get_gradient_for_op(op, [None, "loss_grad"])
    assert [(o.type, list(o.input)) for o in grad_ops] == [
        ("SpatialSoftmaxWithLossGradient", names + ["P", "loss_grad"])]
    all_ignored = np.full((2, 2, 3), -1, np.int32)
    check_reference(op, [X, all_ignored] + inputs[2:],
                    lambda X, T, *w: (ref_spatial(X, T)[0], np.array(0.0)))
