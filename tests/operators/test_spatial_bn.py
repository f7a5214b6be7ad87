"""SpatialBN / SpatialBNGradient against per-channel loops written here from Caffe2's semantics."""

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run, run

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, GradientError
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_gradient, check_reference


def channels_last(X, order):
    """X with its channel axis moved last, in float64: the reference works per channel."""
    return np.moveaxis(X.astype(np.float64), 1, -1) if order == "NCHW" else X.astype(np.float64)


def from_channels_last(Y, order, dtype):
    return (np.moveaxis(Y, -1, 1) if order == "NCHW" else Y).astype(dtype)


def ref_inference(X, scale, bias, mean, var, eps=1e-5, order="NCHW"):
    Xc = channels_last(X, order)
    Y = np.empty_like(Xc)
    for c in range(Xc.shape[-1]):
        Y[..., c] = (Xc[..., c] - mean[c]) / np.sqrt(var[c] + eps) * scale[c] + bias[c]
    return from_channels_last(Y, order, X.dtype)


def ref_training(X, scale, bias, running_mean, running_var, eps=1e-5, momentum=0.9,
                 order="NCHW"):
    """(Y, new running mean, new running var, batch mean, 1/sqrt(batch var + eps))."""
    Xc = channels_last(X, order)
    C = Xc.shape[-1]
    Y = np.empty_like(Xc)
    mean, var, unbiased = np.empty(C), np.empty(C), np.empty(C)
    for c in range(C):
        values = Xc[..., c].ravel()
        mean[c] = values.sum() / values.size
        var[c] = ((values - mean[c]) ** 2).sum() / values.size
        unbiased[c] = ((values - mean[c]) ** 2).sum() / (values.size - 1)
        Y[..., c] = (Xc[..., c] - mean[c]) / np.sqrt(var[c] + eps) * scale[c] + bias[c]
    return (from_channels_last(Y, order, X.dtype),
            running_mean * momentum + mean * (1 - momentum),
            running_var * momentum + unbiased * (1 - momentum),
            mean, 1 / np.sqrt(var + eps))


def params(C, rng, dtype=np.float32):
    return [rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype),
            rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)]


SHAPES = [((2, 3, 4, 5), "NCHW"), ((2, 4, 5, 3), "NHWC"), ((6, 3), "NCHW"), ((6, 3), "NHWC"),
          ((2, 3, 7), "NCHW"), ((2, 2, 3, 2, 3), "NHWC")]


@pytest.mark.parametrize("shape, order", SHAPES)
def test_inference_matches_reference(shape, order):
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape).astype(np.float32)
    C = shape[1] if order == "NCHW" else shape[-1]
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], ["Y"], is_test=1,
                             order=order, epsilon=1e-3)
    check_reference(op, [X, *params(C, rng)],
                    lambda *a: (ref_inference(*a, eps=1e-3, order=order),), threshold=1e-5)


def test_defaults_are_training_nchw_eps_1e5_momentum_09():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    s, b, m, v = params(2, rng)
    got = run("SpatialBN", {"X": X, "s": s, "b": b, "m": m, "v": v}, ["Y", "m", "v", "sm", "sv"])
    for g, e in zip(got, ref_training(X, s, b, m.astype(np.float64), v.astype(np.float64))):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert all(g.dtype == np.float32 for g in got)


