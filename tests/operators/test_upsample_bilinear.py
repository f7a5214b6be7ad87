"""UpsampleBilinear and its gradient against a direct loop written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def ref_upsample(x, hs, ws):
    n, c, h, w = x.shape
    oh, ow = int(np.float32(h) * np.float32(hs)), int(np.float32(w) * np.float32(ws))
    rh = (h - 1) / (oh - 1) if oh > 1 else 0.0
    rw = (w - 1) / (ow - 1) if ow > 1 else 0.0
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        r = rh * i
        h0 = int(r)
        h1 = min(h0 + 1, h - 1)
        for j in range(ow):
            s = rw * j
            w0 = int(s)
            w1 = min(w0 + 1, w - 1)
            a, b = r - h0, s - w0
            y[:, :, i, j] = ((1 - a) * ((1 - b) * x[:, :, h0, w0] + b * x[:, :, h0, w1])
                             + a * ((1 - b) * x[:, :, h1, w0] + b * x[:, :, h1, w1]))
    return y.astype(np.float32)


@pytest.mark.parametrize("shape, hs, ws", [((2, 3, 5, 4), 2.0, 1.5), ((1, 1, 1, 6), 3.0, 0.5),
                                           ((1, 2, 4, 4), 1.0, 1.0), ((1, 1, 3, 3), 3.7, 2.2)])
def test_upsample_and_gradient(shape, hs, ws):
    x = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    for op, inputs in (
            (core.CreateOperator("UpsampleBilinear", ["x"], ["y"], height_scale=hs,
                                 width_scale=ws), [x]),
            (core.CreateOperator("UpsampleBilinear", ["x", "s"], ["y"]),
             [x, np.array([hs, ws], np.float32)])):
        check_reference(op, inputs, lambda x, *s: [ref_upsample(x, hs, ws)], threshold=1e-5)
        check_gradient(op, inputs, 0, threshold=1e-2, stepsize=0.05)


def test_gradient_op_layout():
    net = core.Net("up")
    net.UpsampleBilinear(["x", "s"], ["y"])
    net.AddGradientOperators({"y": "y_grad"})
    grad = net.Proto().op[-1]
    assert list(grad.input) == ["y_grad", "x", "s"] and list(grad.output) == ["x_grad"]


@pytest.mark.parametrize("inputs, args, match", [
    ([np.zeros((2, 2, 2), np.float32)], {}, "4-D"),
    ([np.zeros((1, 1, 2, 2), np.float32)], {"width_scale": 0.0}, "positive"),
    ([np.zeros((1, 1, 2, 2), np.float32), np.ones(3, np.float32)], {}, "2 scales"),
])
def test_errors(inputs, args, match):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("UpsampleBilinear", names, ["out"],
                                                      **args))
