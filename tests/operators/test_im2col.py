"""Im2Col / Col2Im against a loop over output positions and kernel offsets."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.testing import check_gradient
from helpers import run_op


def im2col_reference(x, k, stride, pad, dilation):
    n, c, h, w = x.shape
    oh = (h + 2 * pad - (dilation * (k - 1) + 1)) // stride + 1
    ow = (w + 2 * pad - (dilation * (k - 1) + 1)) // stride + 1
    out = np.zeros((n, c * k * k, oh, ow), x.dtype)
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                for y in range(oh):
                    for z in range(ow):
                        r, s = y * stride - pad + i * dilation, z * stride - pad + j * dilation
                        if 0 <= r < h and 0 <= s < w:
                            out[:, (ci * k + i) * k + j, y, z] = x[:, ci, r, s]
    return out


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(1, 2),
       st.integers(4, 6), st.integers(1, 2))
def test_im2col_both_orders(k, stride, pad, dilation, size, channels):
    if size < dilation * (k - 1) + 1:
        return
    x = np.random.default_rng(size).standard_normal((2, channels, size, size - 1 + 1))
    args = dict(kernel=k, stride=stride, pad=pad, dilation=dilation)
    want = im2col_reference(x, k, stride, pad, dilation)
    (col,) = run_op("Im2Col", {"x": x}, "c", order="NCHW", **args)
    np.testing.assert_allclose(col, want)
    (col_nhwc,) = run_op("Im2Col", {"x": x.transpose(0, 2, 3, 1)}, "c2", order="NHWC", **args)
    oh, ow = want.shape[2:]
    np.testing.assert_allclose(
        col_nhwc.reshape(2, oh, ow, k, k, channels).transpose(0, 5, 3, 4, 1, 2),
        want.reshape(2, channels, k, k, oh, ow))
    # Col2Im is Im2Col's adjoint: <Im2Col(x), c> == <x, Col2Im(c)>
    probe = np.random.default_rng(1).standard_normal(col.shape)
    (back,) = run_op("Col2Im", {"p": probe, "x": x}, "b", order="NCHW", **args)
    np.testing.assert_allclose((want * probe).sum(), (x * back).sum(), rtol=1e-9)
    (back_nhwc,) = run_op("Col2Im", {"p2": probe.reshape(2, channels, k, k, oh, ow)
                                     .transpose(0, 4, 5, 2, 3, 1).copy(),
                                     "x2": x.transpose(0, 2, 3, 1)}, "b2", order="NHWC", **args)
    np.testing.assert_allclose(back_nhwc.transpose(0, 3, 1, 2), back)


def test_im2col_gradient():
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    check_gradient(core.CreateOperator("Im2Col", ["x"], ["y"], kernel=3, pad=1, stride=2), [x], 0)
