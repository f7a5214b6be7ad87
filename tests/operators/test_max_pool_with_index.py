"""MaxPoolWithIndex and its gradient against a loop over windows written from Caffe2's
CUDA kernel (max_pool_with_index.cu): first strict maximum over -FLT_MAX, the index
h * W + w inside the image, the gradient scattered to those indices."""

from __future__ import annotations

import numpy as np
import pytest
from device_utils import requires_cuda, run_on

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError
from caffe2lite.testing import check_gradient, check_reference
from helpers import assert_unchanged, snapshot

FLT_MAX = np.finfo(np.float32).max


def pool_ref(x, kernel, stride, pads):
    """The CUDA kernel's loop, one output element at a time."""
    n, c, h, w = x.shape
    kh, kw = kernel
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - kh) // stride + 1
    ow = (w + pl + pr - kw) // stride + 1
    y = np.empty((n, c, oh, ow), x.dtype)
    index = np.empty((n, c, oh, ow), np.int32)
    for i in np.ndindex(n, c, oh, ow):
        b, ch, ph, pw = i
        best, where = -FLT_MAX, -1
        for hh in range(max(ph * stride - pt, 0), min(ph * stride - pt + kh, h)):
            for ww in range(max(pw * stride - pl, 0), min(pw * stride - pl + kw, w)):
                if np.float32(x[b, ch, hh, ww]) > best:
                    best, where = np.float32(x[b, ch, hh, ww]), hh * w + ww
        y[i], index[i] = best, where
    return y, index.reshape(-1)


def grad_ref(x, dy, index):
    dx = np.zeros(x.shape, np.float64)
    flat = dx.reshape(x.shape[0] * x.shape[1], -1)
    for image, (ids, grads) in enumerate(zip(index.reshape(flat.shape[0], -1),
                                             dy.reshape(flat.shape[0], -1))):
        for k, g in zip(ids, grads):
            if k >= 0:
                flat[image, k] += g
    return dx.astype(x.dtype)


@pytest.mark.parametrize("kernel,stride,pads", [((2, 2), 2, (0, 0, 0, 0)),
                                                ((3, 3), 1, (1, 1, 1, 1)),
                                                ((3, 2), 2, (0, 1, 1, 0))])
def test_forward_and_gradient_match_the_cuda_kernel(kernel, stride, pads):
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (2, 3, 6, 5)).astype(np.float32)  # many ties
    x[0, 0, 0, :] = -np.inf
    x[1, 2, 3, 1] = np.nan
    args = dict(kernel_h=kernel[0], kernel_w=kernel[1], stride=stride, pad_t=pads[0],
                pad_l=pads[1], pad_b=pads[2], pad_r=pads[3])
    op = core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "index"], **args)
    y, index = check_reference(op, [x], lambda x: pool_ref(x, kernel, stride, pads))
    assert index.dtype == np.int32 and y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grad = core.CreateOperator("MaxPoolWithIndexGradient", ["x", "dy", "index"], ["dx"], **args)
    check_reference(grad, [x, dy, index], lambda x, dy, i: (grad_ref(x, dy, i),))


def test_an_empty_batch():
    x = np.zeros((0, 2, 4, 4), np.float32)
    op = core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "index"], kernel=2, stride=2)
    y, index = check_reference(op, [x], lambda x: pool_ref(x, (2, 2), 2, (0, 0, 0, 0)))
    grad = core.CreateOperator("MaxPoolWithIndexGradient", ["x", "dy", "index"], ["dx"],
                               kernel=2, stride=2)
    check_reference(grad, [x, y, index], lambda x, dy, i: (x,))


def test_windows_of_padding_nan_and_minus_inf_give_minus_flt_max_and_index_minus_one():
    x = np.array([[[[np.nan, -np.inf], [np.inf, 1.0]]]], np.float32)
    op = core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "index"], kernel=1, stride=1)
    check_reference(op, [x], lambda x: (np.array([[[[-FLT_MAX, -FLT_MAX], [np.inf, 1.0]]]],
                                                 np.float32), np.array([-1, -1, 2, 3])))


def test_float16_and_the_numerical_gradient():
    rng = np.random.default_rng(0)
    x = rng.permutation(48).reshape(1, 3, 4, 4).astype(np.float16)  # distinct values
    op = core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "index"], kernel=2, stride=2)
    check_reference(op, [x], lambda x: pool_ref(x, (2, 2), 2, (0, 0, 0, 0)))
    check_gradient(op, [x.astype(np.float32) / 7], 0)  # through the registered gradient


@pytest.mark.parametrize("x, args, match", [
    (np.ones((1, 2, 4, 4), np.float32), dict(kernel=2, order="NHWC"), "only NCHW"),
    (np.ones((2, 4, 4), np.float32), dict(kernel=2), "4-D"),
    (np.ones((1, 1, 4, 4), np.float64), dict(kernel=2), "float32 or float16"),
])
def test_refusals_change_nothing(x, args, match):
    workspace.FeedBlob("x", x)
    before = snapshot()
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "i"],
                                                      **args))
    assert_unchanged(before)


def test_gradient_refuses_indices_outside_the_image():
    workspace.FeedBlob("x", np.ones((1, 1, 2, 2), np.float32))
    workspace.FeedBlob("dy", np.ones((1, 1, 1, 1), np.float32))
    workspace.FeedBlob("i", np.array([4], np.int32))
    with pytest.raises(Caffe2LiteError, match="outside"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "MaxPoolWithIndexGradient", ["x", "dy", "i"], ["dx"], kernel=2))


@requires_cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (2, 3, 7, 6)).astype(np.float32)
    args = dict(kernel=3, stride=2, pad=1)
    op = core.CreateOperator("MaxPoolWithIndex", ["x"], ["y", "index"], **args)
    cpu, cpu_error = run_on(op, {"x": x}, "CPU", ["y", "index"])
    gpu, gpu_error = run_on(op, {"x": x}, "CUDA", ["y", "index"])
    assert cpu_error is None and gpu_error is None, (cpu_error, gpu_error)
    for name in ("y", "index"):
        np.testing.assert_array_equal(gpu[name], cpu[name], err_msg=name)
    feeds = {"x": x, "dy": rng.standard_normal(cpu["y"].shape).astype(np.float32),
             "index": cpu["index"]}
    grad = core.CreateOperator("MaxPoolWithIndexGradient", list(feeds), ["dx"], **args)
    cpu, cpu_error = run_on(grad, feeds, "CPU", ["dx"])
    gpu, gpu_error = run_on(grad, feeds, "CUDA", ["dx"])
    assert cpu_error is None and gpu_error is None, (cpu_error, gpu_error)
    np.testing.assert_allclose(gpu["dx"], cpu["dx"], rtol=1e-6)
