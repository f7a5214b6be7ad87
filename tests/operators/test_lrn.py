"""LRN / LRNGradient against a loop over channels written here from Caffe2's formula."""

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_gradient, check_reference


def ref_lrn(X, size, alpha, beta, bias=1.0, order="NCHW"):
    """(Y, scale): scale_c = bias + alpha/size * sum of x^2 over channels
    c - (size-1)//2 .. c - (size-1)//2 + size - 1 that exist."""
    Xc = np.moveaxis(X.astype(np.float64), 1, -1) if order == "NCHW" else X.astype(np.float64)
    C, pre_pad = Xc.shape[-1], (size - 1) // 2
    scale = np.empty_like(Xc)
    for c in range(C):
        lo, hi = max(0, c - pre_pad), min(C, c - pre_pad + size)
        scale[..., c] = bias + alpha / size * (Xc[..., lo:hi] ** 2).sum(axis=-1)
    Y = Xc * scale ** -beta
    back = (lambda a: np.moveaxis(a, -1, 1)) if order == "NCHW" else (lambda a: a)
    return back(Y).astype(X.dtype), back(scale).astype(X.dtype)


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("size, alpha, beta, bias", [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.5, 2.0),
                                                     (1, 0.3, 1.0, 1.0), (4, 0.2, 0.6, 1.5),
                                                     (11, 0.1, 0.75, 1.0)])
def test_matches_reference(order, size, alpha, beta, bias):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 7, 3, 4) if order == "NCHW" else (2, 3, 4, 7)).astype(np.float32)
    op = core.CreateOperator("LRN", ["X"], ["Y", "scale"], size=size, alpha=alpha, beta=beta,
                             bias=bias, order=order)
    Y, scale = check_reference(op, [X], lambda X: ref_lrn(X, size, alpha, beta, bias, order),
                               threshold=1e-5)
    assert Y.dtype == scale.dtype == np.float32


def test_bias_defaults_to_1_and_scale_output_is_optional():
    X = np.random.default_rng(1).standard_normal((1, 4, 2, 2)).astype(np.float32)
    op = core.CreateOperator("LRN", ["X"], ["Y"], size=3, alpha=0.5, beta=0.75)
    check_reference(op, [X], lambda X: ref_lrn(X, 3, 0.5, 0.75)[:1], threshold=1e-5)


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("size", [3, 4, 5])
def test_gradient_by_finite_differences(order, size):
    X = np.random.default_rng(2).standard_normal((2, 6, 2, 3) if order == "NCHW" else (2, 2, 3, 6))
    op = core.CreateOperator("LRN", ["X"], ["Y"], size=size, alpha=0.8, beta=0.75, bias=1.5,
                             order=order)
    check_gradient(op, [X], 0)


def test_gradient_layout_is_caffe2s():
    op = core.CreateOperator("LRN", ["X"], ["Y", "s"], size=5, alpha=1e-4, beta=0.75)
    grad_ops, g_input = get_gradient_for_op(op, ["Y_grad", None])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("LRNGradient", ["X", "Y", "Y_grad"], ["X_grad"])]
    assert {a.name for a in grad_ops[0].arg} >= {"size", "alpha", "beta"}
    assert g_input == ["X_grad"]


def test_shape_inference_matches_a_run():
    X = np.random.default_rng(3).standard_normal((1, 5, 2, 2)).astype(np.float32)
    op = core.CreateOperator("LRN", ["X"], ["Y", "s"], size=3, alpha=0.1, beta=0.5)
    inferred_matches_run(op, {"X": X})
    grad = core.CreateOperator("LRNGradient", ["X", "Y", "Y"], ["dX"], size=3, alpha=0.1,
                               beta=0.5)
    inferred_matches_run(grad, {})


@pytest.mark.parametrize("feeds, args, match", [
    ({"X": np.ones((2, 3, 4), np.float32)}, {"size": 3}, r"input 0 'X'.*must be 4-D"),
    ({"X": np.ones((1, 3, 2, 2), np.int32)}, {"size": 3}, "must be a float tensor"),
    ({"X": np.ones((1, 3, 2, 2), np.float32)}, {}, "argument 'size' must be >= 1, got 0"),
    ({"X": np.ones((1, 3, 2, 2), np.float32)}, {"size": 3, "order": "CHWN"},
     "argument 'order' must be 'NCHW' or 'NHWC'"),
])
def test_bad_inputs_fail_and_change_nothing(feeds, args, match):
    op = core.CreateOperator("LRN", ["X"], ["Y", "s"], **args)
    fails_unchanged(op, feeds, EnforceError, rf"op LRN: .*{match}")


def test_gradient_bad_inputs_fail_and_change_nothing():
    X = np.ones((1, 3, 2, 2), np.float32)
    feeds = {"X": X, "Y": X, "dY": np.ones((1, 3, 2, 1), np.float32)}
    op = core.CreateOperator("LRNGradient", ["X", "Y", "dY"], ["dX"], size=3)
    fails_unchanged(op, feeds, EnforceError, r"input 2 'dY'.*expected X's float32\(1, 3, 2, 2\)")


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
@pytest.mark.parametrize("size", [17, 24, 45, 10**12])  # wider than the shifted-add limit
def test_wide_windows_match_reference(order, size):
    X = np.random.default_rng(4).standard_normal((1, 40, 2, 2) if order == "NCHW"
                                                 else (1, 2, 2, 40)).astype(np.float32)
    op = core.CreateOperator("LRN", ["X"], ["Y", "scale"], size=size, alpha=2.0, beta=0.75,
                             order=order)
    check_reference(op, [X], lambda X: ref_lrn(X, min(size, 200), 2.0 * min(size, 200) / size,
                                               0.75, 1.0, order), threshold=1e-5)


def test_wide_window_gradient_by_finite_differences():
    X = np.random.default_rng(5).standard_normal((1, 30, 2, 1))
    op = core.CreateOperator("LRN", ["X"], ["Y"], size=20, alpha=3.0, beta=0.75)
    check_gradient(op, [X], 0)