@pytest.mark.parametrize("shape, order", SHAPES)
def test_running_statistics_over_several_training_steps(shape, order):
    rng = np.random.default_rng(2)
    C = shape[1] if order == "NCHW" else shape[-1]
    s, b, m, v = params(C, rng)
    ref_m, ref_v = m.astype(np.float64), v.astype(np.float64)
    workspace.FeedBlob("m", m)
    workspace.FeedBlob("v", v)
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], ["Y", "m", "v", "sm", "sv"],
                             order=order, momentum=0.7, epsilon=1e-4)
    for step in range(4):
        X = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        for name, value in {"X": X, "s": s, "b": b}.items():
            workspace.FeedBlob(name, value)
        workspace.RunOperatorOnce(op)
        Y, ref_m, ref_v, mean, rstd = ref_training(X, s, b, ref_m, ref_v, 1e-4, 0.7, order)
        np.testing.assert_allclose(workspace.FetchBlob("Y"), Y, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(workspace.FetchBlob("m"), ref_m, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(workspace.FetchBlob("v"), ref_v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(workspace.FetchBlob("sm"), mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(workspace.FetchBlob("sv"), rstd, rtol=1e-5, atol=1e-5)


def test_uninitialised_running_blobs_start_from_zero():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    s, b, _, _ = params(3, rng)
    empty = np.zeros(0, np.float32)
    _, m, v, _, _ = run("SpatialBN", {"X": X, "s": s, "b": b, "m": empty, "v": empty},
                        ["Y", "m", "v", "sm", "sv"], momentum=0.5)
    _, ref_m, ref_v, _, _ = ref_training(X, s, b, np.zeros(3), np.zeros(3), momentum=0.5)
    np.testing.assert_allclose(m, ref_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, ref_v, rtol=1e-5, atol=1e-6)


def test_num_batches_takes_moments_from_sums_and_sumsq():
    rng = np.random.default_rng(4)
    batches = [rng.standard_normal((3, 2, 2, 2)).astype(np.float32) for _ in range(2)]
    whole = np.concatenate(batches)
    sums = whole.sum(axis=(0, 2, 3)).astype(np.float32)
    sumsq = (whole.astype(np.float64) ** 2).sum(axis=(0, 2, 3)).astype(np.float32)
    s, b, m, v = params(2, rng)
    got = run("SpatialBN", {"X": batches[0], "s": s, "b": b, "m": m, "v": v, "sums": sums,
                            "sumsq": sumsq}, ["Y", "m", "v", "sm", "sv"], num_batches=2)
    # the moments of both batches, applied to the first one
    _, ref_m, ref_v, mean, rstd = ref_training(whole, s, b, m.astype(np.float64),
                                               v.astype(np.float64))
    Xc = batches[0].astype(np.float64)
    Y = (Xc - mean[:, None, None]) * (rstd * s)[:, None, None] + b[:, None, None]
    for g, e in zip(got, [Y, ref_m, ref_v, mean, rstd]):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_empty_batch_gives_zero_saved_moments_and_keeps_running_ones():
    rng = np.random.default_rng(5)
    s, b, m, v = params(3, rng)
    Y, m2, v2, sm, sv = run("SpatialBN", {"X": np.zeros((0, 3, 2, 2), np.float32), "s": s,
                                          "b": b, "m": m, "v": v}, ["Y", "m", "v", "sm", "sv"])
    assert Y.shape == (0, 3, 2, 2)
    np.testing.assert_array_equal(m2, m)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(sm, np.zeros(3))
    np.testing.assert_array_equal(sv, np.zeros(3))


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_training_gradient_by_finite_differences(order, index):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 2, 3, 2) if order == "NCHW" else (3, 3, 2, 2))
    s, b, m, v = (p.astype(np.float64) for p in params(2, rng))
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], ["Y", "m", "v", "sm", "sv"],
                             order=order)
    check_gradient(op, [X, s, b, m, v], index, threshold=1e-4)


def test_gradient_matches_the_textbook_formula():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 3, 2, 2))
    dY = rng.standard_normal(X.shape)
    scale = rng.standard_normal(3)
    mean = X.mean(axis=(0, 2, 3))
    rstd = 1 / np.sqrt(X.var(axis=(0, 2, 3)) + 1e-5)

    def ref(X, scale, dY, mean, rstd):
        dX, dscale, dbias = np.empty_like(X), np.empty(3), np.empty(3)
        for c in range(3):
            xhat = (X[:, c] - mean[c]) * rstd[c]
            dbias[c] = dY[:, c].sum()
            dscale[c] = (dY[:, c] * xhat).sum()
            M = xhat.size
            dX[:, c] = scale[c] * rstd[c] / M * (M * dY[:, c] - dbias[c] - xhat * dscale[c])
        return dX, dscale, dbias

    op = core.CreateOperator("SpatialBNGradient", ["X", "s", "dY", "sm", "sv"],
                             ["dX", "ds", "db"])
    check_reference(op, [X, scale, dY, mean, rstd], ref, threshold=1e-9)


def test_multi_batch_gradient_uses_the_aggregated_sums():
    rng = np.random.default_rng(8)
    X, dY = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    scale, mean = rng.standard_normal(3), X.mean(axis=(0, 2, 3))
    rstd = 1 / np.sqrt(X.var(axis=(0, 2, 3)) + 1e-5)
    single = run("SpatialBNGradient", {"X": X, "s": scale, "dY": dY, "sm": mean, "sv": rstd},
                 ["dX", "ds", "db"])
    # with the sums of 2 identical batches, the averages equal the single-batch gradients
    doubled = run("SpatialBNGradient", {"X": X, "s": scale, "dY": dY, "sm": mean, "sv": rstd,
                                        "ds_sum": 2 * single[1], "db_sum": 2 * single[2]},
                  ["dX", "ds", "db"], num_batches=2)
    for g, e in zip(doubled, single):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args, n_in, n_out, expected", [
    ({}, 5, 5, ["X", "s", "Y_grad", "sm", "sv"]),
    ({"is_test": 1}, 5, 1, ["X", "s", "Y_grad", "m", "v"]),
    ({"num_batches": 2}, 7, 5, ["X", "s", "Y_grad", "sm", "sv", "s_grad", "b_grad"]),
])
def test_gradient_op_layout_is_caffe2s(args, n_in, n_out, expected):
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v", "sums", "sumsq"][:n_in],
                             ["Y", "m", "v", "sm", "sv"][:n_out], **args)
    g_output = ["Y_grad"] + [None] * (n_out - 1)
    grad_ops, g_input = get_gradient_for_op(op, g_output)
    assert [o.type for o in grad_ops] == ["SpatialBNGradient"]
    assert list(grad_ops[0].input) == expected
    assert list(grad_ops[0].output) == ["X_grad", "s_grad", "b_grad"]
    assert g_input == ["X_grad", "s_grad", "b_grad"] + [None] * (n_in - 3)


