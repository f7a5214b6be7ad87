"""DeformConv (+ gradient) against a loop over output positions and kernel taps written
here from the deformable-convolution definition (bilinear reads at the moved taps),
and against Conv where the offsets are zero; gradients by finite differences."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference, run_op


def _bilinear(image, h, w):
    height, width = image.shape
    if not (0 <= h < height and 0 <= w < width):
        return 0.0
    h0, w0 = int(np.floor(h)), int(np.floor(w))
    if h0 >= height - 1:
        h0, h = height - 1, float(height - 1)
    if w0 >= width - 1:
        w0, w = width - 1, float(width - 1)
    h1, w1 = min(h0 + 1, height - 1), min(w0 + 1, width - 1)
    lh, lw = h - h0, w - w0
    return ((1 - lh) * (1 - lw) * image[h0, w0] + (1 - lh) * lw * image[h0, w1]
            + lh * (1 - lw) * image[h1, w0] + lh * lw * image[h1, w1])


def _reference(kernel, stride, pad, dilation, group, dgroup):
    def ref(x, offset, w, b=None):
        n, c, height, width = x.shape
        m = w.shape[0]
        out_h, out_w = offset.shape[2:]
        y = np.zeros((n, m, out_h, out_w))
        for img in range(n):
            for oc in range(m):
                g = oc // (m // group)
                for oh in range(out_h):
                    for ow in range(out_w):
                        total = 0.0
                        for cc in range(c // group):
                            ch = g * (c // group) + cc
                            d = ch // (c // dgroup)
                            for i in range(kernel):
                                for j in range(kernel):
                                    tap = i * kernel + j
                                    dh = offset[img, d * 2 * kernel * kernel + 2 * tap, oh, ow]
                                    dw = offset[img, d * 2 * kernel * kernel + 2 * tap + 1,
                                                oh, ow]
                                    h = oh * stride - pad + i * dilation + dh
                                    wpos = ow * stride - pad + j * dilation + dw
                                    total += w[oc, cc, i, j] * _bilinear(x[img, ch], h, wpos)
                        y[img, oc, oh, ow] = total + (b[oc] if b is not None else 0)
        return [y.astype(np.float32)]
    return ref


def _case(rng, n=1, c=4, size=5, m=4, kernel=3, stride=1, pad=1, dilation=1, group=1,
          dgroup=1, scale=1.5):
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    offset = (rng.standard_normal((n, 2 * kernel * kernel * dgroup, out, out)) * scale) \
        .astype(np.float32)
    w = rng.standard_normal((m, c // group, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    return x, offset, w, b


CASES = [dict(), dict(stride=2, pad=0, kernel=2, size=6), dict(group=2, dgroup=2),
         dict(dilation=2, pad=2, dgroup=4, n=2, scale=3.0)]


@pytest.mark.parametrize("case", CASES)
def test_matches_the_tap_loops(case):
    x, offset, w, b = _case(np.random.default_rng(0), **case)
    args = dict(kernel=case.get("kernel", 3), stride=case.get("stride", 1),
                pad=case.get("pad", 1), dilation=case.get("dilation", 1),
                group=case.get("group", 1), deformable_group=case.get("dgroup", 1))
    op = core.CreateOperator("DeformConv", ["x", "offset", "w", "b"], ["y"], **args)
    check_reference(op, [x, offset, w, b], _reference(
        args["kernel"], args["stride"], args["pad"], args["dilation"], args["group"],
        args["deformable_group"]), threshold=1e-4, atol=1e-4)


def test_zero_offsets_are_conv():
    x, offset, w, b = _case(np.random.default_rng(1), n=2)
    offset[:] = 0
    y, = run_op(core.CreateOperator("DeformConv", ["x", "o", "w", "b"], ["y"], kernel=3,
                                    pad=1), [x, offset, w, b])
    expected, = run_op(core.CreateOperator("Conv", ["x", "w", "b"], ["y"], kernel=3, pad=1),
                       [x, w, b])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [dict(), dict(group=2, dgroup=2, stride=2)])
def test_gradients(case):
    x, offset, w, b = _case(np.random.default_rng(2), c=2 * case.get("group", 1), m=2,
                            size=4, **case)
    args = dict(kernel=3, pad=1, stride=case.get("stride", 1), group=case.get("group", 1),
                deformable_group=case.get("dgroup", 1))
    op = core.CreateOperator("DeformConv", ["x", "offset", "w", "b"], ["y"], **args)
    for i in range(4):
        check_gradient(op, [x, offset, w, b], i, stepsize=1e-3, threshold=2e-2)


def test_gradient_op_layout_without_bias():
    op = core.CreateOperator("DeformConv", ["x", "o", "w"], ["y"], kernel=3, pad=1)
    grad_ops, grads = core.GradientRegistry.GetGradientForOp(op, ["y_grad"])
    assert list(grad_ops[0].output) == ["o_grad", "w_grad", "x_grad"]
    assert grads == ["x_grad", "o_grad", "w_grad"]
    x, offset, w, _ = _case(np.random.default_rng(3), size=4, c=2, m=2)
    d_offset, d_w, d_x = run_op(grad_ops[0], [x, offset, w, np.ones((1, 2, 4, 4), np.float32)])
    assert d_offset.shape == offset.shape and d_w.shape == w.shape and d_x.shape == x.shape


@pytest.mark.parametrize("change, match", [
    (lambda i: i.__setitem__(1, i[1][:, :9]), "input 1 .*\\(N, 2 \\* kernel_h"),
    (lambda i: i.__setitem__(2, i[2][:, :3]), "input 2 .*input channels does not match"),
    (lambda i: i.__setitem__(0, i[0].astype(np.float64)), "input 0 .*float32")])
def test_bad_inputs(change, match):
    inputs = list(_case(np.random.default_rng(4)))
    change(inputs)
    for name, value in zip(["x", "o", "w", "b"], inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("DeformConv", ["x", "o", "w", "b"],
                                                      ["y"], kernel=3, pad=1))
    assert not workspace.HasBlob("y")


def test_unequal_pads_are_refused():
    for name, value in zip(["x", "o", "w"], _case(np.random.default_rng(5))[:3]):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="pads must be equal"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "DeformConv", ["x", "o", "w"], ["y"], kernel=3, pad_t=1, pad_b=1, pad_l=0,
            pad_r=2))