def test_gradient_maker_rejects_a_mode_with_the_wrong_blobs():
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], ["Y"])  # training, 1 output
    with pytest.raises(GradientError, match="needs 5 inputs and 5 outputs"):
        get_gradient_for_op(op, ["Y_grad"])


@pytest.mark.parametrize("is_test, order", [(1, "NCHW"), (0, "NCHW"), (0, "NHWC")])
def test_shape_inference_matches_a_run(is_test, order):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((2, 3, 4, 3)).astype(np.float32)
    C = 3
    s, b, m, v = params(C, rng)
    outputs = ["Y"] if is_test else ["Y", "m", "v", "sm", "sv"]
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], outputs, is_test=is_test,
                             order=order)
    inferred_matches_run(op, {"X": X, "s": s, "b": b, "m": m, "v": v})
    dY = rng.standard_normal(X.shape).astype(np.float32)
    grad = core.CreateOperator("SpatialBNGradient", ["X", "s", "dY", "m", "v"],
                               ["dX", "ds", "db"], order=order)
    inferred_matches_run(grad, {"dY": dY})


def _feeds(X=None, C=3, **override):
    rng = np.random.default_rng(10)
    s, b, m, v = params(C, rng)
    feeds = {"X": np.ones((2, 3, 2, 2), np.float32) if X is None else X,
             "s": s, "b": b, "m": m, "v": v}
    feeds.update(override)
    return feeds


@pytest.mark.parametrize("feeds, args, outputs, match", [
    (_feeds(s=np.ones(4, np.float32)), {}, 5, r"input 1 'scale' \(blob 's'\) has 4 values.*C = 3"),
    (_feeds(b=np.ones(2, np.float32)), {"is_test": 1}, 1, r"input 2 'bias'.*C = 3"),
    (_feeds(v=np.ones(2, np.float32)), {"is_test": 1}, 1, r"input 4 'var'.*C = 3"),
    (_feeds(X=np.ones(3, np.float32)), {"is_test": 1}, 1, r"input 0 'X'.*rank >= 2"),
    (_feeds(X=np.ones((2, 3, 2), np.int32)), {}, 5, "must be a float tensor, got int32"),
    (_feeds(s=np.ones(3, np.float64)), {}, 5, "has dtype float64, expected X's dtype float32"),
    (_feeds(), {"order": "NCWH"}, 5, "argument 'order' must be 'NCHW' or 'NHWC'"),
    (_feeds(), {"epsilon": 0.0}, 5, "argument 'epsilon' must be > 0"),
    (_feeds(), {"momentum": 1.5}, 5, r"argument 'momentum' must be in \[0, 1\]"),
    (_feeds(), {"is_test": 1}, 5, r"with is_test=1 SpatialBN has 1 output\(s\), got 5"),
    (_feeds(), {}, 1, r"with is_test=0 SpatialBN has 5 output\(s\), got 1"),
    (_feeds(), {"num_batches": 2}, 5, "num_batches=2 needs the sums and sumsq inputs"),
])
def test_bad_inputs_fail_naming_the_blob_and_change_nothing(feeds, args, outputs, match):
    names = ["Y", "m", "v", "sm", "sv"][:outputs]
    op = core.CreateOperator("SpatialBN", ["X", "s", "b", "m", "v"], names, **args)
    fails_unchanged(op, feeds, EnforceError, rf"op SpatialBN: .*{match}")


def test_gradient_bad_inputs_fail_and_change_nothing():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    feeds = {"X": X, "s": np.ones(3, np.float32), "dY": np.ones((2, 3, 2, 1), np.float32),
             "sm": np.zeros(3, np.float32), "sv": np.ones(3, np.float32)}
    op = core.CreateOperator("SpatialBNGradient", list(feeds), ["dX", "ds", "db"])
    fails_unchanged(op, feeds, EnforceError, r"input 2 'dY'.*expected X's float32\(2, 3, 2, 2\)")
    feeds["dY"] = np.ones(X.shape, np.float32)
    feeds["sv"] = np.ones(5, np.float32)
    fails_unchanged(op, feeds, EnforceError, r"input 4 'saved_inv_std'.*C = 3")


def test_float16_moments_are_summed_in_float32():
    rng = np.random.default_rng(12)
    X = (rng.standard_normal((64, 2, 16, 16)) + 8).astype(np.float16)  # 32768 values/channel
    s, b = np.ones(2, np.float16), np.zeros(2, np.float16)
    m, v = np.zeros(2, np.float16), np.ones(2, np.float16)
    _, _, _, mean, rstd = run("SpatialBN", {"X": X, "s": s, "b": b, "m": m, "v": v},
                              ["Y", "m", "v", "sm", "sv"])
    X64 = X.astype(np.float64)
    assert mean.dtype == np.float16
    np.testing.assert_allclose(mean, X64.mean(axis=(0, 2, 3)), rtol=2e-3)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(X64.var(axis=(0, 2, 3)) + 1e-5), rtol=5e-3)
